"""The Augmenter interface and what every back end shares (optional imports, input checks)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from digitlab.core.errors import DigitlabError


class Augmenter(Protocol):
    @property
    def name(self) -> str: ...

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random variants of ``images`` (n, H, W) uint8, same shape and dtype."""
        ...


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


def check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DigitlabError(f"augmenters take uint8 images (n, H, W), got {images.dtype} {images.shape}.")
    return images
