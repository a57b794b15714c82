"""The models and augmentation back ends you can ask for, with what each is good and bad at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from digitlab.features.augment import names as augment_backends
from digitlab.models import registry


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    description: str
    pros: str
    cons: str
    search_space: Mapping[str, list[str]]


AUGMENTERS = tuple(augment_backends())  # albumentations, opencv, keras, elastic


def model_catalogue() -> list[ModelInfo]:
    return [
        ModelInfo(
            s.name,
            s.family,
            s.description,
            s.pros,
            s.cons,
            {k: [repr(v) for v in vs] for k, vs in s.search_space.items()},
        )
        for s in (registry.get(n) for n in registry.names())
    ]


def model_names() -> list[str]:
    return registry.names()


def aspects(names: list[str]) -> list[dict[str, str]]:
    """Family, description, pros and cons of saved models (by saved name)."""
    from digitlab.analysis.report import aspects as report_aspects

    return report_aspects(names)


def library_version() -> str:
    """digitlab's installed version."""
    from digitlab.core.files import library_versions

    return library_versions().get("digitlab", "unknown")


def shipped_reader() -> dict[str, Any] | None:
    """What the reader digitlab ships is and how it measured (its manifest), or None when this copy has none."""
    from digitlab.models import shipped

    if not shipped.available():
        return None
    found = shipped.manifest()
    return {
        "name": shipped.NAME,
        "recipe": found.get("recipe"),
        "seed": found.get("seed"),
        "command": found.get("command"),
        "figures": found.get("figures", {}),
        "why": shipped.why(),
    }
