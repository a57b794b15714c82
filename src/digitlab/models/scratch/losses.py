"""Losses on raw scores (logits), each returning the mean loss and its gradient. NumPy only."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores (B, K), shifted by the row max for stability."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """L = -mean log softmax(z)[y].   dL/dz = (softmax(z) - onehot(y)) / B.

    z: (B, K) scores; y: (B,) class indices in [0, K).
    """
    b = len(y)
    shifted = z - z.max(axis=1, keepdims=True)  # (B, K)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (B, K) log-probabilities
    loss = -float(log_p[np.arange(b), y].mean())
    grad = np.exp(log_p)  # (B, K) probabilities
    grad[np.arange(b), y] -= 1.0
    return loss, grad / b


def multiclass_hinge(z: np.ndarray, y: np.ndarray, margin: float = 1.0) -> tuple[float, np.ndarray]:
    """Crammer–Singer-style sum of hinges (Weston–Watkins): L = mean Σ_{j≠y} max(0, z_j - z_y + margin).

    dL/dz_j = [violated_j] / B for j ≠ y;  dL/dz_y = -(number violated) / B.
    """
    b = len(y)
    correct = z[np.arange(b), y][:, None]  # (B, 1)
    slack = np.maximum(0.0, z - correct + margin)  # (B, K)
    slack[np.arange(b), y] = 0.0
    loss = float(slack.sum(axis=1).mean())
    grad = (slack > 0).astype(z.dtype)  # (B, K)
    grad[np.arange(b), y] = -grad.sum(axis=1)
    return loss, grad / b
