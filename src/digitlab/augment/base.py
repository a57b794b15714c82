"""The Augmenter interface and the name -> back end table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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


def _albumentations() -> Augmenter:
    from digitlab.augment.albumentations_backend import AlbumentationsAugmenter

    return AlbumentationsAugmenter()


def _keras() -> Augmenter:
    from digitlab.augment.keras_backend import KerasAugmenter

    return KerasAugmenter()


def _elastic() -> Augmenter:
    from digitlab.augment.elastic import ElasticAugmenter

    return ElasticAugmenter()


BACKENDS: dict[str, Callable[[], Augmenter]] = {
    "albumentations": _albumentations,
    "opencv": _opencv,
    "keras": _keras,
    "elastic": _elastic,
}
EXTRAS = {"albumentations": "augment", "keras": "keras", "cv2": "augment"}


def require(module: str, package: str) -> Any:
    """Import an optional back end, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DigitlabError(
            f"the {package} back end needs the package {package}; install it with "
            f"`pip install 'digitlab[{EXTRAS.get(module, 'augment')}]'`."
        ) from None


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
