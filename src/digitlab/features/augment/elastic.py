"""Elastic distortion after Simard, Steinkraus and Platt (2003), in NumPy/SciPy.

Each image gets a random displacement field: uniform noise in [-1, 1] per pixel and axis,
smoothed by a Gaussian of width ``sigma`` and scaled by ``alpha`` pixels, then sampled
bilinearly. Small ``sigma`` gives random jitter; large ``sigma`` nearly a translation;
``sigma`` ≈ 4 and ``alpha`` ≈ 34 (at 28×28) look like natural variations of handwriting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from digitlab.features.augment.base import check_batch


@dataclass(frozen=True)
class ElasticAugmenter:
    name: str = "elastic"
    alpha: float = 34.0  # displacement scale in pixels (at 28×28, scaled with the image)
    sigma: float = 4.0  # smoothness of the field in pixels (at 28×28, scaled with the image)

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = check_batch(images)
        n, h, w = images.shape
        size = min(h, w) / 28.0
        noise = rng.uniform(-1.0, 1.0, size=(2, n, h, w))  # (2, n, H, W): row and column fields
        field = ndimage.gaussian_filter(noise, sigma=(0, 0, self.sigma * size, self.sigma * size), mode="constant")
        field *= self.alpha * size
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (H, W) each
        coords = [
            np.broadcast_to(np.arange(n)[:, None, None], (n, h, w)).astype(np.float64),  # image index, unchanged
            rows[None] + field[0],  # (n, H, W)
            cols[None] + field[1],  # (n, H, W)
        ]
        out = ndimage.map_coordinates(images.astype(np.float32), coords, order=1, mode="constant", cval=0.0)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
