"""Reading whole numbers (issue 33): a picture of one line of handwriting -> its number as text.

Two ways, measured side by side (benchmarks/read.py, benchmarks/ctc.py). ``lines`` (the default where the
package ships it): the line reader (``models.lines``, CNN + BiLSTM + CTC) reads the whole line at once, with
no cutting; each character keeps the columns it was read in (its box) and its peak probability; it reads
touching digits, which cutting cannot. ``segments``: segmentation first (``data.lines``: marks grouped into
characters, points and a leading minus found by their shape and place), then the digit reader on each
character (the same ``Predictor`` as `predict`: by default the reader shipped with digitlab); a group too wide
for one digit is cut every way at the proposed cuts, and the way whose pieces are read most surely wins.
A number is ``uncertain`` when a character is read with less than ``SURE`` confidence, when a point comes
first, last or twice, or when nothing reads as a digit: ink that is not a number (letters, a drawing) is
flagged, never given as a confident number. Blank pictures: status ``blank``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.data.lines import Box, Line, LineInput, Piece, cuts, is_wide, line_input, segment
from digitlab.models import shipped
from digitlab.models.lines import STRIDE, LineReader, decode
from digitlab.service.predictor import Predictor

METHODS = ("auto", "lines", "segments")  # auto: the line reader where the package ships it, else segments

SURE = 0.9  # a character read less surely than this makes the number uncertain
# the digit reader's second opinion on each character the line reader found: it surely reads another digit
# (at least OTHER) or no digit surely (below UNSURE): the number is uncertain. On benchmarks/read.py's check set
# this flags 27 of the line reader's 42 misreads, and 97 of its 758 right readings.
OTHER = 0.9
UNSURE = 0.3
MOST_TOUCHING = 8  # digits one group may be cut into
CUT_COST = math.log(0.8)  # each cut must pay for itself: a wide 0 is not two 1s


@dataclass(frozen=True)
class Character:
    label: str  # "0"–"9", "." or "-"
    box: Box  # (x0, y0, x1, y1) in the picture's pixels
    confidence: float
    top3: tuple[tuple[str, float], ...] = ()
    written: str = ""  # what was written when it differs from the label (a decimal comma: ",")

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "label": self.label,
            "box": list(self.box),
            "confidence": self.confidence,
            "top3": [{"label": lab, "probability": p} for lab, p in self.top3],
        }
        if self.written:
            row["written"] = self.written
        return row


@dataclass(frozen=True)
class NumberReading:
    file: str
    status: str  # "ok", "uncertain", "blank" or "error"
    text: str = ""
    confidence: float = 0.0
    characters: tuple[Character, ...] = ()
    error: str | None = None
    model: str = ""
    reasons: tuple[str, ...] = field(default=())  # why it is uncertain

    @property
    def uncertain(self) -> bool:
        return self.status == "uncertain"

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"file": self.file, "status": self.status}
        if self.status in ("ok", "uncertain"):
            row.update(
                text=self.text,
                confidence=self.confidence,
                uncertain=self.uncertain,
                characters=[c.to_json() for c in self.characters],
            )
            if self.reasons:
                row["reasons"] = list(self.reasons)
        if self.error is not None:
            row["error"] = self.error
        return row


def _splits(line: Line, box: Box) -> list[list[Box]]:
    """Every way of cutting ``box`` at ``cuts`` into 1–``MOST_TOUCHING`` pieces of a sensible width."""
    x0, y0, x1, y1 = box
    found = cuts(line, box, most=10)
    out = [[box]]
    for k in range(1, MOST_TOUCHING):
        for chosen in itertools.combinations(found, k):
            edges = [x0, *chosen, x1]
            widths = [b - a for a, b in itertools.pairwise(edges)]
            if min(widths) < 0.12 * line.height or max(widths) > 1.1 * line.height:
                continue
            out.append([(a, y0, b, y1) for a, b in itertools.pairwise(edges)])
    return out


def _tight(line: Line, box: Box) -> Box:
    """``box`` shrunk to the ink inside it (a cut piece's rows may be empty at the top or bottom)."""
    x0, y0, x1, y1 = box
    rows = np.flatnonzero(line.ink[y0:y1, x0:x1].any(axis=1))
    return (x0, y0 + int(rows[0]), x1, y0 + int(rows[-1]) + 1) if len(rows) else box


@functools.cache
def line_reader() -> LineReader | None:
    """The shipped line reader, loaded once (None when this copy has none, or has neither onnxruntime nor PyTorch
    to run it: numbers are then cut into digits, ``segments``)."""
    files = shipped.line_reader_files()
    if files is None:
        return None
    try:
        return LineReader(*files)
    except ImportError:
        return None


def method_for(method: str) -> str:
    """``auto`` resolved; an unknown or unavailable method refused in one line."""
    if method not in METHODS:
        raise DigitlabError(f"--method {method!r}: choose one of {', '.join(METHODS)}.")
    if method == "lines" and line_reader() is None:
        lacking = (
            "ships no line reader"
            if shipped.line_reader_files() is None
            else "has neither onnxruntime nor PyTorch to run its line reader (pip install 'digitlab[onnx]')"
        )
        raise DigitlabError(f"--method lines: this copy of digitlab {lacking}; use --method segments.")
    if method == "auto":
        return "lines" if line_reader() is not None else "segments"
    return method


def read_number(predictor: Predictor, picture: Any, name: str = "image", method: str = "auto") -> NumberReading:
    """The number written in ``picture`` (one line), by the line reader or by cutting it into digits that
    ``predictor``'s model reads (``method``; see the module's text)."""
    if method_for(method) == "lines":
        return _read_line(predictor, picture, name)
    try:
        line = segment(picture, name)
    except DigitlabError as exc:
        return NumberReading(name, "error", error=str(exc), model=predictor.name)
    if not line.pieces:
        return NumberReading(name, "blank", model=predictor.name)
    options: dict[int, list[list[Box]]] = {  # per digit group (its index in the pieces): its ways of cutting
        k: _splits(line, piece.box) if is_wide(piece.box, line.height) else [[piece.box]]
        for k, piece in enumerate(line.pieces)
        if piece.kind == "digit"
    }
    digit_boxes = sorted({_key(line, b, len(way)) for ways in options.values() for way in ways for b in way})
    images = np.stack([line.image(b) for b in digit_boxes]) if digit_boxes else np.zeros((0, 28, 28), np.uint8)
    probabilities = predictor.probabilities(images) if len(images) else np.zeros((0, len(predictor.classes)))
    read = {b: predictor.answer(name, p) for b, p in zip(digit_boxes, probabilities, strict=True)}
    characters: list[Character] = []
    for k, piece in enumerate(line.pieces):
        if piece.kind != "digit":
            characters.append(_mark(piece))
            continue
        ways = options[k]

        def sureness(way: list[Box]) -> float:
            logs = sum(math.log(max(read[_key(line, b, len(way))].confidence or 0.0, 1e-9)) for b in way)
            return logs + CUT_COST * (len(way) - 1)

        best = max(ways, key=sureness)
        for b in best:
            answer = read[_key(line, b, len(best))]
            characters.append(
                Character(answer.label or "?", _key(line, b, len(best)), answer.confidence or 0.0, answer.top3)
            )
    return _verdict(name, characters, predictor.name)


def _read_line(predictor: Predictor, picture: Any, name: str) -> NumberReading:
    reader = line_reader()
    assert reader is not None
    try:
        line = line_input(picture, name)
    except DigitlabError as exc:
        return NumberReading(name, "error", error=str(exc), model=LINE_READER)
    if line is None:
        return NumberReading(name, "blank", model=LINE_READER)
    symbols = decode(reader.read(line.image))
    # CTC marks a character in a column or two: its box reaches halfway to its neighbours' (the line's ends
    # for the first and the last), shrunk to the ink there
    centres = [(s.first + s.last) / 2 for s in symbols]
    columns = line.image.shape[1] / STRIDE
    edges = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(centres)), columns]
    characters = []
    for k, s in enumerate(symbols):
        box = line.box(int(edges[k]), max(int(edges[k]), math.ceil(edges[k + 1]) - 1), STRIDE)
        written = "," if s.label == "." and _comma(line, box) else ""
        characters.append(Character(s.label, box, s.confidence, s.top3, written))
    found = _verdict(name, characters, LINE_READER)
    doubts = _second_opinion(predictor, line, characters)
    if not doubts:
        return found
    return dataclasses.replace(found, status="uncertain", reasons=(*found.reasons, *doubts))


def _second_opinion(predictor: Predictor, line: LineInput, characters: list[Character]) -> list[str]:
    """The digit reader on each digit's box: where it surely reads another digit, or reads none surely, the
    line reader's answer is in doubt (letters and drawings read as digits by the line reader are caught so)."""
    from digitlab.data.pictures import fit_mnist

    digits = [(k, c) for k, c in enumerate(characters) if c.label.isdigit()]
    if not digits:
        return []
    images = np.stack([fit_mnist(line.ink[c.box[1] : c.box[3], c.box[0] : c.box[2]]) for _, c in digits])
    doubts = []
    for (k, c), p in zip(digits, predictor.probabilities(images), strict=True):
        best = int(np.argmax(p))
        other = predictor.classes[best]
        if other != c.label and p[best] >= OTHER:
            doubts.append(f"character {k + 1} looks like a {other} to the digit reader")
        elif p[best] < UNSURE:
            doubts.append(f"character {k + 1} is not surely a digit to the digit reader")
    return doubts


LINE_READER = "line-reader"


def line_version() -> str:
    """The shipped line reader's version: the first 12 hex digits of its weights' SHA-256."""
    return str(shipped.line_manifest().get("files", {}).get("line_reader.pt", ""))[:12]


def _comma(line: LineInput, box: Box) -> bool:
    """Whether the point in ``box`` was written as a comma: taller than wide, reaching below the digits."""
    w, h = box[2] - box[0], box[3] - box[1]
    inked = line.ink > 0  # (H, W)
    columns = inked.any(axis=0)  # (W,) the columns with ink
    bottoms = inked.shape[0] - 1 - np.argmax(inked[::-1, columns], axis=0)  # the lowest ink of each
    base = float(np.percentile(bottoms, 75)) if len(bottoms) else box[3]
    return h > 1.4 * w and box[3] > base + 0.05 * (line.image.shape[0] / line.scale)


def _key(line: Line, box: Box, pieces: int) -> Box:
    return _tight(line, box) if pieces > 1 else box


def _mark(piece: Piece) -> Character:
    if piece.kind == "minus":
        return Character("-", piece.box, 1.0)
    return Character(".", piece.box, 1.0, written="," if piece.comma else "")


def _verdict(name: str, characters: list[Character], model: str) -> NumberReading:
    reasons: list[str] = []
    digits = [c for c in characters if c.label.isdigit()]
    if not digits:
        reasons.append("no digit found")
    unsure = [c for c in digits if c.confidence < SURE]
    if unsure:
        reasons.append(f"{len(unsure)} digit{'s' if len(unsure) > 1 else ''} read less than {SURE:.0%} surely")
    points = [k for k, c in enumerate(characters) if c.label == "."]
    if len(points) > 1 or (points and (points[0] == 0 or points[-1] == len(characters) - 1)):
        reasons.append("a point where a number has none")
    minus = [k for k, c in enumerate(characters) if c.label == "-"]
    if minus and minus != [0]:
        reasons.append("a minus sign that does not lead")
    text = "".join(c.label for c in characters)
    confidence = float(np.prod([c.confidence for c in digits])) if digits else 0.0
    return NumberReading(
        name,
        "uncertain" if reasons else "ok",
        text=text,
        confidence=confidence,
        characters=tuple(characters),
        model=model,
        reasons=tuple(reasons),
    )


def read_numbers(
    predictor: Predictor, sources: Sequence[Any], names: Sequence[str] | None = None, method: str = "auto"
) -> list[NumberReading]:
    """One reading per picture; an unreadable one is an error row and the others are still read."""
    method = method_for(method)
    labels = [str(names[k] if names else source) for k, source in enumerate(sources)]
    return [read_number(predictor, source, name, method) for source, name in zip(sources, labels, strict=True)]


def character_picture(source: Any, box: Box, margin: float = 0.15) -> bytes:
    """The part of a picture inside ``box`` (widened by ``margin`` of its size), as PNG bytes: one character of
    a read number, to store as a labelled digit (Your digits) when the reader got it wrong."""
    import io

    from PIL import Image

    from digitlab.data.pictures import load_image

    gray = np.clip(np.rint(load_image(source)), 0, 255).astype(np.uint8)  # (H, W)
    x0, y0, x1, y1 = box
    pad = int(margin * max(x1 - x0, y1 - y0))
    crop = gray[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "PNG")
    return buf.getvalue()
