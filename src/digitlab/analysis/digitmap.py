"""A 2-D map of many digits: features (the cnn's penultimate layer or PCA-50 of pixels), then UMAP or t-SNE.

UMAP (umap-learn) gets its k-nearest-neighbour graph from scikit-learn's exact search instead of
pynndescent: on 10,000 digits the exact search takes under a second, and it spares pynndescent's
numba compilation (about 40 s in every fresh process). New digits (your drawing) are placed at the
distance-weighted mean of their nearest mapped neighbours in feature space, which is where UMAP's own
``transform`` starts them; its optimisation would cost another numba compilation of about 100 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError

FEATURES = ("cnn", "pca")
METHODS = ("umap", "tsne")
N_NEIGHBORS = 15  # UMAP's default
PCA_DIMS = 50


@dataclass
class Embedding:
    xy: np.ndarray  # (n, 2) float32
    features: np.ndarray  # (n, d) float32: what was mapped
    seconds_features: float
    seconds_embedding: float
    parameters: dict[str, Any]


def cnn_features(model: Any, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The cnn's penultimate activations (what its last dense layer reads) for (n, H, W) uint8 images: (n, d)."""
    import torch

    est = getattr(model, "model_", model)
    net = getattr(est, "network_", None)
    if net is None:
        raise DigitlabError(
            "the map's cnn features need a saved cnn (`digitlab train --model cnn`), or use --model pca."
        )
    head = net[:-1].eval()  # everything but the last Linear: dropout is off in eval mode
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(images[s : s + batch].astype(np.float32) / 255.0)[:, None].to(device)
            out.append(head(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


class PixelPCA:
    """PCA-50 of pixels scaled to [0, 1]; keeps what it needs to place new digits."""

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        self.pca_ = PCA(n_components=min(PCA_DIMS, *x.shape), random_state=self.random_state).fit(x)
        return self.transform(images)

    def transform(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return np.asarray(self.pca_.transform(x), dtype=np.float32)


def embed(features: np.ndarray, method: str = "umap", random_state: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """(n, d) features -> (n, 2) coordinates and the parameters used."""
    n = len(features)
    if n < 5:
        raise DigitlabError(f"a map needs at least 5 digits, got {n}.")
    if method == "umap":
        import warnings

        from sklearn.neighbors import NearestNeighbors

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba's and umap's import-time notices
            import umap

        k = min(N_NEIGHBORS, n - 1)
        distances, indices = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(features)
        params = {"n_neighbors": k, "min_dist": 0.1, "n_epochs": 200, "random_state": random_state, "knn": "exact"}
        reducer = umap.UMAP(
            n_neighbors=k,
            min_dist=0.1,
            n_epochs=200,
            random_state=random_state,
            precomputed_knn=(indices, distances, None),
            n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so keeps it quiet
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xy = reducer.fit_transform(features)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (n - 1) / 3))
        params = {"perplexity": perplexity, "init": "pca", "random_state": random_state}
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(features)
    else:
        raise DigitlabError(f"--method {method!r}: unknown; use one of {', '.join(METHODS)}.")
    return np.asarray(xy, dtype=np.float32), params


def place(features: np.ndarray, xy: np.ndarray, new: np.ndarray, k: int = 10) -> np.ndarray:
    """Where new digits (m, d) go on the map: the 1/distance-weighted mean of their k nearest mapped digits."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(features))
    distances, indices = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(new)
    weights = 1.0 / np.maximum(distances, 1e-6)  # (m, k)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.asarray((xy[indices] * weights[..., None]).sum(axis=1), dtype=np.float32)  # (m, 2)


def build(
    images: np.ndarray, source: str, method: str, model: Any | None = None, random_state: int = 0
) -> tuple[Embedding, PixelPCA | None]:
    """Features of ``images`` from ``source`` ("cnn" with ``model``, or "pca"), embedded by ``method``."""
    if source not in FEATURES:
        raise DigitlabError(f"--model {source!r}: the map's features come from cnn or pca.")
    start = time.perf_counter()
    pca = None
    if source == "cnn":
        features = cnn_features(model, images)
    else:
        pca = PixelPCA(random_state)
        features = pca.fit_transform(images)
    middle = time.perf_counter()
    xy, params = embed(features, method, random_state)
    return Embedding(xy, features, middle - start, time.perf_counter() - middle, params), pca
