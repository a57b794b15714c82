"""Evaluate a saved model on the test split (and transformed copies of it): figures, every answer, a record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import save_figure, write_arrays
from digitlab.data.datasets import Dataset
from digitlab.models.store import load_model, model_name
from digitlab.runs.folders import Run
from digitlab.runs.lookup import find_model
from digitlab.runs.records import Evaluation
from digitlab.service.base import StepResult, in_run_folder
from digitlab.service.requests import (
    EvaluateRequest,
    image_shape_of,
)
from digitlab.training.train import score_model

Loaded = tuple[Any, dict[str, Any]]  # (fitted model, its metadata), as store.load_model returns


Ds_and_model = tuple[Dataset, Path, Loaded]  # the data a model was trained on, its file, the model


def load_for(ds: Dataset, path: Path, loaded: Loaded | None = None) -> Loaded:
    model, meta = loaded if loaded is not None else load_model(path)
    if list(meta.get("image_shape", ds.image_shape)) != list(ds.image_shape):
        raise DigitlabError(
            f"{path}: model expects {tuple(meta['image_shape'])} images but dataset {ds.name} has "
            f"{ds.image_shape}; pass the dataset it was trained on with --dataset."
        )
    return model, meta


def evaluate_into(ds: Dataset, path: Path, run: Run, robust: bool = False, loaded: Loaded | None = None) -> Evaluation:
    """Evaluate a saved model on the test split; with ``robust``, also on transformed test copies.

    Everything, robustness included, is saved in ``evaluate-<model>.json`` (the report reads it).
    """
    model, meta = load_for(ds, path, loaded)
    name = str(meta.get("model", model_name(path)))
    progress.step(f"evaluate {name}", f"evaluating {name} on {len(ds.y_test):,} test images")
    _, proba, predict_s, metrics = score_model(model, ds)
    extra: dict[str, Any] = {"model_path": str(path), "predict_s": predict_s, "trained_on": meta.get("dataset")}
    if robust:
        from digitlab.features.augment.robustness import robustness

        progress.step("robustness", f"scoring {name} on transformed copies of the test images")
        extra["robustness"] = robustness(model, ds.x_test, ds.y_test)
    return evaluation_figures(metrics, proba, ds, run, name, extra)


def evaluation_figures(
    metrics: dict[str, Any], proba: np.ndarray, ds: Dataset, run: Run, name: str, extra: dict[str, Any] | None = None
) -> Evaluation:
    cm = np.asarray(metrics["confusion_matrix"])
    figs = {
        "confusion_matrix": save_figure(
            plots.confusion_matrix(cm, ds.class_names, f"{name}: confusion matrix"),
            run.figures / f"{name}-confusion.png",
        )
    }
    figs["predictions"] = save_figure(_predictions_grid(proba, ds, name), run.figures / f"{name}-predictions.png")
    wrong = metrics["misclassified"][:30]
    if wrong:
        cols = 10
        rows = (len(wrong) + cols - 1) // cols
        grid = np.zeros((rows, cols, *ds.image_shape), dtype=np.uint8)
        captions = [""] * (rows * cols)
        for k, item in enumerate(wrong):
            grid[k // cols, k % cols] = ds.x_test[item["index"]]
            captions[k] = f"{ds.class_names[item['true']]}→{ds.class_names[item['predicted']]} {item['confidence']:.0%}"
        figs["misclassified"] = save_figure(
            plots.image_grid(
                grid, [""] * rows, f"{name}: most confident mistakes (true→predicted, confidence)", captions
            ),
            run.figures / f"{name}-misclassified.png",
        )
    result = dict(metrics, model=name, figures={k: str(v.relative_to(run.path)) for k, v in figs.items()})
    result.update(extra or {})
    write_arrays(  # every test image's answer: what the dashboard's clickable confusion matrix shows
        run.file(f"evaluate-{name}.npz"),
        predicted=proba.argmax(axis=1).astype(np.int16),
        confidence=proba.max(axis=1).astype(np.float32),
    )
    return Evaluation.of(result).saved(run.path, name)


def read_answers(run: Run, name: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Every test digit's answer by model ``name`` (class index, confidence) from ``evaluate-<name>.npz``.

    None when the run has no such file, it is damaged, or it does not hold ``n`` answers.
    """
    path = run.file(f"evaluate-{name}.npz")
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            predicted, confidence = np.asarray(arrays["predicted"], dtype=np.int64), np.asarray(arrays["confidence"])
    except (OSError, ValueError, KeyError):
        return None
    return (predicted, confidence) if n is None or len(predicted) == n else None


def _predictions_grid(proba: np.ndarray, ds: Dataset, name: str, rows: int = 3, cols: int = 10) -> Any:
    """The first ``rows × cols`` test images with true and predicted labels (mistakes in red)."""
    n = min(rows * cols, len(ds.y_test))
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows, cols, *ds.image_shape), dtype=np.uint8)
    captions, colors = [""] * (rows * cols), ["black"] * (rows * cols)
    predicted = proba.argmax(1)
    for k in range(n):
        grid[k // cols, k % cols] = ds.x_test[k]
        true, pred = ds.class_names[ds.y_test[k]], ds.class_names[predicted[k]]
        captions[k] = f"{true}/{pred}"
        colors[k] = "black" if ds.y_test[k] == predicted[k] else "red"
    return plots.image_grid(
        grid, [""] * rows, f"{name}: true/predicted on the first {n} test images", captions, caption_colors=colors
    )


def evaluate(request: EvaluateRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    path = find_model(request.model, request.out, image_shape_of(request.data.dataset))
    loaded = load_model(path)  # a damaged or foreign file is refused before any data is fetched
    ds, run, result = in_run_folder(
        f"evaluate-{model_name(path)}",
        request.data,
        request.out,
        lambda ds, run: evaluate_into(ds, path, run, robust=request.robustness, loaded=loaded),
        on_progress,
    )
    return StepResult("evaluate", run, result.adding(dataset=ds.name))
