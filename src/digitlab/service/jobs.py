"""The steps a face can ask for, each: check the request, then do the work in a run folder.

Every function takes a typed request and an optional progress callback, checks everything
first, runs the work inside ``artifacts.run_folder`` (removed on any failure or interruption;
``latest`` moves only on success) and returns a ``StepResult``: the run folder and the step's
JSON document (its keys are what ``--json`` prints and what the report and dashboard read).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import check_new_file, to_jsonable
from digitlab.core.settings import RUN_ENV, RUNS_ENV, SMOKE_TRAIN
from digitlab.data.datasets import Dataset
from digitlab.features.augment import names as augment_backends
from digitlab.models import registry
from digitlab.models.store import load_model, model_name
from digitlab.runs.folders import Run, run_folder
from digitlab.runs.lookup import find_model, find_run, latest_run
from digitlab.service import steps as pipeline
from digitlab.service import tracking
from digitlab.service.requests import (
    AugmentRequest,
    CompareRequest,
    DashboardRequest,
    DataRequest,
    EnsembleRequest,
    EvaluateRequest,
    PersonaliseRequest,
    RunRequest,
    TrainRequest,
    TuneRequest,
    image_shape_of,
)

QUICK_TRAIN, QUICK_TEST = pipeline.QUICK_TRAIN, pipeline.QUICK_TEST
AUGMENTERS = tuple(augment_backends())  # albumentations, opencv, keras, elastic
DEFAULT_MODELS = pipeline.DEFAULT_MODELS


@dataclass(frozen=True)
class StepResult:
    step: str  # "train", "compare", "run" …
    run: Path | None  # the run folder written (None for steps that write none)
    data: Mapping[str, Any]  # the step's JSON document

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = to_jsonable(dict(self.data))
        if self.run is not None:
            doc["run"] = str(self.run)
        return doc

    def __getitem__(self, key: str) -> Any:
        return str(self.run) if key == "run" and self.run is not None else to_jsonable(self.data[key])


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    description: str
    pros: str
    cons: str
    search_space: Mapping[str, list[str]]


def _sizes(ds: Dataset, data: DataRequest) -> dict[str, Any]:
    """Which data a step used: what train and augment report, and what run.json records."""
    return {"dataset": ds.name, "n_train": len(ds.y_train), "n_test": len(ds.y_test), "seed": data.seed}


def _subset(data: DataRequest) -> dict[str, bool]:
    """What run.json records of the subset a step used (``smoke`` only when it was on)."""
    return {"quick": data.quick, **({"smoke": True} if data.smoke else {})}


def _in_run_folder(
    command: str,
    data: DataRequest,
    out: Path,
    work: Callable[[Dataset, Run], dict[str, Any]],
    on_progress: progress.Progress | None,
    job_steps: int | None = None,
    tracker: tracking.Tracker | None = None,
    latest: bool = True,
) -> tuple[Dataset, Path, dict[str, Any]]:
    """Load the data, then do ``work`` in a new run folder (removed on any failure), reporting progress.

    With ``job_steps`` the work's steps are counted, so that each progress event says k of n.
    With a ``tracker`` the finished run is logged to MLflow (the result's ``mlflow`` key).
    """
    with progress.reporting(on_progress), progress.job(job_steps) if job_steps else nullcontext():
        ds = pipeline.load(data)
        with run_folder(out, command, dict(_sizes(ds, data), **_subset(data)), latest=latest) as run:
            result = work(ds, run)
        if tracker is not None:
            result = dict(result, mlflow=_log_to_mlflow(tracker, run.path, ds))
        if job_steps:
            progress.finished()
    return ds, run.path, result


def _log_to_mlflow(tracker: tracking.Tracker, folder: Path, ds: Dataset | None) -> dict[str, Any]:
    progress.say("mlflow", f"mlflow: logging {folder.name} to {tracker.uri}")
    examples = ds.x_test[:2] if ds is not None else None
    return tracker.log_run(folder, examples).to_json()


# --- catalogue and data -----------------------------------------------------------------------


def model_catalogue() -> list[ModelInfo]:
    return [
        ModelInfo(
            s.name,
            s.family,
            s.description,
            s.pros,
            s.cons,
            {k: [repr(v) for v in vs] for k, vs in s.search_space.items()},
        )
        for s in (registry.get(n) for n in registry.names())
    ]


def model_names() -> list[str]:
    return registry.names()


def aspects(names: list[str]) -> list[dict[str, str]]:
    """Family, description, pros and cons of saved models (by saved name)."""
    from digitlab.analysis.report import aspects as report_aspects

    return report_aspects(names)


def data_info(request: DataRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Load (fetch and verify if needed) a dataset and describe it: splits, classes, files."""
    request.check()
    with progress.reporting(on_progress):
        ds = pipeline.load(request)
    return StepResult("data", None, pipeline.data_info(ds))


# --- steps that write a run folder ------------------------------------------------------------


def explore(request: DataRequest, out: Path, on_progress: progress.Progress | None = None) -> StepResult:
    return _data_step("explore", pipeline.explore, request, out, on_progress)


def preprocess(request: DataRequest, out: Path, on_progress: progress.Progress | None = None) -> StepResult:
    return _data_step("preprocess", pipeline.preprocess, request, out, on_progress)


def _data_step(
    name: str,
    work: Callable[..., dict[str, Any]],
    request: DataRequest,
    out: Path,
    on_progress: progress.Progress | None,
) -> StepResult:
    """A step that describes the data: figures and JSON in a run folder of its own."""
    request.check()
    _, run, result = _in_run_folder(name, request, out, lambda ds, run: work(ds, run, request.seed), on_progress)
    return StepResult(name, run, result)


def train(request: TrainRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    ds, run, row = _in_run_folder(
        f"train-{request.model}",
        request.data,
        request.out,
        lambda ds, run: pipeline.train(ds, request.model, run, request.data.seed),
        on_progress,
        tracker=tracker,
    )
    return StepResult("train", run, dict(row, **_sizes(ds, request.data)))


def compare(request: CompareRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    _, run, result = _in_run_folder(
        "compare",
        request.data,
        request.out,
        lambda ds, run: pipeline.compare(ds, request.models, run, request.data.seed),
        on_progress,
        job_steps=len(request.models),
        tracker=tracker,
    )
    return StepResult("compare", run, result)


def evaluate(request: EvaluateRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    path = find_model(request.model, request.out, image_shape_of(request.data.dataset))
    loaded = load_model(path)  # a damaged or foreign file is refused before any data is fetched
    ds, run, result = _in_run_folder(
        f"evaluate-{model_name(path)}",
        request.data,
        request.out,
        lambda ds, run: pipeline.evaluate_saved(ds, path, run, robust=request.robustness, loaded=loaded),
        on_progress,
    )
    return StepResult("evaluate", run, dict(result, dataset=ds.name))


def ensemble(request: EnsembleRequest, on_progress: progress.Progress | None = None) -> StepResult:
    weights = request.check()
    shape = image_shape_of(request.data.dataset)
    paths = [find_model(spec, request.out, shape) for spec in request.models]
    loaded = [load_model(path) for path in paths]
    ds, run, result = _in_run_folder(
        "ensemble",
        request.data,
        request.out,
        lambda ds, run: pipeline.ensemble_saved(ds, paths, run, weights, request.data.seed, loaded),
        on_progress,
    )
    return StepResult("ensemble", run, dict(result, dataset=ds.name, n_test=len(ds.y_test)))


def tune(request: TuneRequest, on_progress: progress.Progress | None = None) -> StepResult:
    space = request.check()
    tracker = tracking.open_if(request.mlflow, request.out)

    def work(ds: Dataset, run: Run) -> dict[str, Any]:
        return pipeline.tune(
            ds,
            request.model,
            run,
            request.data.seed,
            search=request.search,
            cv=request.cv,
            n_iter=request.n_iter,
            train_size=request.train_size,
            space=space,
            n_jobs=request.n_jobs,
            scheduler=request.scheduler,
            dask_local=request.dask_local,
            save_as=request.save_as,
        )

    _, run, result = _in_run_folder(
        f"tune-{request.model}", request.data, request.out, work, on_progress, tracker=tracker
    )
    return StepResult("tune", run, result)


def augment(request: AugmentRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    ds, run, result = _in_run_folder(
        "augment",
        request.data,
        request.out,
        lambda ds, run: pipeline.augment_compare(
            ds, request.libraries, request.model, run, request.data.seed, request.factor
        ),
        on_progress,
        job_steps=len(request.libraries),
        tracker=tracker,
    )
    return StepResult("augment", run, dict(result, **_sizes(ds, request.data)))


def run(request: RunRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """The whole pipeline into one run folder, with tuning and augmentation when asked for."""
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    start = time.perf_counter()
    steps = pipeline.run_steps(len(request.models), request.tune is not None, request.augment is not None)
    with progress.reporting(on_progress), progress.job(steps):
        info = {"dataset": request.data.dataset, "seed": request.data.seed, **_subset(request.data)}
        with run_folder(request.out, "run", info) as folder:
            result = pipeline.run_all(
                request.data,
                folder,
                request.models,
                tune_model=request.tune,
                search=request.search,
                augment_library=request.augment,
                augment_model=request.augment_model,
            )
        if tracker is not None:
            examples = pipeline.load(request.data)  # from the cache: real digits for the input example
            result = dict(result, mlflow=_log_to_mlflow(tracker, folder.path, examples))
        progress.finished(f"finished in {time.perf_counter() - start:.0f} s")
    return StepResult("run", folder.path, dict(result, seconds=time.perf_counter() - start))


def personalise(request: PersonaliseRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Adapt a saved model to your digits into a new run folder (``latest`` stays where it was)."""
    from digitlab.data.datasets import DIGIT_NAMES, load_dataset
    from digitlab.training import personalise as personal

    request.check()
    path = find_model(request.model, request.out, (28, 28))
    model, meta = loaded = load_model(path)
    name = str(meta.get("model", model_name(path)))
    personal.kind_of(model, name)  # only the cnn, knn and svm: refused before anything is read
    if list(meta.get("class_names", [])) != list(DIGIT_NAMES) or list(meta.get("image_shape", [])) != [28, 28]:
        raise DigitlabError(
            f"{path}: model {name} reads {meta.get('dataset', 'other')} images, not 28×28 digits 0–9; "
            "personalise a model trained on mnist."
        )
    mine = load_dataset(f"mine:{request.writer}")  # one line when you have saved no digits yet
    data = trained_on(meta, request.data_dir)
    tracker = tracking.open_if(request.mlflow, request.out)
    _, run, result = _in_run_folder(
        f"personalise-{name}",
        data,
        request.out,
        lambda ds, run: pipeline.personalise(mine, (ds, path, loaded), run, request.epochs, request.seed),
        on_progress,
        tracker=tracker,
        latest=False,
    )
    return StepResult("personalise", run, result)


def mlflow_log(runs: list[str], out: Path, again: bool = False) -> StepResult:
    """Log finished run folders to MLflow (default: the latest); one already logged is skipped unless ``again``."""
    folders = [find_run(name, out) for name in runs] if runs else [find_run(None, out)]
    tracker = tracking.open_tracker(out)
    logged = []
    for folder in folders:
        previous = None if again else tracker.find_logged(folder)
        entry = (previous or tracker.log_run(folder)).to_json()
        logged.append(dict(entry, run=str(folder), already=previous is not None))
    return StepResult("mlflow", None, {"tracking_uri": tracker.uri, "logged": logged})


def report(
    run: str | None,
    out: Path,
    output: Path | None = None,
    on_progress: progress.Progress | None = None,
    force: bool = False,
) -> StepResult:
    """The self-contained HTML report of a run folder (default: the latest), your digits measured first if any.

    An ``output`` file that is already there is overwritten only with ``force``."""
    from digitlab.analysis import report as report_lib

    if output is not None:
        check_new_file(output, force)
    path = find_run(run, out)
    with progress.reporting(on_progress):
        pipeline.measure_mine_in(Run(path))
        _look_inside_if_missing(path)
    return StepResult("report", None, report_lib.build(path, output))


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
    settings = pipeline.Settings(
        dataset=str(facts.get("dataset", "mnist")),
        data_dir=data_dir,
        seed=int(facts.get("seed", 0)),
        quick=bool(facts.get("quick", False)),
        smoke=bool(facts.get("smoke", False)),
    )
    return pipeline.load(settings)


def _look_inside_if_missing(path: Path) -> None:
    """Explanations for the report's "What the models look at" when the run has models but no look.json yet."""
    if (path / "look.json").is_file() or not (path / "models").is_dir():
        return
    progress.say("look inside", "what the models look at: loading the run's digits")
    try:
        pipeline.look_inside(run_dataset(path), Run(path))
    except DigitlabError as exc:  # the data or a model is not at hand: the report says the section is empty
        progress.say("look inside", f"what the models look at is left out: {exc}")


# --- the dashboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How to start the dashboard: the command, its environment and the run it shows."""

    command: list[str]
    env: dict[str, str]
    run: Path | None


def dashboard_launch(request: DashboardRequest) -> Launch:
    request.check()
    path = find_run(request.run, request.out) if request.run else latest_run(request.out)
    env = dict(os.environ, **{RUNS_ENV: str(path.parent if path is not None else Path(request.out).resolve())})
    if path is not None:
        env[RUN_ENV] = str(path)
    cmd = [sys.executable, "-m", "streamlit", "run", str(dashboard_app()), "--server.port", str(request.port)]
    cmd += ["--server.address", request.address, "--server.headless", str(not request.browser).lower()]
    cmd += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    cmd += ["--client.toolbarMode", "minimal"]
    return Launch(cmd, env, path)


def dashboard_app() -> Path:
    """The dashboard's Streamlit script, found without importing the dashboard (a face)."""
    from importlib.util import find_spec

    spec = find_spec("digitlab.faces.dashboard")
    if spec is None or spec.origin is None:
        raise DigitlabError("the digitlab dashboard is not installed with this copy of digitlab; reinstall it.")
    return Path(spec.origin).with_name("app.py")
