"""Turning images into the arrays the from-scratch models learn from. NumPy only."""

from __future__ import annotations

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.features.transforms import deskew as deskew_images  # NumPy-only moments + shear


def to_features(x: np.ndarray, deskew: bool) -> np.ndarray:
    """Images (n, H, W) -> rows (n, H·W) in [0, 1] (float32); feature rows (n, d) pass through as float32."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x.astype(np.float32)
    if x.ndim != 3:
        raise DigitlabError(f"expected images (n, H, W) or feature rows (n, d), got shape {x.shape}.")
    if deskew:
        x = deskew_images(x)
    return (x.reshape(len(x), -1) / np.float32(255.0)).astype(np.float32)


def to_channels(x: np.ndarray, deskew: bool) -> np.ndarray:
    """Images (n, H, W) -> (n, H, W, 1) in [0, 1] (float32, channels last), for the convolutional network."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise DigitlabError(f"scratch-cnn needs images (n, H, W), got shape {x.shape}.")
    if deskew:
        x = deskew_images(x)
    return (x[..., None] / np.float32(255.0)).astype(np.float32)


class PCA:
    """Principal components by eigen-decomposition of the covariance matrix."""

    def __init__(self, n_components: int) -> None:
        self.n_components = n_components

    def fit(self, x: np.ndarray) -> PCA:
        self.mean_ = x.mean(axis=0)  # (d,)
        centred = (x - self.mean_).astype(np.float64)  # (n, d)
        cov = centred.T @ centred / max(len(x) - 1, 1)  # (d, d)
        _, vectors = np.linalg.eigh(cov)  # eigenvalues ascending
        k = min(self.n_components, x.shape[0], x.shape[1])
        self.components_ = vectors[:, ::-1][:, :k].T.astype(np.float32)  # (k, d), largest variance first
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_).astype(np.float64) @ self.components_.T.astype(np.float64)  # (n, k)
