"""``digitlab run``: the chain of every step into one run folder (data → explore → preprocess → compare →
evaluate → tune → augment → look inside → report)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from digitlab.core import progress
from digitlab.core.settings import DEFAULT_MODELS
from digitlab.runs.folders import Run, run_folder
from digitlab.runs.records import Summary
from digitlab.service import tracking
from digitlab.service.augmenting import augment_into
from digitlab.service.base import StepResult, _log_to_mlflow, _subset, load
from digitlab.service.data import describe_data, explore_into, preprocess_into
from digitlab.service.explaining import look_inside
from digitlab.service.reporting import report_into
from digitlab.service.requests import RunRequest, Settings
from digitlab.service.training import compare_into
from digitlab.service.tuning import tune_into

STEPS = ("data", "explore", "preprocess", "compare", "evaluate", "report")


def run_all(
    settings: Settings,
    run: Run,
    names: Sequence[str] = DEFAULT_MODELS,
    tune_model: str | None = None,
    search: str = "halving",
    augment_library: str | None = None,
    augment_model: str = "mlp",
) -> Summary:
    """Every step in order, into one run folder; tuning and augmentation when asked for."""
    progress.step("data", "data: loading and verifying")
    ds = load(settings)
    result: dict[str, Any] = {
        "settings": {
            "dataset": settings.dataset,
            "seed": settings.seed,
            "quick": settings.quick,
            **({"smoke": True} if settings.smoke else {}),
            "models": list(names),
        }
    }
    result["data"] = describe_data(ds)
    result["data"].save(run.path)
    progress.step("explore", "explore: statistics and figures")
    result["explore"] = explore_into(ds, run, settings.seed)
    progress.step("preprocess", "preprocess: raw vs normalised")
    result["preprocess"] = preprocess_into(ds, run, settings.seed)
    result["compare"] = compare_into(ds, names, run, settings.seed)
    if tune_model is not None:  # saved beside the untuned model, as <name>-tuned
        result["tune"] = tune_into(ds, tune_model, run, settings.seed, search=search, save_as=f"{tune_model}-tuned")
    if augment_library is not None:
        result["augment"] = augment_into(ds, augment_library, augment_model, run, settings.seed)
    Summary.of(result).save(run.path)
    progress.say("look inside", "what the models look at: weights, units and saliency", level=progress.INNER)
    result["look"] = look_inside(ds, run)
    progress.step("report", "report: one HTML file")
    result["report"] = report_into(run)
    return Summary.of(result)


def run_steps(n_models: int, tune: bool, augment: bool) -> int:
    """How many job steps ``run_all`` announces (for a progress bar)."""
    return 3 + n_models + int(tune) + int(augment) + 1


def run(request: RunRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """The whole pipeline into one run folder, with tuning and augmentation when asked for."""
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    start = time.perf_counter()
    steps = run_steps(len(request.models), request.tune is not None, request.augment is not None)
    with progress.reporting(on_progress), progress.job(steps):
        info = {"dataset": request.data.dataset, "seed": request.data.seed, **_subset(request.data)}
        with run_folder(request.out, "run", info) as folder:
            result = run_all(
                request.data,
                folder,
                request.models,
                tune_model=request.tune,
                search=request.search,
                augment_library=request.augment,
                augment_model=request.augment_model,
            )
        if tracker is not None:
            examples = load(request.data)  # from the cache: real digits for the input example
            result = result.adding(mlflow=_log_to_mlflow(tracker, folder.path, examples))
        progress.finished(f"finished in {time.perf_counter() - start:.0f} s")
    return StepResult("run", folder.path, result.adding(seconds=time.perf_counter() - start))
