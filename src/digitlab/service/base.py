"""What every use case shares: the StepResult it returns (runs.records), loading the data a request names, and doing the
work in a new run folder (removed on any failure; ``latest`` moves only on success)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.settings import QUICK_TEST, QUICK_TRAIN, SMOKE_TEST, SMOKE_TRAIN
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.runs.folders import Run, run_folder
from digitlab.runs.records import Record
from digitlab.runs.records import StepResult as StepResult  # what every use case returns
from digitlab.service.requests import (
    DataRequest,
    Settings,
)

R = TypeVar("R", bound=Record)

if TYPE_CHECKING:
    from digitlab.service.tracking import Tracker


def load(settings: Settings) -> Dataset:
    ds = load_dataset(settings.dataset, data_dir=settings.data_dir, allow_network=settings.allow_network)
    if settings.smoke:
        ds = ds.subset(SMOKE_TRAIN, SMOKE_TEST, random_state=settings.seed)
    elif settings.quick:
        ds = ds.subset(QUICK_TRAIN, QUICK_TEST, random_state=settings.seed)
    return ds


def sha256_of(array: np.ndarray) -> str:
    from digitlab.data.sources import sha256_bytes

    return sha256_bytes(np.ascontiguousarray(array).tobytes())


def sizes(ds: Dataset, data: DataRequest) -> dict[str, Any]:
    """Which data a step used: what train and augment report, and what run.json records."""
    return {"dataset": ds.name, "n_train": len(ds.y_train), "n_test": len(ds.y_test), "seed": data.seed}


def _subset(data: DataRequest) -> dict[str, bool]:
    """What run.json records of the subset a step used (``smoke`` only when it was on)."""
    return {"quick": data.quick, **({"smoke": True} if data.smoke else {})}


def in_run_folder(
    command: str,
    data: DataRequest,
    out: Path,
    work: Callable[[Dataset, Run], R],
    on_progress: progress.Progress | None,
    job_steps: int | None = None,
    tracker: Tracker | None = None,
    latest: bool = True,
) -> tuple[Dataset, Path, R]:
    """Load the data, then do ``work`` in a new run folder (removed on any failure), reporting progress.

    With ``job_steps`` the work's steps are counted, so that each progress event says k of n.
    With a ``tracker`` the finished run is logged to MLflow (the result's ``mlflow`` key).
    """
    with progress.reporting(on_progress), progress.job(job_steps) if job_steps else nullcontext():
        ds = load(data)
        with run_folder(out, command, dict(sizes(ds, data), **_subset(data)), latest=latest) as run:
            result = work(ds, run)
        if tracker is not None:
            result = result.adding(mlflow=_log_to_mlflow(tracker, run.path, ds))
        if job_steps:
            progress.finished()
    return ds, run.path, result


def _log_to_mlflow(tracker: Tracker, folder: Path, ds: Dataset | None) -> dict[str, Any]:
    progress.say("mlflow", f"mlflow: logging {folder.name} to {tracker.uri}")
    examples = ds.x_test[:2] if ds is not None else None
    return tracker.log_run(folder, examples).to_json()


def trained_on(metadata: dict[str, Any], data_dir: Path | None = None) -> DataRequest:
    """The data a saved model was trained on, from its metadata: dataset, and the quick subset with its seed."""
    subset = metadata.get("subset") or {}
    return DataRequest(
        dataset=str(metadata.get("dataset", "mnist")),
        data_dir=data_dir,
        seed=int(subset.get("seed", 0)),
        quick=bool(subset),
        smoke=bool(subset) and subset.get("train") == SMOKE_TRAIN,
    )


def run_dataset(run: Path, data_dir: Path | None = None) -> Dataset:
    """The data a run used (its dataset, seed and quick subset, from run.json)."""
    try:
        facts = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        raise DigitlabError(f"{run}: no readable run.json; pick a finished run (`digitlab runs`).") from None
    settings = Settings(
        dataset=str(facts.get("dataset", "mnist")),
        data_dir=data_dir,
        seed=int(facts.get("seed", 0)),
        quick=bool(facts.get("quick", False)),
        smoke=bool(facts.get("smoke", False)),
    )
    return load(settings)
