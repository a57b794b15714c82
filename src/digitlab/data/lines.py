"""One line of handwriting (a number) cut into its characters: the segmentation half of `digitlab read`.

``ink_map`` (the reading path's intake: lighting evened out, specks dropped, but decimal points kept) gives the
ink; its 8-connected marks are grouped into characters: marks one above the other (a 5's flag, a crossed 7's
bar, a broken stroke) are one character; a small mark low on the line is a decimal point (a comma when it
reaches below the line); a short flat mark at mid-height before the first digit is a minus sign. A mark far
wider than a digit is several digits touching: ``cuts`` proposes where to cut it (the columns with the least
ink), and the reader picks the cuts whose pieces it reads most surely (recognition-based, ``service.numbers``).
Boxes are (x0, y0, x1, y1) in the picture's pixels (x1, y1 exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.data.pictures import _ndimage, fit_mnist, ink_map, marks

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Piece:
    """A character's place on the line: ``kind`` digit, point (``.``, from a dot or a comma) or minus."""

    kind: str  # "digit", "point" or "minus"
    box: Box
    comma: bool = False  # a point written as a comma


@dataclass(frozen=True)
class Line:
    """The ink of one picture and its pieces, left to right (none: blank)."""

    ink: np.ndarray  # (H, W) float in [0, 255]
    photo: bool
    pieces: tuple[Piece, ...]
    height: float  # the digits' typical height, pixels

    def image(self, box: Box) -> np.ndarray:
        """The (28, 28) uint8 MNIST-style image of the ink in ``box``."""
        x0, y0, x1, y1 = box
        return fit_mnist(self.ink[y0:y1, x0:x1], self.photo)


def _marks(ink: np.ndarray) -> list[Box]:
    """The bounding boxes of the 8-connected marks of ``ink`` (``pictures.marks``)."""
    labels, _ = marks(ink > 0)
    found = _ndimage().find_objects(labels)
    return [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in found if s is not None]


def line_ink(picture: Any, name: str = "image") -> tuple[np.ndarray, bool]:
    """``ink_map`` for a line of characters: decimal points kept (marks down to 0.5% of the largest), marks far
    to the left and right of the largest kept too."""
    return ink_map(picture, name, smallest=0.005, line=True)


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _overlap_x(a: Box, b: Box) -> float:
    """How much of the narrower box's width the two share."""
    shared = min(a[2], b[2]) - max(a[0], b[0])
    return shared / max(1, min(a[2] - a[0], b[2] - b[0]))


def segment(picture: Any, name: str = "image") -> Line:
    """The pieces of one line of writing in ``picture`` (anything ``ink_map`` reads), left to right."""
    ink, photo = line_ink(picture, name)
    found = sorted(_marks(ink), key=lambda b: b[0])
    if not found:
        return Line(ink, photo, (), 0.0)
    heights = np.array([b[3] - b[1] for b in found])
    tall = heights >= 0.5 * heights.max()
    height = float(np.median(heights[tall]))  # a digit's height on this line
    top = float(np.median([b[1] for b, t in zip(found, tall, strict=True) if t]))
    base = float(np.median([b[3] for b, t in zip(found, tall, strict=True) if t]))
    groups: list[Box] = []
    small: list[Box] = []
    for box in found:  # marks one above the other are one character; small ones (and low narrow ones) wait
        w, h = box[2] - box[0], box[3] - box[1]
        low_and_narrow = box[1] > base - 0.3 * height and w < 0.3 * height and h < 0.6 * height  # a comma
        if max(w, h) < 0.3 * height or low_and_narrow:
            small.append(box)
            continue
        if groups and _overlap_x(groups[-1], box) > 0.5:
            groups[-1] = _union(groups[-1], box)
        else:
            groups.append(box)
    pieces: list[Piece] = [_shape(g, height, top, base) for g in groups]
    for box in small:  # a dot low on the line is a point; a small mark over a character belongs to it
        mid_y = (box[1] + box[3]) / 2
        near = [k for k, p in enumerate(pieces) if _overlap_x(p.box, box) > 0.5]
        if near and mid_y < base - 0.2 * height:
            k = near[0]
            pieces[k] = Piece(pieces[k].kind, _union(pieces[k].box, box))
        elif box[1] > base - 0.35 * height and (box[2] - box[0]) * (box[3] - box[1]) >= 4:
            pieces.append(Piece("point", box, comma=box[3] > base + 0.12 * height))
    pieces.sort(key=lambda p: p.box[0])
    return Line(ink, photo, tuple(pieces), height)


def _shape(box: Box, height: float, top: float, base: float) -> Piece:
    """A group of marks: a minus when short, flat and at mid-height; else a digit (or several touching)."""
    w, h = box[2] - box[0], box[3] - box[1]
    mid_y = (box[1] + box[3]) / 2
    if h < 0.3 * height and w >= 1.5 * h and top + 0.2 * height < mid_y < base - 0.15 * height:
        return Piece("minus", box)
    return Piece("digit", box)


def cuts(line: Line, box: Box, most: int = 6) -> list[int]:
    """Where a wide group may be cut into touching digits: x positions (picture pixels) of the columns with the
    least ink between sensible digit widths, at most ``most``, left to right."""
    x0, y0, x1, y1 = box
    column = line.ink[y0:y1, x0:x1].sum(axis=0)  # (w,) ink per column
    width = x1 - x0
    low = max(1, int(0.12 * line.height))
    found: list[tuple[float, int]] = []
    for x in range(low, width - low):
        window = column[max(0, x - 2) : x + 3]
        if column[x] <= window.min():  # a local minimum of the ink
            found.append((float(column[x]), x))
    found.sort()
    chosen: list[int] = []
    for _, x in found:
        if all(abs(x - c) >= low for c in chosen):
            chosen.append(x)
        if len(chosen) == most:
            break
    return sorted(x0 + c for c in chosen)


def is_wide(box: Box, height: float) -> bool:
    """Whether a digit's box is wide enough to be several digits touching (most digits are 0.4–0.8 of their
    height wide, a 1 far less): the reader then tries the cuts, and keeps one only where it reads surer."""
    return (box[2] - box[0]) > 0.6 * height


@dataclass(frozen=True)
class LineInput:
    """A line as the line reader reads it: (32, w) float32 ink in [0, 1], and how to map its columns back."""

    image: np.ndarray
    ink: np.ndarray  # the picture's ink (H, W), as ``ink_map`` gave it
    left: int  # the picture column of the line image's column 0
    top: int
    scale: float  # line-image pixels per picture pixel

    def box(self, first: int, last: int, stride: int) -> Box:
        """The picture box of the line image's columns ``first``..``last`` (× ``stride``), shrunk to the ink."""
        x0 = self.left + int(first * stride / self.scale)
        x1 = min(self.ink.shape[1], self.left + int((last + 1) * stride / self.scale) + 1)
        rows = np.flatnonzero(self.ink[:, x0:x1].any(axis=1))
        cols = np.flatnonzero(self.ink[:, x0:x1].any(axis=0))
        if not len(rows):
            return (x0, self.top, max(x1, x0 + 1), self.top + int(self.image.shape[0] / self.scale))
        return (x0 + int(cols[0]), int(rows[0]), x0 + int(cols[-1]) + 1, int(rows[-1]) + 1)


def line_input(picture: Any, name: str = "image", height: int = 32, widest: int = 1024) -> LineInput | None:
    """The picture's line of writing for the line reader: the ink cropped to itself (2 pixels of margin) and
    scaled to ``height`` rows; None when the picture is blank."""
    from PIL import Image

    ink, _ = line_ink(picture, name)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    top, left = max(0, int(rows[0]) - 2), max(0, int(cols[0]) - 2)
    box = ink[top : int(rows[-1]) + 3, left : int(cols[-1]) + 3]
    scale = height / box.shape[0]
    width = int(np.clip(round(box.shape[1] * scale), 8, widest))
    img = Image.fromarray(box.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
    line = np.clip(np.asarray(img) / 255.0, 0, 1).astype(np.float32)
    return LineInput(line, ink, left, top, width / box.shape[1])
