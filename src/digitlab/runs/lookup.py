"""Finding things on disk: run folders, the models saved in them, a model by name.

A registry name resolves to the model of that name in ``runs/latest`` first, then in the
newest *complete* run (one with ``run.json``) whose model reads the images asked for; never
a file of an unfinished run, never one of the wrong image size while a fitting one exists.
``best`` (the default of ``predict`` and ``serve``) resolves to the reader digitlab ships
(``models.shipped``, the name ``reader``) when it is installed, else to the best reader of real pictures
saved (``registry.READERS``), the newest of its kind in the same order of runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitlab.core.errors import DigitlabError
from digitlab.models import (
    checking,
    registry,  # light: it imports a model family only to build a model
    shipped,
)
from digitlab.models.store import SUFFIXES, load_model, model_name
from digitlab.runs.folders import RUN_FILE, RUN_NAME, is_complete, is_ours, model_index, resolve_run
from digitlab.runs.reader import Run


@dataclass(frozen=True)
class SavedModel:
    """One model file of a run, as the dashboard and the lookup see it."""

    name: str  # saved name: "svm", "svm-tuned", "mlp-opencv", "ensemble"
    path: Path
    image_shape: tuple[int, ...] | None  # what it reads; None when the file does not say
    accuracy: float | None  # test accuracy when the run recorded one


def find_run(run: str | None, out: Path) -> Path:
    """A run folder by path or name under ``out``, or the latest; one line when there is none."""
    path = resolve_run(out, run)
    if path is None or not path.is_dir():
        where = f"{run!r} (also looked in {out})" if run else f"no latest run under {out}"
        raise DigitlabError(f"run folder not found: {where}; run `digitlab run` first or pass a run folder.")
    if run and not (is_ours(path) or (path / RUN_FILE).is_file()):
        raise DigitlabError(f"{path}: not a digitlab run folder (no run.json); pick one from `digitlab runs`.")
    return path


def latest_run(out: Path) -> Path | None:
    """Where ``out/latest`` points, if that is a complete run (a folder whose run.json was lost is no run)."""
    path = resolve_run(out, None)
    return path if path is not None and path.is_dir() and is_complete(path) else None


def run_folders(out: Path) -> list[Path]:
    """Every run folder under ``out``, finished or not, newest first (names start with their time stamp).

    Other folders there (MLflow's ``mlartifacts``, anything a user keeps beside the runs) are not runs.
    """
    root = Path(out)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and RUN_NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def list_runs(out: Path) -> list[Path]:
    """Complete run folders under ``out``, newest first."""
    return [p for p in run_folders(out) if is_complete(p)]


def _shape_from_file(path: Path) -> tuple[int, ...] | None:
    """What a model file reads, from its side files where they say so, else from the file itself."""
    try:
        if path.suffix == ".pt":
            return tuple(json.loads(path.with_name(path.name + ".json").read_text())["image_shape"])
        if path.name.endswith(".ensemble.json"):
            shape = json.loads(path.read_text()).get("metadata", {}).get("image_shape")
            return tuple(shape) if shape else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        shape = load_model(path)[1].get("image_shape")
    except DigitlabError:
        return None
    return tuple(shape) if shape else None


def run_models(run: Path) -> list[SavedModel]:
    """The models of a run, leaving out the member files an ensemble manifest names; best first."""
    folder = run / "models"
    if not folder.is_dir():
        return []
    members: set[str] = set()
    for manifest in folder.glob("*.ensemble.json"):
        try:
            members.update(json.loads(manifest.read_text()).get("files", []))
        except (OSError, ValueError, AttributeError):
            continue
    index = model_index(folder)
    found = []
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(SUFFIXES) or path.name in members or not path.is_file():
            continue
        name = model_name(path)
        entry: dict[str, Any] = index.get(name) or {}
        shape = tuple(entry["image_shape"]) if entry.get("image_shape") else None
        accuracy = entry.get("accuracy")
        if accuracy is None:
            accuracy = _recorded_accuracy(run, name)
        found.append(SavedModel(name, path, shape, accuracy))
    return sorted(found, key=lambda m: (-(m.accuracy or 0.0), m.name))


def _recorded_accuracy(run: Path, name: str) -> float | None:
    """The test accuracy the run's evaluation of ``name`` (or an older run's ``<name>.json``) records."""
    read = Run(run)
    evaluation = read.evaluation(name)
    if evaluation is not None:
        return evaluation.accuracy
    value = (read.doc(f"{name}.json") or {}).get("accuracy")
    return float(value) if isinstance(value, int | float) else None


def model_shape(model: SavedModel) -> tuple[int, ...] | None:
    return model.image_shape if model.image_shape is not None else _shape_from_file(model.path)


BEST = "best"  # the model name that stands for the best reader of real pictures a run has
READERS = registry.READERS  # the order `best` ranks them in, for the faces' help texts


def by_reading(models: list[SavedModel]) -> list[SavedModel]:
    """``models`` (most accurate first) with the best readers of real pictures first (``registry.READERS``)."""
    return sorted(models, key=lambda m: registry.reader_rank(m.name))  # stable: accuracy decides within a rank


def best_reader(out: Path, image_shape: tuple[int, int] | None = None, kinds: tuple[str, ...] | None = None) -> Path:
    """The best reader of real pictures saved under ``out`` that reads ``image_shape`` images.

    The highest in ``registry.READERS`` wins wherever it is (a later `train --model lr` does not
    displace the cnn of an earlier run); among equals, the one in ``out/latest``, then the newest
    complete run, then the most accurate. ``kinds``: only models made from these registry names
    (the ONNX runtime takes CNNs only). Personal models (``*-personal``, one writer's) are left
    out: they are asked for by name.
    """
    pictures = image_shape is None or tuple(image_shape) == (28, 28)
    if pictures and (kinds is None or shipped.RECIPE in kinds) and shipped.available():
        return better_than_shipped(out, kinds) or shipped.model_path()  # measured, and the same for every user
    found: list[tuple[int, int, int, Path]] = []  # (reader rank, run order, order in the run, file)
    for r, k, m in _readers(out, kinds):
        shape = model_shape(m) if image_shape is not None else None
        if image_shape is None or shape is None or tuple(shape) == tuple(image_shape):  # as find_model
            found.append((registry.reader_rank(m.name), r, k, m.path))
    if found:
        return min(found)[3]
    size = f" reads {image_shape[0]}×{image_shape[1]} pictures" if image_shape else ""
    which = f"{' or '.join(kinds)} model" if kinds else "model"
    raise DigitlabError(
        f"no saved {which} under {out}{size}; run `digitlab run` first (it trains the cnn) or pass --model FILE."
    )


def better_than_shipped(out: Path, kinds: tuple[str, ...] | None = None) -> Path | None:
    """The saved reader that reads the reading check (``models.checking``) better than the shipped reader, the
    best of them; None when none does or nothing was measured (personal models are asked for by name)."""
    bar = checking.known(shipped.model_path())
    if bar is None:
        return None
    found: list[tuple[float, Path]] = []
    for _, _, m in _readers(out, kinds):
        score = checking.known(m.path)
        if score is not None and score > bar:
            found.append((score, m.path))
    return max(found, key=lambda f: f[0])[1] if found else None


def _readers(out: Path, kinds: tuple[str, ...] | None) -> Iterator[tuple[int, int, SavedModel]]:
    """(run order, order in the run, model) of every saved model that may answer ``best``: not a personal one
    (one writer's, asked for by name), and made from one of ``kinds`` when given."""
    for r, run in enumerate(_runs(out)):
        for k, m in enumerate(run_models(run)):
            if not m.name.endswith("-personal") and (kinds is None or registry.base_name(m.name) in kinds):
                yield r, k, m


def _runs(out: Path) -> list[Path]:
    """``out/latest`` first, then the other complete runs, newest first."""
    runs = list_runs(out)
    latest = latest_run(out)
    return runs if latest is None else [latest, *(r for r in runs if r != latest)]


def find_model(spec: str, out: Path, image_shape: tuple[int, int] | None = None) -> Path:
    """A model file path as given, or the saved model called ``spec`` that reads ``image_shape`` images.

    Looks in ``out/latest`` first, then in the other complete runs, newest first. ``best``: the
    best reader of real pictures there.
    """
    path = Path(spec).expanduser()
    if path.exists() or spec.endswith(SUFFIXES) or "/" in spec:
        if path.is_dir():
            raise DigitlabError(f"{path}: is a folder, not a model file; pass a {', '.join(SUFFIXES)} file.")
        if not path.is_file():
            raise DigitlabError(f"{path}: no such model file; train one with `digitlab train --model NAME`.")
        return path
    if spec == BEST:
        return best_reader(out, image_shape)
    if spec == shipped.NAME:
        if image_shape is not None and tuple(image_shape) != (28, 28):
            raise DigitlabError(
                f"the shipped {shipped.NAME} reads 28×28 pictures, not {image_shape[0]}×{image_shape[1]}."
            )
        return shipped.model_path()
    if registry.lookup(registry.base_name(spec)) is None:  # an unknown name: one line listing the known ones
        raise DigitlabError(
            f"unknown model {spec!r}; choose {BEST} (the best reader), {shipped.NAME} (the shipped one) or one of "
            f"{', '.join(registry.names())} (see `digitlab models`), or pass a model file."
        )
    runs = _runs(out)
    wrong: list[tuple[Path, tuple[int, ...] | None]] = []
    for run in runs:
        for model in run_models(run):
            if model.name != spec:
                continue
            shape = model_shape(model)
            if image_shape is None or shape is None or tuple(shape) == tuple(image_shape):
                return model.path
            wrong.append((model.path, shape))
    if wrong:
        seen = "; ".join(f"{p} reads {'×'.join(map(str, s or ()))} images" for p, s in wrong[:3])
        raise DigitlabError(
            f"no saved {spec!r} model under {out} reads {image_shape[0]}×{image_shape[1]} images ({seen}); "  # type: ignore[index]
            f"train one on a dataset of that size, e.g. `digitlab train --model {spec}`."
        )
    raise DigitlabError(
        f"no saved {spec!r} model under {out}; run `digitlab train --model {spec}` first or pass a model file."
    )


def is_model_name(name: str) -> bool:
    """Whether ``name`` is a model name (``cnn``, ``svm-tuned``, ``cnn-personal``), not a path or anything else."""
    return bool(re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name)) and (
        name == shipped.NAME or registry.lookup(registry.base_name(name)) is not None
    )


def personal_models(out: Path) -> list[SavedModel]:
    """The newest saved ``*-personal`` model of each name under ``out`` (``digitlab personalise`` makes them)."""
    seen: dict[str, SavedModel] = {}
    for run in list_runs(out):
        for model in run_models(run):
            if model.name.endswith("-personal") and model.name not in seen:
                seen[model.name] = model
    return list(seen.values())
