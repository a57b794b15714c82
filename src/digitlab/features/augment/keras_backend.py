"""Keras 3 preprocessing layers (RandomRotation, RandomZoom, RandomTranslation) on the torch
back end (``KERAS_BACKEND=torch``): no TensorFlow needed."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from digitlab.features.augment.base import check_batch, require


@dataclass(frozen=True)
class KerasAugmenter:
    name: str = "keras"
    rotation: float = 12.0 / 360.0  # fraction of a full turn, either way
    zoom: float = 0.1
    shift: float = 0.09  # fraction of the side, either way

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        images = check_batch(images)
        os.environ.setdefault("KERAS_BACKEND", "torch")
        keras = require("keras", "keras")
        seed = int(rng.integers(2**31 - 1))  # all randomness from the caller's rng
        layers = keras.Sequential(
            [
                keras.layers.RandomRotation(self.rotation, fill_mode="constant", seed=seed),
                keras.layers.RandomZoom(self.zoom, fill_mode="constant", seed=seed + 1),
                keras.layers.RandomTranslation(self.shift, self.shift, fill_mode="constant", seed=seed + 2),
            ]
        )
        x = images.astype(np.float32)[..., None]  # (n, H, W, 1) channels last
        out = np.asarray(keras.ops.convert_to_numpy(layers(x, training=True)))[..., 0]  # (n, H, W)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
