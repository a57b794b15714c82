"""What a dataset looks like, as plain numbers (the figures live in ``plots``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from digitlab.data.datasets import Dataset
from digitlab.features.transforms import pixel_stats


def counts_per_class(y: np.ndarray, n_classes: int) -> list[int]:
    return [int(c) for c in np.bincount(y, minlength=n_classes)]


def describe(ds: Dataset, pixels: bool = True) -> dict[str, Any]:
    """Shapes, dtypes, classes, examples per class and (unless ``pixels`` is off) pixel statistics."""
    return {
        "dataset": ds.name,
        "classes": list(ds.class_names),
        "image_shape": list(ds.image_shape),
        "splits": {
            split: {
                "x_shape": list(x.shape),
                "x_dtype": str(x.dtype),
                "y_shape": list(y.shape),
                "y_dtype": str(y.dtype),
                "per_class": counts_per_class(y, ds.n_classes),
                **({"pixels": pixel_stats(x)} if pixels else {}),
            }
            for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test))
        },
    }


def examples_per_class(x: np.ndarray, y: np.ndarray, n_classes: int, k: int = 10, random_state: int = 0) -> np.ndarray:
    """``k`` random examples of each class, shape ``(n_classes, k, H, W)``; blank where a class has fewer."""
    rng = np.random.default_rng(random_state)
    grid = np.zeros((n_classes, k, *x.shape[1:]), dtype=x.dtype)
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        pick = rng.choice(idx, size=min(k, len(idx)), replace=False) if len(idx) else idx
        grid[c, : len(pick)] = x[pick]
    return grid


def mean_per_class(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean image of each class, ``(n_classes, H, W)`` float64."""
    out = np.zeros((n_classes, *x.shape[1:]))
    for c in range(n_classes):
        members = x[y == c]
        if len(members):
            out[c] = members.mean(axis=0)
    return out
