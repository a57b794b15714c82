"""Model files: one format per kind of model, each carrying its metadata.

- scikit-learn pipelines: ``.skops``, loaded only after every type in the file is checked
  against an explicit allow-list (never plain pickle or joblib);
- the PyTorch CNN: ``.pt`` state_dict (``weights_only=True``) plus ``.pt.json`` config;
- the from-scratch NumPy models: ``.npz`` arrays plus a JSON config, ``allow_pickle=False``;
- ensembles: ``.ensemble.json`` manifest naming member files saved beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_path, library_versions, to_jsonable, write_json

MODEL_FORMAT = "digitlab-model/1"
SKOPS_SUFFIX = ".skops"
SUFFIXES = (".skops", ".pt", ".npz", ".ensemble.json")
# Types a .skops file may hold beyond what skops trusts by default (scikit-learn's own
# estimators, NumPy arrays, builtins). Anything else is refused before it is loaded.
ALLOWED_TYPES = frozenset(
    {
        "digitlab.features.Deskew",
        "digitlab.features.Flatten",
        "digitlab.features.ScaleImages",
        "digitlab.features.ReduceDims",
        "digitlab.features.StandardiseImages",
        "digitlab.models.classic.SoftmaxSVC",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)


def suffix_for(model: Any) -> str:
    return str(getattr(model, "file_suffix", SKOPS_SUFFIX))


def model_name(path: str | Path) -> str:
    """The saved name in a model file's name: ``svm-tuned.skops`` and ``cnn.pt`` -> ``svm-tuned``, ``cnn``."""
    name = Path(path).name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def model_path(folder: str | Path, name: str, model: Any) -> Path:
    return Path(folder) / f"{name}{suffix_for(model)}"


def save_model(path: str | Path, model: Any, metadata: dict[str, Any]) -> Path:
    """Write ``model`` with its metadata in its kind's format, atomically."""
    path = Path(path)
    meta = dict(to_jsonable(metadata), format=MODEL_FORMAT, versions=library_versions())
    if path.name.endswith(".ensemble.json"):
        stem = path.name[: -len(".ensemble.json")]
        files = []
        for k, (name, member) in enumerate(zip(model.member_names, model.members_, strict=True)):
            member_file = model_path(path.parent, f"{stem}-{k}-{name}", member)
            save_model(member_file, member, {"model": name, "member_of": path.name})
            files.append(member_file.name)
        write_json(
            path,
            {
                "format": MODEL_FORMAT,
                "kind": "ensemble",
                "members": model.member_names,
                "files": files,
                "weights": model.weights,
                "metadata": meta,
            },
        )
    elif path.suffix in (".pt", ".npz"):
        model.save(path, meta)
    else:
        import skops.io as sio

        with atomic_path(path) as tmp:
            sio.dump({"format": MODEL_FORMAT, "metadata": json.dumps(meta), "model": model}, tmp)
    return path


def load_model(path: str | Path, reading: bool = False) -> tuple[Any, dict[str, Any]]:
    """Read a model file written by ``save_model``; refuse unknown types and damaged files.

    ``reading``: only to read pictures with (``predict_proba``, ``classes_``); a cnn then loads as a
    ``nets.CNNReader``, which needs PyTorch but not scikit-learn (a faster cold start)."""
    path = Path(path)
    if not path.is_file():
        raise DigitlabError(f"{path}: no such model file; train one with `digitlab train --model NAME`.")
    if path.name.endswith(".ensemble.json"):
        return _load_ensemble(path)
    if path.suffix == ".pt" and reading:
        from digitlab.models.nets import CNNReader

        return CNNReader.load(path)
    if path.suffix == ".pt":
        from digitlab.models.cnn import CNNClassifier

        return CNNClassifier.load(path)
    if path.suffix == ".npz":
        from digitlab.models.scratch.estimators import ScratchKNN

        return ScratchKNN.load(path)  # the file names its own class, checked against the scratch classes
    if path.suffix != SKOPS_SUFFIX:
        raise DigitlabError(f"{path}: not a model file; expected one of {', '.join(SUFFIXES)}.")
    return _load_skops(path)


def _load_skops(path: Path) -> tuple[Any, dict[str, Any]]:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # zip, JSON and schema errors all mean the file is damaged
        raise DigitlabError(
            f"{path}: not a readable model file ({type(exc).__name__}); train the model again."
        ) from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise DigitlabError(
            f"{path}: refused to load types not on the allow-list: {', '.join(refused)}; "
            "only load model files you trust, made by digitlab."
        )
    try:
        content = sio.load(path, trusted=list(untrusted))
        meta = json.loads(content["metadata"])
        model = content["model"]
    except Exception as exc:
        raise DigitlabError(f"{path}: corrupt model file ({type(exc).__name__}); train the model again.") from None
    if meta.get("format") != MODEL_FORMAT:
        raise DigitlabError(f"{path}: unknown model format {meta.get('format')!r}; expected {MODEL_FORMAT}.")
    check_fitted_classifier(model, meta, path)
    return model, meta


def check_fitted_classifier(model: Any, meta: dict[str, Any], path: Path) -> None:
    """What a file holds must be a fitted classifier whose class names match its classes."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not (hasattr(model, "predict_proba") and hasattr(model, "get_params")):
        raise DigitlabError(
            f"{path}: holds a {type(model).__name__}, not a classifier; pass a model file saved by digitlab."
        )
    try:
        check_is_fitted(model)
        classes = list(model.classes_)
    except (NotFittedError, AttributeError, TypeError):
        raise DigitlabError(f"{path}: holds an unfitted {type(model).__name__}; train the model again.") from None
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != len(classes)):
        count = len(names) if isinstance(names, list) else 0
        raise DigitlabError(
            f"{path}: its metadata names {count} classes but the model has {len(classes)}; the file is damaged, "
            "train the model again."
        )


def _load_ensemble(path: Path) -> tuple[Any, dict[str, Any]]:
    from digitlab.models.ensemble import SoftVote

    try:
        manifest = json.loads(path.read_text())
        files, names = manifest["files"], manifest["members"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DigitlabError(f"{path}: unreadable ensemble manifest ({type(exc).__name__}).") from None
    if not isinstance(files, list) or not isinstance(names, list) or len(files) != len(names):
        raise DigitlabError(f"{path}: damaged ensemble manifest (members and files do not match); save it again.")
    members = [load_model(path.parent / Path(str(f)).name)[0] for f in files]
    return SoftVote.from_fitted(members, names, manifest.get("weights")), manifest.get("metadata", {})
