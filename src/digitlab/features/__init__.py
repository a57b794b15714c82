"""Features: transformers on images (transforms.py) and augmentation back ends (augment/).

Saved scikit-learn pipelines name their steps ``digitlab.features.Deskew`` and so on (skops stores the
class's module): those names resolve here, from transforms.py, without loading scikit-learn for a caller
that only wants ``digitlab.features.augment``.
"""

from __future__ import annotations

import importlib
from typing import Any

SAVED = ("Deskew", "Flatten", "ScaleImages", "ReduceDims", "StandardiseImages")


def __getattr__(name: str) -> Any:
    if name in SAVED:
        return getattr(importlib.import_module("digitlab.features.transforms"), name)
    raise AttributeError(f"module 'digitlab.features' has no attribute {name!r}")
