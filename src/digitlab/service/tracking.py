"""MLflow tracking, for those who ask for it (``--mlflow`` or ``DIGITLAB_MLFLOW=1``).

A digitlab run folder is the record; MLflow gets a copy of it. ``open_tracker`` checks the
tracking store *before* any training (an unreachable server or a damaged database is one
line, and nothing is trained); once the run folder is complete, ``Tracker.log_run`` writes
one MLflow run for it and a child run for each model saved in it:

- parent: the command's parameters (dataset, sizes, seed, models, tuning and augmentation
  settings), tags (dataset, file checksums, seed, digitlab version, git commit), the run's
  JSON files, figures and report as artifacts, the best test accuracy;
- child per model: its hyperparameters, test metrics, the per-epoch history (loss and
  validation accuracy by step, as the cnn, the scratch models and the MLP recorded them) and
  the model itself, through ``mlflow.pytorch`` (the cnn, as one module from uint8 images to
  probabilities) or ``mlflow.sklearn`` (the rest), with a signature and an input example.

Logging after the run, from its files, means a failed or interrupted run leaves nothing in
MLflow (as it leaves no run folder), and any finished run can be logged later
(``digitlab runs mlflow RUN``). mlflow is imported only here and only when asked for: it
takes seconds to import.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.core.files import library_versions
from digitlab.models.store import load_model
from digitlab.runs.folders import RUN_FILE, is_complete, model_index
from digitlab.runs.lookup import find_run
from digitlab.runs.reader import Run
from digitlab.runs.records import MlflowLogged, StepResult

ENV = "DIGITLAB_MLFLOW"  # 1/true/yes/on: track every run that can be tracked
DEFAULT_EXPERIMENT = "digitlab"
DB_FILE = "mlflow.db"  # the default store: sqlite:///<out>/mlflow.db
ARTIFACTS_DIR = "mlartifacts"  # beside it, for the default store
PROBE_TIMEOUT_S = 5  # seconds the check of a tracking server may take
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value
SKIP_ARTIFACTS = ("models",)  # the models go in as MLflow models, not as files


def wanted(flag: bool) -> bool:
    """Whether to track: the flag, or ``DIGITLAB_MLFLOW`` set to 1/true/yes/on."""
    return flag or os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def tracking_uri(out: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store beside the run folders."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or _default_uri(out)


def _default_uri(out: Path) -> str:
    return f"sqlite:///{(Path(out) / DB_FILE).resolve()}"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise DigitlabError(
            "--mlflow: MLflow is not installed; install it with `pip install 'digitlab[mlflow]'` "
            f"(or leave out --mlflow and unset {ENV})."
        ) from None
    for name in ("mlflow", "alembic"):  # their INFO lines ("Creating initial MLflow database tables") are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


@contextmanager
def _quick_failures() -> Iterator[None]:
    """No retries and a short timeout while the store is checked: an unreachable server is one line, at once."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(PROBE_TIMEOUT_S)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


@dataclass(frozen=True)
class Logged:
    """Where a run went: what ``--json`` reports under ``mlflow``."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    children: Mapping[str, str]  # model -> child run id

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "children": dict(self.children),
        }


@dataclass(frozen=True)
class Tracker:
    uri: str
    experiment_id: str

    def log_run(self, folder: Path, examples: np.ndarray | None = None) -> Logged:
        """One MLflow run for the complete run folder ``folder``, a child run per saved model.

        ``examples``: a few images for the models' input example and signature (default:
        blank images of the models' size).
        """
        folder = Path(folder)
        if not is_complete(folder):
            raise DigitlabError(f"{folder}: not a complete run folder; only finished runs are logged to MLflow.")
        created: list[str] = []
        try:
            return self._log(folder, examples, created)
        except BaseException as exc:
            self._mark_failed(created, "KILLED" if not isinstance(exc, Exception) else "FAILED")
            if isinstance(exc, DigitlabError) or not isinstance(exc, Exception):
                raise
            # the store went away, a disk filled, a model would not log …
            raise DigitlabError(
                f"MLflow ({self.uri}): could not log {folder.name}: {_one_line(exc)}. The run folder is kept; "
                f"log it again with `digitlab runs mlflow {folder.name} --out {folder.parent}`."
            ) from None

    def find_logged(self, folder: Path) -> Logged | None:
        """The finished MLflow run already logged for ``folder`` in this experiment, if any."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        where = str(Path(folder).resolve()).replace("'", "\\'")
        found = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`digitlab.run_folder` = '{where}' and attributes.status = 'FINISHED'",
            max_results=1000,
        )
        parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
        if not parents:
            return None
        parent = parents[0].info.run_id
        children = {
            r.data.tags.get("digitlab.model", r.info.run_name): r.info.run_id
            for r in found
            if r.data.tags.get("mlflow.parentRunId") == parent
        }
        return Logged(parent, self.experiment_id, self.uri, children)

    def _mark_failed(self, run_ids: list[str], status: str) -> None:
        """Runs begun for a run folder that could not be logged in full end FAILED (or KILLED), not RUNNING."""
        from mlflow import MlflowClient

        for run_id in run_ids:
            try:
                MlflowClient(tracking_uri=self.uri).set_terminated(run_id, status=status)
            except Exception:  # the store is what failed: nothing more to do
                return

    # --- the parent run ----------------------------------------------------------------------
    def _log(self, folder: Path, examples: np.ndarray | None, created: list[str]) -> Logged:
        mlflow = _mlflow()
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        client = MlflowClient(tracking_uri=self.uri)
        run = Run(folder)
        info = run.doc(RUN_FILE) or {}
        start, end = _times(info)
        docs = {name: record.to_json() for name, record in run.records().items()}
        tags = _tags(folder, info)
        parent = client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=folder.name)
        parent_id = parent.info.run_id
        created.append(parent_id)
        params = _parent_params(info, docs)
        _log_batch(client, parent_id, params=params)
        for path in sorted(folder.iterdir()):
            if path.name in SKIP_ARTIFACTS or path.name.startswith("."):
                continue
            if path.is_dir():
                client.log_artifacts(parent_id, str(path), artifact_path=path.name)
            elif path.is_file():
                client.log_artifact(parent_id, str(path))

        children: dict[str, str] = {}
        accuracies: list[float] = []
        index = model_index(folder / "models")
        mlflow.set_tracking_uri(self.uri)  # the flavours' log_model writes through the fluent API
        for name, entry in sorted(index.items()):
            file = folder / "models" / str(entry.get("file", ""))
            if not file.is_file():
                continue
            model, meta = load_model(file)  # once: its metadata holds the data files' checksums too
            sums = _checksum_tags(meta)
            if sums.keys() - tags.keys():  # the first model that records them tags the parent (and the rest)
                tags.update(sums)
                client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in sums.items()])
            child_id, accuracy = self._log_model(
                client, mlflow, parent_id, name, file, model, meta, tags, start, end, examples, created
            )
            children[name] = child_id
            if accuracy is not None:
                accuracies.append(accuracy)
        metrics = _parent_metrics(docs)
        if accuracies:
            metrics["best_accuracy"] = max(accuracies)
        if metrics:
            _log_batch(client, parent_id, metrics=metrics, timestamp=end)
        client.set_terminated(parent_id, status="FINISHED", end_time=end)
        return Logged(parent_id, self.experiment_id, self.uri, children)

    # --- one child run per model ---------------------------------------------------------------
    def _log_model(
        self,
        client: Any,
        mlflow: Any,
        parent_id: str,
        name: str,
        file: Path,
        model: Any,
        meta: Mapping[str, Any],
        parent_tags: Mapping[str, str],
        start: int,
        end: int,
        examples: np.ndarray | None,
        created: list[str],
    ) -> tuple[str, float | None]:
        tags = {k: v for k, v in parent_tags.items() if not k.startswith("mlflow.")}
        tags.update({"mlflow.parentRunId": parent_id, "digitlab.model": name, "digitlab.model_file": file.name})
        if meta.get("family"):
            tags["digitlab.family"] = str(meta["family"])
        child = client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=name)
        child_id = child.info.run_id
        created.append(child_id)
        params = {"model": name, **{str(k): v for k, v in dict(meta.get("params") or {}).items()}}
        for key in ("seed", "dataset", "subset"):
            if meta.get(key) is not None:
                params[key] = meta[key]
        metrics = {k: float(v) for k, v in dict(meta.get("metrics") or {}).items() if _is_number(v)}
        _log_batch(client, child_id, params=params, metrics=metrics, timestamp=end)
        for key, values in epoch_history(model).items():
            _log_series(client, child_id, key, values, start, end)

        shape = tuple(int(n) for n in meta.get("image_shape") or (28, 28))
        example = _example(examples, shape)
        with mlflow.start_run(run_id=child_id):
            _log_flavour(mlflow, model, example)
        client.set_terminated(child_id, status="FINISHED", end_time=end)
        return child_id, metrics.get("accuracy")


def open_tracker(out: Path) -> Tracker:
    """Check the tracking store and find (or create) the experiment; one line if it cannot be reached.

    Called before any data is loaded or model trained.
    """
    _mlflow()
    from mlflow import MlflowClient

    uri = tracking_uri(out)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or DEFAULT_EXPERIMENT
    default_store = uri == _default_uri(out)
    if default_store:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DigitlabError(f"--out {out}: cannot create it for the MLflow store ({exc.strerror}).") from None
    try:
        with _quick_failures():
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                location = (Path(out) / ARTIFACTS_DIR).resolve().as_uri() if default_store else None
                experiment_id = client.create_experiment(name, artifact_location=location)
            elif experiment.lifecycle_stage != "active":
                raise DigitlabError(
                    f"MLflow experiment {name!r} in {uri} is deleted; restore it (`mlflow experiments restore`) "
                    "or set MLFLOW_EXPERIMENT_NAME to another name."
                )
            else:
                experiment_id = experiment.experiment_id
    except DigitlabError:
        raise
    except Exception as exc:
        where = "MLFLOW_TRACKING_URI" if not default_store else "the default store"
        raise DigitlabError(
            f"MLflow tracking store {uri} ({where}) cannot be used: {_one_line(exc)}. Start the server or fix "
            f"MLFLOW_TRACKING_URI, or run without --mlflow; nothing was trained."
        ) from None
    return Tracker(uri, str(experiment_id))


def open_if(flag: bool, out: Path) -> Tracker | None:
    """The tracker when tracking is wanted (``--mlflow`` or ``DIGITLAB_MLFLOW``), else None."""
    return open_tracker(out) if wanted(flag) else None


# --- what goes in ------------------------------------------------------------------------------


def _millis(stamp: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def _times(info: Mapping[str, Any]) -> tuple[int, int]:
    now = int(datetime.now().timestamp() * 1000)
    start = _millis(info.get("started")) or now
    end = _millis(info.get("finished")) or max(start, now)
    return start, end


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _param(value: Any) -> str:
    scalar = isinstance(value, str | int | float | bool)
    text = str(value) if scalar else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def _parent_params(info: Mapping[str, Any], docs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {"command": info.get("command")}
    for key in ("dataset", "seed", "quick", "n_train", "n_test"):
        if info.get(key) is not None:
            params[key] = info[key]
    compare = docs.get("compare.json", {})
    if isinstance(compare.get("models"), list):
        params["models"] = ",".join(str(r.get("model")) for r in compare["models"] if isinstance(r, dict))
    metrics = docs.get("metrics.json", {})
    if "model" in metrics:
        params["model"] = metrics["model"]
    tune = docs.get("tune.json", {})
    for key in ("model", "search", "cv", "n_iter", "train_size", "saved_as", "best_params"):
        if tune.get(key) is not None:
            params[f"tune.{key}"] = tune[key]
    augment = docs.get("augment-compare.json", {})
    if augment.get("model") is not None:
        params["augment.model"] = augment["model"]
    libraries = [str(r["library"]) for r in augment.get("results", []) if isinstance(r, dict) and "library" in r]
    if libraries:
        params["augment.libraries"] = ",".join(libraries)
    personal = docs.get("personalise.json", {})
    for key in ("writer", "n_digits", "scheme", "held_out", "epochs", "base_model"):
        if personal.get(key) is not None:
            params[f"personalise.{key}"] = personal[key]
    return {k: v for k, v in params.items() if v is not None}


PERSONAL_METRICS = ("held_out_before", "held_out_after", "test_before", "test_after", "adapt_s")


def _parent_metrics(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """A personalise run's before/after scores (the held-out digits of the writer, the test set)."""
    personal = docs.get("personalise.json", {})
    return {k: float(personal[k]) for k in PERSONAL_METRICS if isinstance(personal.get(k), int | float)}


def _checksum_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """``checksum.<file>`` tags: the SHA-256 of the data files a saved model records."""
    return {f"checksum.{k}": str(v) for k, v in dict(meta.get("checksums") or {}).items() if v}


def _git_commit() -> str | None:
    """The commit of the digitlab checkout, when digitlab runs from one."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def _tags(folder: Path, info: Mapping[str, Any]) -> dict[str, str]:
    versions = library_versions()
    tags = {
        "digitlab.run_folder": str(folder.resolve()),
        "digitlab.command": str(info.get("command", "")),
        "digitlab.version": versions.get("digitlab", "unknown"),
        "mlflow.source.name": "digitlab",
        "mlflow.source.type": "LOCAL",
    }
    if info.get("dataset") is not None:
        tags["dataset"] = str(info["dataset"])
    if info.get("seed") is not None:
        tags["seed"] = str(info["seed"])
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def epoch_history(model: Any) -> dict[str, list[float]]:
    """Per-epoch series the model kept: ``history_`` (cnn, scratch) or the MLP's ``loss_curve_``."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    history = getattr(estimator, "history_", None)
    series: dict[str, list[float]] = {}
    if isinstance(history, list) and history:
        for record in history:
            for key, value in dict(record).items():
                if key != "epoch" and _is_number(value):
                    series.setdefault(str(key), []).append(float(value))
        return series
    loss = getattr(estimator, "loss_curve_", None)
    if loss is not None:
        series["loss"] = [float(v) for v in loss]
    scores = getattr(estimator, "validation_scores_", None)
    if scores:
        series["val_accuracy"] = [float(v) for v in scores]
    return series


def _log_series(client: Any, run_id: str, key: str, values: list[float], start: int, end: int) -> None:
    """A metric by epoch (step 1, 2, …), its timestamps spread over the run's time."""
    from mlflow.entities import Metric

    n = len(values)
    stamps = [start + (end - start) * (k + 1) // n for k in range(n)]
    metrics = [Metric(key, v, stamps[k], k + 1) for k, v in enumerate(values) if math.isfinite(v)]
    for k in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics a call
        client.log_batch(run_id, metrics=metrics[k : k + 1000])


def _log_batch(
    client: Any,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    timestamp: int | None = None,
) -> None:
    from mlflow.entities import Metric, Param

    stamp = timestamp or int(datetime.now().timestamp() * 1000)
    items = [Param(str(k)[:250], _param(v)) for k, v in (params or {}).items()]
    for k in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
        client.log_batch(run_id, params=items[k : k + 100])
    values = [Metric(str(k), float(v), stamp, 0) for k, v in (metrics or {}).items() if _is_number(v)]
    if values:
        client.log_batch(run_id, metrics=values)


def _example(examples: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if examples is not None and tuple(examples.shape[1:]) == shape and len(examples):
        return np.ascontiguousarray(examples[:2]).astype(np.uint8)
    return np.zeros((2, *shape), np.uint8)


def _requirements(*packages: str) -> list[str]:
    versions = library_versions()
    return [f"{p}=={versions[p]}" if p in versions else p for p in packages]


def _sklearn_format(model: Any) -> dict[str, Any]:
    """skops (MLflow's default) when the model's own types are digitlab's and scikit-learn's, else cloudpickle."""
    import skops.io as sio

    try:
        types = sio.get_untrusted_types(data=sio.dumps(model))
    except Exception:  # a type skops cannot write (a torch module inside an ensemble …)
        return {"serialization_format": "cloudpickle"}
    if all(t.startswith(("digitlab.", "sklearn.", "numpy.", "scipy.")) for t in types):
        return {"serialization_format": "skops", "skops_trusted_types": sorted(types)}
    return {"serialization_format": "cloudpickle"}


def _log_flavour(mlflow: Any, model: Any, example: np.ndarray) -> None:
    """The model as an MLflow model in the active run: pytorch for the cnn, sklearn for the rest."""
    from mlflow.models import infer_signature

    if hasattr(model, "torch_module"):
        import torch

        module = model.torch_module()
        with torch.no_grad():
            proba = module(torch.from_numpy(example)).numpy()  # (n, k)
        mlflow.pytorch.log_model(
            module,
            name="model",
            signature=infer_signature(example, proba),
            input_example=example,
            pip_requirements=_requirements("torch", "numpy"),
            metadata={"classes": list(module.classes), "input": "uint8 images (n, H, W), 0..255"},
        )
        return
    mlflow.sklearn.log_model(
        model,
        name="model",
        **_sklearn_format(model),
        signature=infer_signature(example, np.asarray(model.predict(example))),
        input_example=example,
        pip_requirements=_requirements("scikit-learn", "numpy", "scipy"),
        metadata={"input": "uint8 images (n, H, W), 0..255"},
    )


def mlflow_log(runs: list[str], out: Path, again: bool = False) -> StepResult:
    """Log finished run folders to MLflow (default: the latest); one already logged is skipped unless ``again``."""
    folders = [find_run(name, out) for name in runs] if runs else [find_run(None, out)]
    tracker = open_tracker(out)
    logged = []
    for folder in folders:
        previous = None if again else tracker.find_logged(folder)
        entry = (previous or tracker.log_run(folder)).to_json()
        logged.append(dict(entry, run=str(folder), already=previous is not None))
    return StepResult("mlflow", None, MlflowLogged.of({"tracking_uri": tracker.uri, "logged": logged}))
