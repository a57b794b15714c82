"""Stand-in pictures of handwritten numbers, to check `digitlab read` (issue 33) and to test it.

A number's digits are MNIST **test** digits (never training ones) or digits drawn by ``strokes`` writers, put
on one line as a person writes: each digit scaled to the line's height (its own width kept), a gap from a
touch or an overlap to half a digit, the baseline wandering a little, a slant; a decimal point (a dot on the
baseline, or a comma reaching below it) and a leading minus sign drawn in the same pen. The line is then
written dark on a light page and photographed like a user's picture (``strokes.CONDITIONS``' tools).
``compose(glyphs, text, rng)`` -> (picture (H, W) uint8, the characters' boxes); ``check_lines`` makes groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Layout:
    height: int = 80  # a digit's height, pixels
    gap: tuple[float, float] = (0.15, 0.45)  # space between digits, in digit heights (negative: overlap)
    slant: float = 0.0  # degrees of italic shear
    wander: float = 0.04  # baseline's wander, in digit heights
    margin: int = 40  # paper around the line, pixels


def _fit(digit: np.ndarray, height: int) -> np.ndarray:
    """A (28, 28) white-on-black digit cropped to its ink and scaled to ``height`` rows (float in [0, 1])."""
    from PIL import Image

    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    box = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    width = max(2, round(box.shape[1] * height / box.shape[0]))
    return np.asarray(Image.fromarray(box).resize((width, height), Image.Resampling.BICUBIC), float) / 255.0


def _disc(radius: float) -> np.ndarray:
    r = max(1.5, radius)
    n = math.ceil(2 * r) + 1
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    return np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1)


def compose(
    glyphs: list[np.ndarray], text: str, rng: np.random.Generator, layout: Layout = Layout()
) -> tuple[np.ndarray, list[Box]]:
    """The number ``text`` (digits, at most one ``.`` or ``,``, a leading ``-``) written with ``glyphs`` (one
    (28, 28) white-on-black image per digit of ``text``, in order): ink in [0, 1] on a black line, (H, W) float,
    and each character's box (x0, y0, x1, y1)."""
    h = layout.height
    pen = max(2.0, 0.07 * h)  # the point's and the minus's stroke
    parts: list[tuple[np.ndarray, int]] = []  # (ink, top offset from the line's top)
    digits = iter(glyphs)
    for ch in text:
        if ch.isdigit():
            parts.append((_fit(next(digits), h), int(rng.normal(0, layout.wander * h))))
        elif ch in ".,":
            dot = _disc(pen * rng.uniform(0.8, 1.3))
            if ch == ",":  # a dot with a tail down and to the left
                tail = np.zeros((int(0.35 * h), dot.shape[1] + 4))
                tail[: dot.shape[0], 2 : 2 + dot.shape[1]] = dot
                for k in range(dot.shape[0] // 2, tail.shape[0]):
                    cx = int(2 + dot.shape[1] / 2 - (k - dot.shape[0] / 2) * 0.35)
                    tail[k, max(0, cx - 1) : cx + 2] = 1.0
                dot = tail
                parts.append((dot, h - int(1.2 * pen)))
            else:
                parts.append((dot, h - dot.shape[0]))
        elif ch == "-":
            bar = np.ones((max(2, int(pen)), int(h * rng.uniform(0.35, 0.5))))
            parts.append((bar, int(h * rng.uniform(0.42, 0.55))))
        else:
            raise ValueError(f"compose: {ch!r} is not a digit, a point or a minus")
    gaps = [rng.uniform(*layout.gap) * h for _ in parts]
    width = int(sum(p.shape[1] for p, _ in parts) + sum(gaps[1:]) + 2 * layout.margin + h)
    rise = int(0.5 * h)
    line = np.zeros((h + 2 * layout.margin + 2 * rise, width))
    x = float(layout.margin)
    boxes: list[Box] = []
    for k, (ink, top) in enumerate(parts):
        if k:
            x += gaps[k]
        y = layout.margin + rise + top
        x0 = round(x)
        region = line[y : y + ink.shape[0], x0 : x0 + ink.shape[1]]
        np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)
        boxes.append((x0, y, x0 + ink.shape[1], y + ink.shape[0]))
        x += ink.shape[1]
    line = line[:, : int(x) + layout.margin]
    if layout.slant:  # italic: rows shifted right the higher they are (boxes keep their columns at mid-height)
        from PIL import Image

        shear = math.tan(math.radians(layout.slant))
        img = Image.fromarray((line * 255).astype(np.uint8))
        pad = int(shear * line.shape[0]) + 1
        img = img.transform(
            (line.shape[1] + pad, line.shape[0]),
            Image.Transform.AFFINE,
            (1, shear, -shear * line.shape[0], 0, 1, 0),
            resample=Image.Resampling.BILINEAR,
        )
        line = np.asarray(img, float) / 255.0  # (boxes stay where the upright characters were)
    return line, boxes


def on_paper(line: np.ndarray, rng: np.random.Generator, condition: str = "scan") -> np.ndarray:
    """The line's ink written dark on light paper: ``scan`` (even light), ``photo`` (a page lit unevenly,
    JPEG), ``blur``, ``noise``; (H, W) uint8."""
    from digitlab.data import strokes

    w = line.shape[1]
    paper = rng.uniform(215, 245) + rng.uniform(-12, 12) * np.linspace(-1, 1, w)[None, :] * (condition != "scan")
    page = paper * (1 - line) + rng.uniform(20, 60) * line
    if condition == "blur":
        page = strokes._blur(page, rng.uniform(1.0, 2.0))
    if condition == "noise":
        page = page + rng.normal(0, rng.uniform(8, 16), size=page.shape)
    picture = np.clip(np.rint(page), 0, 255).astype(np.uint8)
    if condition in ("photo", "noise"):
        picture = strokes._jpeg(picture, int(rng.integers(60, 90)))
    return picture
