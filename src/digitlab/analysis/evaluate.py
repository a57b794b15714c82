"""Scores of a fitted classifier on a labelled test set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics


def confused_pairs(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of ``cm`` (rows: true, columns: predicted).

    Each entry is one direction (true 4 read as 9 is not the same mistake as 9 read as 4),
    with the share of that true class it takes.
    """
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        row_total = int(cm[i].sum())
        pairs.append(
            {
                "true": class_names[i],
                "predicted": class_names[j],
                "count": int(off[i, j]),
                "share_of_true": float(off[i, j] / row_total) if row_total else 0.0,
            }
        )
    return pairs


def misclassified(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, limit: int = 40
) -> list[dict[str, Any]]:
    """Indices of wrong predictions, most confident mistakes first."""
    wrong = np.flatnonzero(y_true != y_pred)
    conf = proba[wrong, y_pred[wrong]] if proba is not None else np.zeros(len(wrong))
    order = np.argsort(-conf, kind="stable")[:limit]
    return [
        {
            "index": int(wrong[k]),
            "true": int(y_true[wrong[k]]),
            "predicted": int(y_pred[wrong[k]]),
            "confidence": float(conf[k]),
        }
        for k in order
    ]


def evaluate_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1, confusion matrix, per-class report, confused pairs, misclassified."""
    labels = list(range(len(class_names)))
    cm = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    report = metrics.classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        "n_test": len(y_true),
        "n_errors": int((y_true != y_pred).sum()),
        "confusion_matrix": cm.tolist(),
        "report": report,
        "confused_pairs": confused_pairs(cm, class_names),
        "misclassified": misclassified(y_true, y_pred, proba),
    }
