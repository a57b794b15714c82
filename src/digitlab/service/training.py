"""Train one model, compare several (each evaluated), or soft-vote saved ones: request → check → work → record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.files import save_figure
from digitlab.data.datasets import Dataset
from digitlab.features.transforms import (
    deskew_memo,
)
from digitlab.models import checking
from digitlab.models.store import load_model, model_name, model_path, save_model
from digitlab.runs.folders import Run, record_model
from digitlab.runs.lookup import find_model
from digitlab.runs.records import Compare, Ensemble, ModelRow, Summary
from digitlab.service import tracking
from digitlab.service.base import StepResult, in_run_folder, sizes
from digitlab.service.evaluating import Loaded, evaluation_figures, load_for
from digitlab.service.exporting import remember_cnn
from digitlab.service.requests import (
    CompareRequest,
    EnsembleRequest,
    TrainRequest,
    image_shape_of,
)
from digitlab.training.train import Trained, model_metadata, score_model, train_and_score


def model_size(path: Path) -> int:
    return path.stat().st_size


def train_into(ds: Dataset, name: str, run: Run, seed: int = 0) -> ModelRow:
    """Fit one model, save it with its metadata, write its metrics and its evaluation (figures, every answer)."""
    progress.step(f"train {name}", f"training {name} on {len(ds.y_train):,} images")
    trained = train_and_score(name, ds, seed)
    row = save_trained(trained, ds, run, seed)
    Summary.of(dict(row.to_json(), **trained.metrics)).save(run.path)
    # its evaluation too (figures, every answer): the dashboard and the report of a one-model run show it
    evaluation_figures(trained.metrics, trained.proba, ds, run, trained.name)
    return row


def save_trained(trained: Trained, ds: Dataset, run: Run, seed: int) -> ModelRow:
    meta = model_metadata(trained, ds, seed)
    path = save_model(model_path(run.models, trained.name, trained.model), trained.model, meta)
    remember_cnn(trained.model, path)  # a cnn's ONNX copy in the reading cache: `predict` reads it without PyTorch
    checking.remember(trained.model, path, len(ds.y_train))  # its reading check: `best` if it beats the shipped
    record_model(
        run,
        trained.name,
        path,
        {"image_shape": meta["image_shape"], "dataset": meta["dataset"], "accuracy": trained.metrics["accuracy"]},
    )
    row = {
        "model": trained.name,
        "accuracy": trained.metrics["accuracy"],
        "macro_f1": trained.metrics["macro_f1"],
        "fit_s": trained.fit_s,
        "predict_s": trained.predict_s,
        "size_bytes": model_size(path),
        "path": str(path),
    }
    return ModelRow.of(row)


def compare_into(ds: Dataset, names: Sequence[str], run: Run, seed: int = 0, evaluate_each: bool = True) -> Compare:
    """Train each model with the same data and seed; table, chart, and per-model evaluation."""
    rows, evaluations = [], {}
    with deskew_memo():  # the models sharing the deskew front straighten the digits once between them
        for k, name in enumerate(names, 1):
            progress.step(f"train {name}", f"[{k}/{len(names)}] training {name} on {len(ds.y_train):,} images")
            trained = train_and_score(name, ds, seed)
            rows.append(save_trained(trained, ds, run, seed))
            if evaluate_each:
                evaluations[name] = evaluation_figures(trained.metrics, trained.proba, ds, run, name)
    fig = plots.comparison(
        names, [r.accuracy for r in rows], [r.fit_s or 0.0 for r in rows], [r.predict_s or 0.0 for r in rows]
    )
    chart = save_figure(fig, run.figures / "comparison.png")
    best = max(rows, key=lambda r: r.accuracy)
    result = {
        "dataset": ds.name,
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "seed": seed,
        "models": rows,
        "best": best.model,
        "figure": str(chart.relative_to(run.path)),
        "evaluations": evaluations,
    }
    return Compare.of(result).saved(run.path)


def ensemble_into(
    ds: Dataset,
    paths: Sequence[Path],
    run: Run,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    models: Sequence[Loaded] | None = None,
) -> Ensemble:
    """Soft-vote saved models (nothing is retrained); score members and ensemble on the test split."""
    from digitlab.models.ensemble import SoftVote

    loaded = [load_for(ds, p, models[k] if models else None) for k, p in enumerate(paths)]
    names = [str(meta.get("model", model_name(p))) for (_, meta), p in zip(loaded, paths, strict=True)]
    vote = SoftVote.from_fitted([m for m, _ in loaded], names, weights)
    probs = vote.member_probabilities(ds.x_test)  # each (n_test, k)
    members = [
        {"model": name, "path": str(p), "accuracy": float((vote.classes_[pr.argmax(1)] == ds.y_test).mean())}
        for name, p, pr in zip(names, paths, probs, strict=True)
    ]
    _, proba, predict_s, metrics = score_model(vote, ds)
    trained = Trained("ensemble", vote, 0.0, predict_s, vote.classes_[proba.argmax(1)], proba, metrics)
    row = save_trained(trained, ds, run, seed)
    evaluation = evaluation_figures(metrics, proba, ds, run, "ensemble")
    result = {
        "members": members,
        "weights": list(vote.normalised_weights()),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "predict_s": predict_s,
        "model_path": row.path,
        "figures": evaluation.figures,
    }
    return Ensemble.of(result).saved(run.path)


def train(request: TrainRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    ds, run, row = in_run_folder(
        f"train-{request.model}",
        request.data,
        request.out,
        lambda ds, run: train_into(ds, request.model, run, request.data.seed),
        on_progress,
        tracker=tracker,
    )
    return StepResult("train", run, row.adding(**sizes(ds, request.data)))


def compare(request: CompareRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    _, run, result = in_run_folder(
        "compare",
        request.data,
        request.out,
        lambda ds, run: compare_into(ds, request.models, run, request.data.seed),
        on_progress,
        job_steps=len(request.models),
        tracker=tracker,
    )
    return StepResult("compare", run, result)


def ensemble(request: EnsembleRequest, on_progress: progress.Progress | None = None) -> StepResult:
    weights = request.check()
    shape = image_shape_of(request.data.dataset)
    paths = [find_model(spec, request.out, shape) for spec in request.models]
    loaded = [load_model(path) for path in paths]
    ds, run, result = in_run_folder(
        "ensemble",
        request.data,
        request.out,
        lambda ds, run: ensemble_into(ds, paths, run, weights, request.data.seed, loaded),
        on_progress,
    )
    return StepResult("ensemble", run, result.adding(dataset=ds.name, n_test=len(ds.y_test)))
