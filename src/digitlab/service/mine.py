"""Your digits: add, import, list, export, delete (the store is ``data/mine.py``), and measure models on them.

Every picture goes through the same path as a prediction (``images.to_mnist``); the store keeps
the 28×28 image and the picture itself as grayscale PNG (at most about 1024 pixels a side).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis.evaluate import evaluate_predictions
from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_write_bytes, check_new_files
from digitlab.data.datasets import DIGIT_NAMES
from digitlab.data.idx import write_idx
from digitlab.data.pictures import is_blank, load_image, to_mnist
from digitlab.data.your_digits import DEFAULT_WRITER, SOURCES, Added, Digit, DigitStore, check_label, check_writer
from digitlab.runs.records import Outcome
from digitlab.service.batch import PICTURE_SUFFIXES

LABEL_IN_NAME = re.compile(r"(?<![a-z])label[-_ ]?(\d)(?!\d)", re.IGNORECASE)  # "sample-label7", not "unlabel7"
EXPORT_FORMATS = ("idx", "png")

__all__ = [
    "DEFAULT_WRITER",
    "EXPORT_FORMATS",
    "SOURCES",
    "Added",
    "Digit",
    "DigitStore",
    "check_label",
    "check_writer",
]


def store() -> DigitStore:
    """The digit store (``$DIGITLAB_HOME/mine.sqlite3``, else in the user data folder)."""
    return DigitStore()


def encode(source: Any, name: str) -> tuple[np.ndarray, bytes]:
    """A picture (path, bytes, canvas array) -> (the 28×28 image the models see, the picture as grayscale PNG)."""
    from PIL import Image

    gray = load_image(source, name)  # (H, W) float in [0, 255], at most about 1024 a side
    image = to_mnist(gray, name)
    if is_blank(image):
        raise DigitlabError(f"{name}: no ink found (a blank picture); draw or photograph one digit.")
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8)).save(buf, format="PNG", optimize=False)
    return image, buf.getvalue()


def add_pictures(
    sources: Sequence[Any],
    label: Any,
    writer: str = DEFAULT_WRITER,
    source: str = "upload",
    names: Sequence[str] | None = None,
) -> list[Added]:
    """Store pictures of one digit; every picture is read first, so one bad file stores nothing."""
    digit, writer = check_label(label), check_writer(writer)
    shown = list(names) if names is not None else [str(s) if isinstance(s, str | Path) else "picture" for s in sources]
    items = [(*encode(s, n), digit) for s, n in zip(sources, shown, strict=True)]
    return store().add_many(items, writer, source)


def labels_of(path: Path, root: Path) -> list[int]:
    """Every label a picture's place gives it: its nearest ``0``–``9`` sub-folder and each ``label<D>`` in its name."""
    found = []
    for part in path.relative_to(root).parts[:-1][::-1]:
        if part.isdigit() and len(part) == 1:
            found.append(int(part))
            break
    found += [int(m.group(1)) for m in LABEL_IN_NAME.finditer(path.stem)]
    return sorted(set(found))


def import_folder(folder: Path, writer: str = DEFAULT_WRITER) -> Outcome:
    """Every picture under ``folder`` with a label; those without one (or unreadable) are reported, not stored."""
    writer = check_writer(writer)
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DigitlabError(f"{root}: no such folder; pass a folder of pictures in sub-folders 0 to 9.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
    if not files:
        raise DigitlabError(
            f"{root}: no pictures (PNG, JPEG, BMP, GIF, TIFF, WebP) in it; put them in sub-folders 0 to 9 "
            "or name them with label<D>, e.g. sample-label7.png."
        )
    items, unlabelled, unreadable, ambiguous = [], [], [], []
    for path in files:
        found = labels_of(path, root)
        if len(found) > 1:  # "d_label3_label7.png", or folder 3 and "…label8…": never guessed
            ambiguous.append(str(path))
            continue
        if not found:
            unlabelled.append(str(path))
            continue
        label = found[0]
        try:
            items.append((*encode(path, str(path)), label))
        except DigitlabError as exc:
            unreadable.append({"file": str(path), "error": str(exc)})
    added = store().add_many(items, writer, "import") if items else []
    return Outcome.of(
        {
            "writer": writer,
            "files": len(files),
            "added": sum(a.new for a in added),
            "already": sum(not a.new for a in added),
            "unlabelled": unlabelled,
            "ambiguous": ambiguous,
            "unreadable": unreadable,
            "conflicts": [{"id": a.id, "stored": a.label, "asked": a.asked} for a in added if a.conflict],
            "ids": [a.id for a in added],
        }
    )


def relabel(digit_id: int, label: Any) -> Outcome:
    """Give a stored digit another label (`digitlab mine relabel ID LABEL`)."""
    old, new = store().relabel(digit_id, check_label(label))
    return Outcome.of({"id": int(digit_id), "old": old, "label": new})


def listing(writer: str | None = None) -> Outcome:
    digits = store().digits(check_writer(writer) if writer else None)
    counts = {d: 0 for d in range(10)}
    for d in digits:
        counts[d.label] += 1
    return Outcome.of(
        {
            "store": str(store().path),
            "writer": writer,
            "writers": store().writers(),
            "counts": counts,
            "n_digits": len(digits),
            "digits": [d.to_json() for d in digits],
        }
    )


def export(folder: Path, fmt: str, writer: str | None = None, force: bool = False) -> Outcome:
    """Your digits as IDX (the standard test file names, 28×28) or as PNG pictures in sub-folders 0–9.

    A file already in ``folder`` is never overwritten without ``force``: the export is refused
    in one line before anything is written.
    """
    if fmt not in EXPORT_FORMATS:
        raise DigitlabError(f"--format {fmt!r}: choose idx or png.")
    db = store()
    digits = db.digits(check_writer(writer) if writer else None)
    if not digits:
        whose = f"writer {writer!r}" if writer else "any writer"
        raise DigitlabError(f"no digits saved for {whose} in {db.path}; nothing to export.")
    root = Path(folder).expanduser()
    if root.exists() and not root.is_dir():
        raise DigitlabError(f"{root}: is a file; pass a folder to export into.")
    if fmt == "idx":
        targets = [root / "t10k-images-idx3-ubyte", root / "t10k-labels-idx1-ubyte"]
    else:
        targets = [root / str(d.label) / f"{d.writer}-{d.id}.png" for d in digits]
    check_new_files(targets, force)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if fmt == "idx":
            images = np.stack([d.image for d in digits])
            labels = np.asarray([d.label for d in digits], np.uint8)
            write_idx(targets[0], images)
            write_idx(targets[1], labels)
        else:
            for d, target in zip(digits, targets, strict=True):
                target.parent.mkdir(exist_ok=True)
                atomic_write_bytes(target, db.picture(d.id) or b"")
    except OSError as exc:
        raise DigitlabError(
            f"{exc.filename or root}: cannot write there ({exc.strerror}); pass a folder you can write to."
        ) from None
    return Outcome.of({"folder": str(root), "format": fmt, "n_digits": len(digits), "files": [str(t) for t in targets]})


def remove(ids: Sequence[int]) -> Outcome:
    gone = store().remove(ids)
    missing = sorted(set(int(i) for i in ids) - set(gone))
    return Outcome.of({"removed": gone, "missing": missing})


def clear(writer: str) -> Outcome:
    return Outcome.of({"writer": check_writer(writer), "removed": store().clear(writer)})


def counts(writer: str | None = None) -> dict[int, int]:
    return store().counts(check_writer(writer) if writer else None)


def writers() -> dict[str, int]:
    return store().writers()


def digits(writer: str | None = None) -> list[Digit]:
    return store().digits(check_writer(writer) if writer else None)


@dataclass(frozen=True)
class Reading:
    """One model on your digits."""

    model: str
    accuracy: float
    n_errors: int
    confusion: list[list[int]]  # rows: true 0–9, columns: read as 0–9
    misread: list[dict[str, Any]]  # {id, true, predicted, confidence}, most confident first (at most 40)


def measure(predictors: Sequence[Any], writer: str | None = None) -> list[Reading]:
    """Every predictor (``service.Predictor``) on your digits, most accurate first."""
    images, labels, ids = store().arrays(check_writer(writer) if writer else None)
    if len(labels) == 0:
        return []
    out = []
    for predictor in predictors:
        proba = predictor.probabilities(images)  # (n, 10)
        pred = np.asarray(predictor.classes)[proba.argmax(axis=1)].astype(np.int64)
        metrics = evaluate_predictions(labels, pred, proba, DIGIT_NAMES)
        misread = [
            {"id": int(ids[m["index"]]), **{k: v for k, v in m.items() if k != "index"}}
            for m in metrics["misclassified"]
        ]
        out.append(
            Reading(predictor.name, metrics["accuracy"], metrics["n_errors"], metrics["confusion_matrix"], misread)
        )
    return sorted(out, key=lambda r: -r.accuracy)
