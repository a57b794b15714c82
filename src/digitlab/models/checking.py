"""The reading check: one figure for how well a reader of 28 × 28 digits reads photographed handwriting.

`best` (the model `predict`, `serve` and Try it use unless one is named) is the reader shipped with digitlab,
unless a reader you trained reads this check better: then yours answers, and says why. The check: every glyph
family of ``strokes.FAMILIES`` written by ``PER_CLASS`` writer(s) of its own under every photo condition
(``strokes.family_check_set``, a stream of its own, seed ``SEED``: 550 pictures read through ``to_mnist`` as
`predict` reads a photo), made once and kept in ``<data cache>/checks/``. A model's figure is kept there too,
named by the SHA-256 of its files, so each model is measured once (about a second) and a retrained one afresh.

Measured when a reader is trained on the full training set (``training.save_trained``; a model trained on a
subset never displaces the shipped reader) and, for the shipped reader, alongside it. The lookup only reads
figures already kept (``known``): it never measures, so `predict` stays fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.files import atomic_write_bytes, library_versions

SEED = 32
PER_CLASS = 1  # writers a family and condition, each writing 0–9
MIN_TRAINING = 30_000  # a reader trained on fewer digits (a quick run) is not measured: never a contender


def folder() -> Path:
    from digitlab.data.sources import default_cache_dir

    return default_cache_dir() / "checks"


def check_id() -> str:
    """Names this version of the check (digitlab's version: the writers and photographs are its code)."""
    return f"reading-{SEED}-{PER_CLASS}-{library_versions().get('digitlab', '0')}"


def pictures() -> tuple[np.ndarray, np.ndarray]:
    """The check's (n, 28, 28) uint8 pictures and labels, made once (about 5 s) and kept."""
    from digitlab.data import strokes

    path = folder() / f"{check_id()}.npz"
    try:
        with np.load(path) as saved:
            return saved["x"], saved["y"]
    except (OSError, KeyError, ValueError):
        pass  # not made yet, or damaged: made again
    xs, ys = [], []
    for family in strokes.FAMILIES:
        for x, y in strokes.family_check_set(family, PER_CLASS, SEED).values():
            xs.append(x)
            ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    atomic_write_bytes(path, buf.getvalue())
    return x, y


def digest(path: Path) -> str:
    """The SHA-256 of a model's file and its ``.json`` (when it has one), 20 hex digits."""
    sha = hashlib.sha256(path.read_bytes())
    side = path.with_name(path.name + ".json")
    if side.is_file():
        sha.update(side.read_bytes())
    return sha.hexdigest()[:20]


def _score_file(path: Path) -> Path:
    return folder() / f"{check_id()}-{digest(path)}.json"


def known(path: Path) -> float | None:
    """The model's figure on the check, if it was measured (None otherwise, or when its file is unreadable)."""
    try:
        found = json.loads(_score_file(path).read_text())
        return float(found["accuracy"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def measure(model: Any, path: Path) -> float:
    """Read the check with ``model`` (saved in ``path``), keep the figure and return it."""
    x, y = pictures()
    accuracy = float((np.asarray(model.predict(x)) == y).mean())
    doc = {"check": check_id(), "model": path.name, "accuracy": accuracy, "n": len(y)}
    atomic_write_bytes(_score_file(path), json.dumps(doc).encode())
    return accuracy


def remember(model: Any, path: Path, n_train: int) -> float | None:
    """After training: measure a reader of 28 × 28 digits 0–9 trained on at least ``MIN_TRAINING`` digits, and
    the shipped reader beside it when it has no figure yet; None when not measured. Never fails the training."""
    try:
        if n_train < MIN_TRAINING or tuple(getattr(model, "image_shape_", ())) != (28, 28):
            return None
        if [int(c) for c in getattr(model, "classes_", [])] != list(range(10)):
            return None
        from digitlab.models import shipped
        from digitlab.models.store import load_model

        if shipped.available() and known(shipped.model_path()) is None:
            measure(load_model(shipped.model_path(), reading=True)[0], shipped.model_path())
        return measure(model, path)
    except Exception:  # only a ranking aid: whatever goes wrong, the shipped reader stays the default
        return None
