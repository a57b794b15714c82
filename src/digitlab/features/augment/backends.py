"""The name -> back end table: each back end is imported only when asked for."""

from __future__ import annotations

from collections.abc import Callable

from digitlab.core.errors import DigitlabError
from digitlab.features.augment.base import Augmenter


def _opencv() -> Augmenter:
    from digitlab.features.augment.opencv import OpenCVAugmenter

    return OpenCVAugmenter()


def _albumentations() -> Augmenter:
    from digitlab.features.augment.albumentations_backend import AlbumentationsAugmenter

    return AlbumentationsAugmenter()


def _keras() -> Augmenter:
    from digitlab.features.augment.keras_backend import KerasAugmenter

    return KerasAugmenter()


def _elastic() -> Augmenter:
    from digitlab.features.augment.elastic import ElasticAugmenter

    return ElasticAugmenter()


BACKENDS: dict[str, Callable[[], Augmenter]] = {
    "albumentations": _albumentations,
    "opencv": _opencv,
    "keras": _keras,
    "elastic": _elastic,
}


def names() -> list[str]:
    return list(BACKENDS)


def get_augmenter(name: str) -> Augmenter:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise DigitlabError(f"unknown augmentation library {name!r}; choose one of {', '.join(BACKENDS)}.") from None
    return factory()
