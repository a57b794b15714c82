"""The reader digitlab ships: `predict`, `serve` and Try it answer with it right after install, with no training
and no download (issue 32). ``benchmarks/make_reader.py`` makes it from pinned data and one seed and writes its
files here with their SHA-256 in ``pins.py``; nothing here is loaded unless every file matches its pin.

- ``reader.pt`` + ``reader.pt.json``: the network (a state_dict, loaded with ``weights_only=True``) and its
  config and metadata, read like any saved cnn;
- ``reader.onnx``: the same network for onnxruntime, what `digitlab predict` loads (no PyTorch);
- ``MANIFEST.json``: the recipe, the command, the data it was made from and its figures.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from digitlab.core.errors import DigitlabError

FOLDER = Path(__file__).parent
NAME = "reader"  # the model name users type: `digitlab predict --model reader`
RECIPE = "cnn-hands"  # the registry model it is trained as
MANIFEST = "MANIFEST.json"


def _pins() -> dict[str, str]:
    try:
        from digitlab.models.shipped.pins import SHA256
    except ImportError:  # a copy made before the reader was: nothing is shipped
        return {}
    return dict(SHA256)


@lru_cache(maxsize=1)
def _checked() -> bool:
    """Whether the shipped files are all here and match their pins (hashed once a process, ~1 ms)."""
    return _match(_pins())


def _match(pins: dict[str, str]) -> bool:
    """Whether every pinned file is here (False if one is missing, or nothing is pinned); a file that differs
    from its pin is one line (a damaged install)."""
    if not pins:
        return False
    for name, digest in pins.items():
        path = FOLDER / name
        if not path.is_file():
            return False
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise DigitlabError(
                f"{path}: does not match the SHA-256 digitlab pins for it (a damaged install); reinstall digitlab."
            )
    return True


def available() -> bool:
    return _checked()


def model_path() -> Path:
    """The shipped reader's ``.pt`` (its ``.pt.json`` beside it); one line when this copy has none."""
    if not _checked():
        raise DigitlabError(
            f"this copy of digitlab ships no reader ({FOLDER}); reinstall digitlab, or train one "
            "(`digitlab train --model cnn-hands`) and name it with --model."
        )
    return FOLDER / f"{NAME}.pt"


def is_shipped(path: Path) -> bool:
    try:
        return path.resolve() == (FOLDER / f"{NAME}.pt").resolve()
    except OSError:
        return False


def onnx_path(path: Path) -> Path | None:
    """The shipped ONNX network when ``path`` is the shipped reader (and its files match their pins)."""
    return FOLDER / f"{NAME}.onnx" if is_shipped(path) and _checked() else None


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    try:
        found = json.loads((FOLDER / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def why() -> str:
    """Why the shipped reader answers: what it is and how it measured."""
    accuracy = manifest().get("figures", {}).get("mnist_test_accuracy")
    measured = f": {accuracy:.2%} of the MNIST test set" if isinstance(accuracy, int | float) else ""
    return f"the reader shipped with digitlab ({RECIPE} recipe{measured}); name another with --model"


# --- the line reader (issue 33): whole numbers read at once; its own pins (``line_pins.py``) and manifest ----
LINE_FILES = ("line_reader.pt", "line_reader.onnx")
LINE_MANIFEST = "line_reader.json"


@lru_cache(maxsize=1)
def _line_checked() -> bool:
    """Whether the line reader's files are here and match their pins (a damaged one: one line)."""
    try:
        from digitlab.models.shipped.line_pins import SHA256
    except ImportError:  # made before the line reader was
        return False
    return set(SHA256) == set(LINE_FILES) and _match(dict(SHA256))


def line_reader_files() -> tuple[Path, Path] | None:
    """The shipped line reader's (weights, ONNX) when this copy has them intact, else None."""
    return (FOLDER / LINE_FILES[0], FOLDER / LINE_FILES[1]) if _line_checked() else None


def line_manifest() -> dict[str, Any]:
    try:
        found = json.loads((FOLDER / LINE_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
