"""The robustness suite: fixed, deterministic transformations of test images, used only to
*measure* how a model copes with the ways people really write (never to train)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from digitlab.features.augment.base import check_batch, require


def _warp(images: np.ndarray, angle: float = 0.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    cv2 = require("cv2", "opencv-python-headless")
    _, h, w = images.shape
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)  # (2, 3)
    m[:, 2] += (dx * w / 28.0, dy * h / 28.0)  # shifts are given at 28×28
    return np.stack([cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) for img in images])


def _morph(images: np.ndarray, thicker: bool) -> np.ndarray:
    cv2 = require("cv2", "opencv-python-headless")
    kernel = np.ones((2, 2), np.uint8)
    op = cv2.dilate if thicker else cv2.erode
    return np.stack([op(img, kernel) for img in images])


def _noise(images: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)  # fixed: the suite is the same every time
    noisy = images.astype(np.float32) + rng.normal(0.0, 40.0, images.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rotated -15°": lambda x: _warp(x, angle=-15.0),
    "rotated +15°": lambda x: _warp(x, angle=15.0),
    "shifted 3 px right/down": lambda x: _warp(x, dx=3.0, dy=3.0),
    "shifted 3 px left/up": lambda x: _warp(x, dx=-3.0, dy=-3.0),
    "thicker strokes": lambda x: _morph(x, thicker=True),
    "thinner strokes": lambda x: _morph(x, thicker=False),
    "noise (σ=40)": _noise,
}


def robustness(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """Accuracy on the clean test images and on each transformed copy, and their mean."""
    x_test = check_batch(x_test)
    scores = {"clean": float((model.predict(x_test) == y_test).mean())}
    for name, transform in TRANSFORMS.items():
        scores[name] = float((model.predict(transform(x_test)) == y_test).mean())
    transformed = [v for k, v in scores.items() if k != "clean"]
    return {"accuracy": scores, "mean_transformed": float(np.mean(transformed))}
