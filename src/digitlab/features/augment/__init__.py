"""Data augmentation behind one interface: ``Augmenter.augment(images, rng) -> images``.

uint8 images ``(n, H, W)`` in, uint8 images of the same shape out; all randomness comes
from the ``rng`` passed in, so a seed makes every back end repeatable. Augmentation is
for training data only: the pipeline never passes test images here.
"""

from __future__ import annotations

from digitlab.features.augment.backends import get_augmenter, names
from digitlab.features.augment.base import Augmenter

__all__ = ["Augmenter", "get_augmenter", "names"]
