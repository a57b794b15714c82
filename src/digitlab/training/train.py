"""Fit one registry model on a dataset, time it, score it on the test set."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from digitlab.analysis.evaluate import evaluate_predictions
from digitlab.core import progress
from digitlab.data.datasets import Dataset
from digitlab.features.transforms import deskew_reused_s
from digitlab.models import registry


@dataclass
class Trained:
    name: str
    model: Any
    fit_s: float
    predict_s: float
    y_pred: np.ndarray  # (n_test,)
    proba: np.ndarray  # (n_test, n_classes)
    metrics: dict[str, Any]


def _seconds_alone(start: float, reused: float) -> float:
    """Seconds since ``start``, plus any deskewing another model did for this one (so times compare fairly)."""
    return time.perf_counter() - start + deskew_reused_s() - reused


def fit_model(name: str, ds: Dataset, random_state: int = 0) -> tuple[Any, float]:
    """Build ``name`` from the registry and fit it on the training split; return it and seconds (fitted alone)."""
    model = registry.build(name, random_state, ds.name)
    start, reused = time.perf_counter(), deskew_reused_s()
    with warnings.catch_warnings():
        # a fixed epoch budget is a choice, not a failure to converge
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(ds.x_train, ds.y_train)
    return model, _seconds_alone(start, reused)


def score_model(model: Any, ds: Dataset) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    """Predict the test split once: labels, probabilities, seconds (predicted alone) and metrics."""
    start, reused = time.perf_counter(), deskew_reused_s()
    proba = np.asarray(model.predict_proba(ds.x_test))  # (n_test, k)
    y_pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    predict_s = _seconds_alone(start, reused)
    return y_pred, proba, predict_s, evaluate_predictions(ds.y_test, y_pred, proba, ds.class_names)


def train_and_score(name: str, ds: Dataset, random_state: int = 0) -> Trained:
    progress.say(f"fit {name}", f"fitting {name} on {len(ds.y_train):,} images", level=progress.INNER)
    model, fit_s = fit_model(name, ds, random_state)
    progress.say(f"predict {name}", f"predicting {len(ds.y_test):,} test images with {name}", level=progress.INNER)
    y_pred, proba, predict_s, metrics = score_model(model, ds)
    return Trained(name, model, fit_s, predict_s, y_pred, proba, metrics)


def model_metadata(trained: Trained, ds: Dataset, random_state: int) -> dict[str, Any]:
    spec = registry.lookup(registry.base_name(trained.name))
    files = ds.provenance.get("files", {})
    return {
        "model": trained.name,
        "description": spec.description if spec else "",
        "family": spec.family if spec else "",
        "dataset": ds.name,
        "class_names": list(ds.class_names),
        "image_shape": list(ds.image_shape),
        "checksums": {name: info.get("sha256") for name, info in files.items()},
        "subset": ds.provenance.get("subset"),
        "params": {k: repr(v) for k, v in trained.model.get_params(deep=True).items() if not hasattr(v, "get_params")},
        "metrics": {
            "accuracy": trained.metrics["accuracy"],
            "macro_f1": trained.metrics["macro_f1"],
            "fit_s": trained.fit_s,
            "predict_s": trained.predict_s,
        },
        "seed": random_state,
        "cpu_count": os.cpu_count(),
    }
