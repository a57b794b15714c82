"""The Augmenter interface and the name -> back end table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from digitlab.errors import DigitlabError


class Augmenter(Protocol):
    @property
    def name(self) -> str: ...

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random variants of ``images`` (n, H, W) uint8, same shape and dtype."""
        ...


def _opencv() -> Augmenter:
    from digitlab.augment.opencv import OpenCVAugmenter

    return OpenCVAugmenter()


BACKENDS: dict[str, Callable[[], Augmenter]] = {"opencv": _opencv}


def names() -> list[str]:
    return list(BACKENDS)


def get_augmenter(name: str) -> Augmenter:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise DigitlabError(f"unknown augmentation library {name!r}; choose one of {', '.join(BACKENDS)}.") from None
    return factory()


def check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DigitlabError(f"augmenters take uint8 images (n, H, W), got {images.dtype} {images.shape}.")
    return images
