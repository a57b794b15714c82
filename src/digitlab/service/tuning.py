"""Cross-validated search on the training split; the refitted best scored once on the test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import save_figure
from digitlab.data.datasets import Dataset
from digitlab.runs.folders import Run
from digitlab.runs.records import Tune
from digitlab.service import tracking
from digitlab.service.base import StepResult, in_run_folder, sha256_of
from digitlab.service.evaluating import evaluation_figures
from digitlab.service.requests import (
    TuneRequest,
)
from digitlab.service.training import save_trained
from digitlab.training.train import Trained, score_model


def tune_into(
    ds: Dataset,
    name: str,
    run: Run,
    seed: int = 0,
    search: str = "grid",
    cv: int = 3,
    n_iter: int = 10,
    train_size: int | None = None,
    space: dict[str, list[Any]] | None = None,
    n_jobs: int | None = -1,
    scheduler: str | None = None,
    dask_local: int | None = None,
    save_as: str | None = None,
) -> Tune:
    """Cross-validated search on the training split only; the test split scores the refitted best once.

    The refitted model and its evaluation are saved under ``save_as`` (default: the model's name).
    """
    saved_name = save_as or name
    from digitlab.training import tune as tune_lib

    x_search, y_search = ds.x_train, ds.y_train  # the test split is never handed to the search
    if train_size is not None:
        if train_size < 10 * cv:
            raise DigitlabError(f"--train-size {train_size}: too small for {cv}-fold search; use at least {10 * cv}.")
        searched = ds.subset(train_size, None, random_state=seed)
        x_search, y_search = searched.x_train, searched.y_train
    progress.step(f"tune {name}", f"tune {name}: {search} search, {cv}-fold CV on {len(y_search):,} training images")
    found = tune_lib.tune(
        name,
        x_search,
        y_search,
        search=search,
        cv=cv,
        n_iter=n_iter,
        space=space,
        random_state=seed,
        n_jobs=n_jobs,
        scheduler=scheduler,
        dask_local=dask_local,
        dataset=ds.name,
    )
    progress.say(f"tune {name}", f"tune {name}: scoring the refitted best model on the test split (once)")
    y_pred, proba, predict_s, metrics = score_model(found.model, ds)
    trained = Trained(saved_name, found.model, found.seconds, predict_s, y_pred, proba, metrics)
    row = save_trained(trained, ds, run, seed)
    figures: dict[str, str] = {}
    full_space = tune_lib.space_for(name, space)
    varied = {k: v for k, v in full_space.items() if len(v) > 1}
    if search == "grid" and len(varied) == 2:
        figures["heatmap"] = str(_tune_heatmap(found, varied, saved_name, run).relative_to(run.path))
    evaluation = evaluation_figures(metrics, proba, ds, run, saved_name)
    result = {
        "model": name,
        "saved_as": saved_name,
        "search": search,
        "cv": cv,
        "backend": found.backend,
        "seconds": found.seconds,
        "n_train_searched": found.n_samples,
        "n_candidates": found.n_candidates,
        "n_fits": found.n_fits,
        "search_data_sha256": sha256_of(x_search),
        "best_params": tune_lib.describe_params(found.best_params),
        "best_cv_accuracy": found.best_cv_accuracy,
        "candidates": [dict(c, params=tune_lib.describe_params(c["params"])) for c in found.candidates],
        "test": {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "n_test": metrics["n_test"],
            "note": "the test split was used once, after the search, to score the refitted best model",
        },
        "model_path": row.path,
        "figures": {**figures, **evaluation.figures},
    }
    return Tune.of(result).saved(run.path)


def _tune_heatmap(found: Any, varied: dict[str, list[Any]], name: str, run: Run) -> Path:
    from digitlab.training.tune import describe_params

    (rows_key, row_values), (cols_key, col_values) = varied.items()
    row_labels = [describe_params({rows_key: v})[rows_key] for v in row_values]
    col_labels = [describe_params({cols_key: v})[cols_key] for v in col_values]
    values = np.full((len(row_labels), len(col_labels)), np.nan)  # (rows, cols) mean CV accuracy
    for cand in found.candidates:
        shown = describe_params(cand["params"])
        values[row_labels.index(shown[rows_key]), col_labels.index(shown[cols_key])] = cand["mean_cv_accuracy"]
    fig = plots.heatmap(values, row_labels, col_labels, rows_key, cols_key, f"{name}: mean CV accuracy")
    return save_figure(fig, run.figures / f"{name}-tune-heatmap.png")


def tune(request: TuneRequest, on_progress: progress.Progress | None = None) -> StepResult:
    space = request.check()
    tracker = tracking.open_if(request.mlflow, request.out)

    def work(ds: Dataset, run: Run) -> Tune:
        return tune_into(
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

    _, run, result = in_run_folder(
        f"tune-{request.model}", request.data, request.out, work, on_progress, tracker=tracker
    )
    return StepResult("tune", run, result)
