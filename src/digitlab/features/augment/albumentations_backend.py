"""Albumentations back end: affine (rotate, scale, shift), elastic transform, grid distortion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.features.augment.base import check_batch, require


@dataclass(frozen=True)
class AlbumentationsAugmenter:
    name: str = "albumentations"
    max_rotation: float = 12.0  # degrees
    max_shift: float = 0.09  # fraction of the side
    p_elastic: float = 0.3
    p_grid: float = 0.3

    def _pipeline(self, seed: int) -> Any:
        a = require("albumentations", "albumentations")
        return a.Compose(
            [
                a.Affine(
                    rotate=(-self.max_rotation, self.max_rotation),
                    scale=(0.9, 1.1),
                    translate_percent=(-self.max_shift, self.max_shift),
                    fill=0,
                    p=1.0,
                ),
                a.ElasticTransform(alpha=20.0, sigma=4.0, p=self.p_elastic),
                a.GridDistortion(num_steps=5, distort_limit=0.2, p=self.p_grid),
            ],
            seed=seed,
        )

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = check_batch(images)
        pipeline = self._pipeline(int(rng.integers(2**31 - 1)))  # all randomness from the caller's rng
        return np.stack([pipeline(image=img)["image"] for img in images]).astype(np.uint8)
