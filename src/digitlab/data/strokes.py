"""Stand-in writers: digits drawn from stroke templates in one consistent personal style.

A real person's digits differ from MNIST's in ways that are the same every time they write:
a 1 with a flag and a base, a crossed 7, an open 4, a straight-tailed 9, a slant. These
writers draw each digit as pen strokes (with the jitter of a hand: position, size, angle,
wobble, pen width) on a 280 × 280 white canvas, exactly what the dashboard's canvas sends,
so that tests and benchmarks can measure personalisation on digits MNIST never saw.

``draw(style, digit, rng)`` -> the canvas (H, W) uint8; ``writer_digits(style, n_per_class,
seed)`` -> MNIST-style images through ``images.to_mnist``, labels and the canvases' PNG bytes;
``check_set`` -> the real-world check set (the styles photographed under eleven conditions);
``synthetic_digits(n_per_class, seed)`` -> training digits by random writers (``random_writer``:
each digit's glyph from one family, stretched, slanted, turned, any pen), which cnn-hands learns from.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from digitlab.core.progress import INNER, Event, emit
from digitlab.data.pictures import to_mnist

Point = tuple[float, float]  # (x, y) in the unit square, y downwards
Stroke = list[Point]
CANVAS = 280


def line(*points: Point, n: int = 10) -> Stroke:
    """A polyline through ``points``, each segment sampled at ``n`` steps."""
    out: Stroke = [points[0]]
    for a, b in pairwise(points):
        out += [(a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n) for t in range(1, n + 1)]
    return out


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24) -> Stroke:
    """An elliptical arc; angles in degrees clockwise from 12 o'clock (``end`` may exceed 360)."""
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + rx * math.sin(a), cy - ry * math.cos(a)) for a in angles]


# --- the templates: digit -> strokes ---------------------------------------------------------

PLAIN: dict[int, list[Stroke]] = {  # the shapes MNIST is full of
    0: [arc(0.5, 0.5, 0.2, 0.32, 0, 360)],
    1: [line((0.52, 0.16), (0.48, 0.84))],
    2: [arc(0.5, 0.34, 0.18, 0.17, -70, 120) + line((0.64, 0.45), (0.3, 0.83), (0.72, 0.83))[1:]],
    3: [arc(0.5, 0.33, 0.17, 0.16, -70, 160), arc(0.5, 0.66, 0.19, 0.18, 20, 230)],
    4: [line((0.58, 0.16), (0.28, 0.62), (0.74, 0.62)), line((0.6, 0.4), (0.6, 0.85))],
    5: [line((0.68, 0.17), (0.36, 0.17), (0.33, 0.46)) + arc(0.5, 0.63, 0.2, 0.2, -40, 210)[1:]],
    6: [line((0.62, 0.16), (0.36, 0.5)) + arc(0.5, 0.65, 0.18, 0.18, 250, 610)[1:]],
    7: [line((0.3, 0.18), (0.72, 0.18), (0.44, 0.85))],
    8: [arc(0.5, 0.32, 0.15, 0.16, 180, 540), arc(0.5, 0.67, 0.18, 0.18, 0, 360)],
    9: [arc(0.5, 0.34, 0.18, 0.18, 90, 450) + arc(0.5, 0.55, 0.18, 0.35, 90, 180)[1:]],
}

CONTINENTAL: dict[int, list[Stroke]] = {  # the personal style MNIST lacks
    0: [arc(0.5, 0.5, 0.14, 0.34, 0, 360), line((0.3, 0.82), (0.7, 0.18))],  # narrow, slashed
    1: [line((0.2, 0.44), (0.56, 0.13), (0.52, 0.86)), line((0.3, 0.86), (0.74, 0.86))],  # long flag, base
    2: [
        arc(0.5, 0.32, 0.18, 0.16, -80, 130)
        + line((0.63, 0.44), (0.36, 0.78))[1:]
        + arc(0.38, 0.76, 0.07, 0.07, 180, 400)[1:]
        + line((0.42, 0.83), (0.74, 0.83))[1:]
    ],  # 2 with a loop at its foot
    3: [line((0.3, 0.17), (0.7, 0.17), (0.46, 0.42)) + arc(0.48, 0.63, 0.2, 0.21, -10, 220)[1:]],  # flat-topped
    4: [line((0.4, 0.12), (0.3, 0.58), (0.78, 0.58)), line((0.62, 0.3), (0.62, 0.88))],  # open 4
    5: [line((0.7, 0.16), (0.35, 0.16)), line((0.35, 0.16), (0.32, 0.46)) + arc(0.5, 0.64, 0.2, 0.19, -50, 220)[1:]],
    6: [line((0.64, 0.12), (0.36, 0.62)) + arc(0.5, 0.7, 0.15, 0.14, 250, 610)[1:]],  # straight back
    7: [
        line((0.24, 0.32), (0.28, 0.2), (0.74, 0.2), (0.5, 0.52), (0.44, 0.86)),
        line((0.36, 0.52), (0.72, 0.52)),
    ],  # serif and crossbar
    8: [arc(0.5, 0.31, 0.14, 0.14, 0, 360), arc(0.5, 0.67, 0.2, 0.19, 0, 360)],  # two rings
    9: [arc(0.48, 0.33, 0.18, 0.17, 80, 420), line((0.66, 0.3), (0.64, 0.86))],  # straight tail
}


@dataclass(frozen=True)
class Style:
    name: str
    templates: dict[int, list[Stroke]]
    slant: float = 0.0  # degrees of italic shear (positive leans right)
    width: tuple[float, float] = (16.0, 24.0)  # pen width in canvas pixels
    jitter: float = 0.012  # wobble of each point, in units of the canvas side
    families: tuple[tuple[int, str], ...] = ()  # (digit, family) a random writer took each glyph from


SCHOOL: dict[int, list[Stroke]] = {  # as taught in many schools: a flagged 1, a 7 and a 9 with hooks
    **PLAIN,
    1: [line((0.3, 0.34), (0.54, 0.15), (0.5, 0.86))],
    7: [line((0.3, 0.18), (0.72, 0.18), (0.5, 0.6), (0.46, 0.85))],
    9: [
        arc(0.5, 0.34, 0.18, 0.18, 90, 450)
        + line((0.68, 0.36), (0.64, 0.78))[1:]
        + arc(0.54, 0.76, 0.1, 0.1, 90, 250)[1:]
    ],
}

STYLES: dict[str, Style] = {
    "plain": Style("plain", PLAIN),
    "continental": Style("continental", CONTINENTAL, slant=35.0, width=(6.0, 10.0)),  # a fine pen
    "marker": Style("marker", SCHOOL, slant=-12.0, width=(28.0, 36.0)),  # a felt marker, leaning left
    "hurried": Style("hurried", PLAIN, slant=20.0, width=(10.0, 14.0), jitter=0.025),  # fast and shaky
}


def draw(style: Style, digit: int, rng: np.random.Generator, side: int = CANVAS, turn: float = 6.0) -> np.ndarray:
    """One digit as a canvas drawing: black strokes on white, ``(side, side)`` uint8 (pen widths scaled to it).

    The hand turns the digit by up to ``turn`` degrees either way.
    """
    from PIL import Image, ImageDraw

    angle = math.radians(rng.uniform(-turn, turn))
    scale = rng.uniform(0.85, 1.1)
    shift = rng.uniform(-0.05, 0.05, size=2)
    shear = math.tan(math.radians(style.slant + rng.uniform(-3, 3)))
    width = max(3, round(rng.uniform(*style.width) * side / CANVAS))  # to_mnist's 3×3 median erases thinner
    cos, sin = math.cos(angle), math.sin(angle)
    img = Image.new("L", (side, side), 255)
    pen = ImageDraw.Draw(img)
    for stroke in style.templates[digit]:
        pts = np.asarray(stroke) - 0.5  # (m, 2) about the centre
        pts[:, 0] -= shear * pts[:, 1]  # italic: the top leans right (y grows downwards)
        pts = pts @ np.array([[cos, sin], [-sin, cos]]) * scale + 0.5 + shift
        wobble = rng.normal(0, style.jitter, size=pts.shape)
        wobble = (wobble + np.roll(wobble, 1, axis=0) + np.roll(wobble, -1, axis=0)) / 3  # smooth, not spiky
        xy = [(float(x * side), float(y * side)) for x, y in pts + wobble]
        pen.line(xy, fill=0, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return np.asarray(img)


ROUNDED: dict[int, list[Stroke]] = {  # what cnn-hands misread on held-out handwriting (issue 32)
    **PLAIN,
    4: [line((0.6, 0.14), (0.26, 0.62), (0.78, 0.62)), line((0.6, 0.14), (0.6, 0.87))],  # closed top
    8: [arc(0.52, 0.27, 0.09, 0.1, 200, 560) + arc(0.48, 0.64, 0.2, 0.22, 20, 380)[1:]],  # one stroke, small top loop
}

PRINT: dict[int, list[Stroke]] = {  # block letters: a based 1, a crossed 7 without a serif, a straight 9
    **PLAIN,
    1: [line((0.34, 0.28), (0.52, 0.14), (0.52, 0.86)), line((0.34, 0.86), (0.7, 0.86))],  # short flag and base
    7: [line((0.28, 0.18), (0.72, 0.18), (0.46, 0.86)), line((0.38, 0.5), (0.66, 0.5))],  # crossbar, no serif
    9: [arc(0.5, 0.32, 0.17, 0.16, 0, 360), line((0.67, 0.32), (0.67, 0.86))],  # ring and straight tail
}

FAMILIES: dict[str, dict[int, list[Stroke]]] = {
    "plain": PLAIN,
    "school": SCHOOL,
    "continental": CONTINENTAL,
    "rounded": ROUNDED,
    "print": PRINT,
}
# how often a random writer takes each family's glyph for a digit (the cnn-hands recipe and the shipped
# reader: every family; benchmarks/heldout.py leaves each out in turn)
FAMILY_WEIGHTS: dict[str, float] = {"plain": 0.3, "school": 0.2, "continental": 0.3, "rounded": 0.1, "print": 0.1}
_BANNED: set[int] = set()  # glyphs (id of a template's stroke list) no random writer may use: see holding_out
# strokes people write or leave out of a glyph (family, digit) -> their indices: a slash through 0, a 1's base,
# a 7's crossbar (``Variation.drop``)
OPTIONAL: dict[tuple[str, int], tuple[int, ...]] = {
    ("continental", 0): (1,),
    ("continental", 1): (1,),
    ("continental", 7): (1,),
    ("print", 1): (1,),
    ("print", 7): (1,),
}


@dataclass(frozen=True)
class Variation:
    """How a random writer varies the glyph it copies, beyond stretching it and moving its strokes a little.

    ``drop``: the chance of leaving out each optional stroke (``OPTIONAL``: a 1 without its base, a 7 without
    its bar, a 0 without its slash). ``strike``: the chance of crossing the digit with one short straight stroke
    at any angle (a slash, a bar, a stray line: what people add to a digit without changing it). ``bend``: each
    stroke turned by up to this many degrees and scaled by up to this many percent about its own middle (a
    flag longer or steeper, a tail bent). Each helps a reader with hands it never saw (benchmarks/heldout.py)."""

    drop: float = 0.0
    strike: float = 0.0
    bend: float = 0.0


NO_VARIATION = Variation()
RECIPE_VARIATION = Variation(drop=0.5, strike=0.15)  # the cnn-hands recipe's (benchmarks/heldout.py chose it)
VARIATION = RECIPE_VARIATION  # what random writers do now (``varying`` changes it for a block)


@contextmanager
def varying(variation: Variation) -> Iterator[None]:
    """Random writers in the block vary their glyphs as ``variation`` says (``NO_VARIATION``: copy them)."""
    global VARIATION
    kept, VARIATION = VARIATION, variation
    try:
        yield
    finally:
        VARIATION = kept


def glyphs_of(family: str) -> set[int]:
    """The glyphs a family's writers draw (a glyph it shares with another family counts for both)."""
    return {id(strokes) for strokes in FAMILIES[family].values()}


@contextmanager
def holding_out(family: str, weights: dict[str, float] | None = None) -> Iterator[None]:
    """Random writers (``random_writer``, ``synthetic_digits``) that never draw a glyph of ``family``: not its
    own, not one it shares with another family (so nothing of the held-out hand shapes a model trained in
    the block); a digit with no other glyph is left out of the writers' digits. ``weights``: the families
    the writers take from (default: every family of FAMILIES but ``family``, equally)."""
    kept_weights, kept_banned = dict(FAMILY_WEIGHTS), set(_BANNED)
    FAMILY_WEIGHTS.clear()
    FAMILY_WEIGHTS.update(weights or {name: 1.0 for name in FAMILIES if name != family})
    FAMILY_WEIGHTS.pop(family, None)
    _BANNED.update(glyphs_of(family))
    try:
        yield
    finally:
        FAMILY_WEIGHTS.clear()
        FAMILY_WEIGHTS.update(kept_weights)
        _BANNED.clear()
        _BANNED.update(kept_banned)


def _strike(rng: np.random.Generator) -> Stroke:
    """A short straight stroke across the middle of the unit square, at any angle."""
    angle = rng.uniform(0, math.pi)
    half = rng.uniform(0.14, 0.3)
    cx, cy = 0.5 + rng.uniform(-0.06, 0.06, size=2)
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    return line((cx - dx, cy - dy), (cx + dx, cy + dy))


def _bent(stroke: Stroke, rng: np.random.Generator, bend: float) -> Stroke:
    """``stroke`` turned by up to ``bend`` degrees and scaled by up to ``bend`` % about its own middle."""
    pts = np.asarray(stroke)  # (m, 2)
    middle = pts.mean(axis=0)
    angle = math.radians(rng.uniform(-bend, bend))
    scale = 1 + rng.uniform(-bend, bend) / 100
    cos, sin = math.cos(angle), math.sin(angle)
    bent = (pts - middle) @ np.array([[cos, sin], [-sin, cos]]) * scale + middle
    return [(float(x), float(y)) for x, y in bent]


def random_writer(rng: np.random.Generator) -> Style:
    """A writer who never existed: for each digit one family's glyph, stretched and its strokes moved a
    little; a slant from 20° left to 40° right, a pen from 3 to 34 canvas pixels, a steady or shaky hand."""
    names = list(FAMILY_WEIGHTS)
    vary = VARIATION
    templates = {}
    sources: list[tuple[int, str]] = []
    for digit in range(10):
        allowed = [name for name in names if id(FAMILIES[name][digit]) not in _BANNED]
        if not allowed:  # every glyph of this digit is held out: the writer never writes it
            continue
        weights = np.asarray([FAMILY_WEIGHTS[name] for name in allowed])  # (families,)
        chosen = allowed[rng.choice(len(allowed), p=weights / weights.sum())]
        sources.append((digit, chosen))
        family = FAMILIES[chosen]
        glyph = family[digit]  # (a variation off draws no random number: the stream stays as it was)
        optional = OPTIONAL.get((chosen, digit), ()) if vary.drop > 0 else ()
        if optional:
            dropped = {k for k in optional if rng.random() < vary.drop}
            glyph = [s for k, s in enumerate(glyph) if k not in dropped]
        if vary.strike > 0 and rng.random() < vary.strike:
            glyph = [*glyph, _strike(rng)]
        stretch = rng.uniform(0.85, 1.15, size=2)  # (2,) this digit wider or taller
        if vary.bend > 0:
            glyph = [_bent(s, rng, vary.bend) for s in glyph]
        templates[digit] = [
            [tuple((np.asarray(p) - 0.5) * stretch + 0.5 + move) for p in stroke]
            for stroke, move in ((s, rng.uniform(-0.02, 0.02, size=2)) for s in glyph)
        ]
    pen = math.exp(rng.uniform(math.log(3.0), math.log(34.0)))
    return Style(
        "random",
        templates,
        slant=rng.uniform(-20, 40),
        width=(pen, 1.3 * pen),
        jitter=rng.uniform(0.005, 0.03),
        families=tuple(sources),
    )


def synthetic_digits(
    n_per_class: int, seed: int = 0, side: int = 140, turn: float = 25.0, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Training digits in hands MNIST lacks: ``n_per_class`` random writers (``random_writer``) each write 0–9.

    Each canvas goes through ``images.to_mnist`` as a drawing does: (10·n, 28, 28) uint8 images, labels.
    Drawn from a random stream of their own (never the check set's), on ``side``-pixel canvases (half
    the time of the dashboard's 280), turned by up to ``turn`` degrees. The same seed gives the same digits.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    images, labels = [], []
    for k in range(n_per_class):
        if progress and k % 50 == 0:  # about every 2 s: a progress bar, and a checkpoint for a stop signal
            emit(Event("pen-drawn digits", 10 * k, 10 * n_per_class, "drawing digits in random hands", level=INNER))
        writer = random_writer(rng)
        for digit in writer.templates:  # 0–9, less any digit whose every glyph is held out
            images.append(to_mnist(draw(writer, digit, rng, side=side, turn=turn)))
            labels.append(digit)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.asarray(labels, np.int64)


def png_bytes(canvas: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue()


def writer_digits(
    style: str | Style, n_per_class: int, seed: int = 0, picture: Callable[[np.ndarray], bytes] | None = None
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """``n_per_class`` digits of each class in one style: MNIST-style images (n, 28, 28), labels, PNGs.

    The same seed gives the same digits; the canvases go through ``images.to_mnist`` as drawings do.
    """
    chosen = STYLES[style] if isinstance(style, str) else style
    rng = np.random.default_rng(seed)
    images, labels, pictures = [], [], []
    for _ in range(n_per_class):
        for digit in range(10):
            canvas = draw(chosen, digit, rng)
            images.append(to_mnist(canvas))
            labels.append(digit)
            pictures.append((picture or png_bytes)(canvas))
    return np.stack(images), np.asarray(labels, np.int64), pictures


# --- photographs: the drawn digit on paper, as a phone camera sees it ------------------------

PAGE = (1200, 900)  # (width, height) of a photo, as phones send them after downscaling


def _paper(rng: np.random.Generator, level: tuple[float, float], tilt: float) -> np.ndarray:
    """A page ``(900, 1200)`` float: paper ``level`` plus a lighting gradient of up to ±``tilt``."""
    w, h = PAGE
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)  # (h, w) each
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle)  # about -0.6 .. 0.6
    return rng.uniform(*level) + 2 * tilt * ramp


def _put(
    page: np.ndarray, canvas: np.ndarray, rng: np.random.Generator, ink: float, corner: bool = False, turn: float = 0
) -> np.ndarray:
    """The canvas's strokes laid on ``page`` in ``ink`` grey: digit 260–420 px, near the middle or a corner."""
    from PIL import Image

    side = int(rng.uniform(260, 420))
    img = Image.fromarray(255 - canvas).resize((side, side), Image.Resampling.BILINEAR)  # ink white on black
    if turn:
        img = img.rotate(turn, resample=Image.Resampling.BILINEAR, expand=True)
    alpha = np.asarray(img, dtype=np.float64) / 255.0  # (s, s) 1 where ink
    h, w = page.shape
    s_h, s_w = alpha.shape
    if corner:  # within a band along the page's edges, the digit whole
        top = int(rng.choice([rng.uniform(0, 0.08), rng.uniform(0.92, 1.0)]) * (h - s_h))
        left = int(rng.choice([rng.uniform(0, 0.08), rng.uniform(0.92, 1.0)]) * (w - s_w))
    else:
        top = int((h - s_h) / 2 + rng.uniform(-0.1, 0.1) * h)
        left = int((w - s_w) / 2 + rng.uniform(-0.1, 0.1) * w)
    region = page[top : top + s_h, left : left + s_w]
    page[top : top + s_h, left : left + s_w] = region * (1 - alpha) + ink * alpha
    return page


def _jpeg(photo: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def _blur(photo: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(img, dtype=np.float64)


def _shadow(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged shadow (a hand, a phone) across part of the page, over the digit's side."""
    h, w = page.shape
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * math.pi)
    edge = (xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle) - rng.uniform(-0.1, 0.1) * w
    softness = rng.uniform(10, 60)
    dark = rng.uniform(0.4, 0.6)  # the shadow keeps 40–60% of the light
    return page * (1 - (1 - dark) / (1 + np.exp(-edge / softness)))


def _thin(canvas_style: Style) -> Style:
    from dataclasses import replace

    return replace(canvas_style, width=(3.0, 5.0))


def _photo(
    canvas: np.ndarray,
    rng: np.random.Generator,
    paper: tuple[float, float] = (220, 250),
    tilt: float = 10,
    ink: tuple[float, float] = (20, 60),
    corner: bool = False,
    turn: float = 0,
) -> np.ndarray:
    """The drawing on a page of ``paper`` grey, lit with a gradient of ±``tilt``, in ``ink`` grey."""
    return _put(_paper(rng, paper, tilt), canvas, rng, rng.uniform(*ink), corner=corner, turn=turn)


def _noisy(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return photo + rng.normal(0, rng.uniform(12, 28), size=photo.shape)  # a small sensor in poor light


def _turned(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _photo(canvas, rng, turn=float(rng.choice([-1, 1]) * rng.uniform(10, 22)))


# condition -> the canvas photographed (float or uint8, dark ink on lighter paper)
CONDITIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "canvas": lambda c, rng: c,  # the dashboard's drawing, as it is
    "photo": lambda c, rng: _jpeg(_photo(c, rng), 85),
    "thin pen": lambda c, rng: _jpeg(_photo(c, rng, ink=(30, 90)), 85),  # drawn with a 3–5 px pen
    "grey paper": lambda c, rng: _photo(c, rng, paper=(130, 180), tilt=15),
    "uneven light": lambda c, rng: _photo(c, rng, paper=(150, 220), tilt=60, ink=(10, 50)),
    "shadow": lambda c, rng: _shadow(_photo(c, rng, paper=(215, 245)), rng),
    "blur": lambda c, rng: _blur(_photo(c, rng), rng.uniform(2, 6)),
    "noise": lambda c, rng: _noisy(_photo(c, rng, paper=(190, 235), ink=(30, 70)), rng),
    "jpeg": lambda c, rng: _jpeg(_photo(c, rng, paper=(215, 245)), int(rng.integers(8, 20))),
    "off-centre": lambda c, rng: _photo(c, rng, corner=True),
    "rotated": _turned,
}


def photograph(canvas: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """``canvas`` (a drawing) as a picture under ``condition``: (H, W) uint8, dark ink on light paper."""
    return np.clip(np.rint(CONDITIONS[condition](canvas, rng)), 0, 255).astype(np.uint8)


def check_set(
    styles: tuple[str, ...] = tuple(STYLES), n_per_class: int = 10, seed: int = 0
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """The real-world check set: for each (style, condition), MNIST-style images (n, 28, 28) and labels.

    Each digit is drawn in the style (``thin pen``: with a 3–5 px pen), photographed under the
    condition, and read back through ``images.to_mnist`` as ``digitlab predict`` reads a picture.
    The same seed gives the same pictures.
    """
    out = {}
    for s_i, name in enumerate(styles):
        for c_i, condition in enumerate(CONDITIONS):
            style = _thin(STYLES[name]) if condition == "thin pen" else STYLES[name]
            rng = np.random.default_rng([seed, s_i, c_i])
            images, labels = [], []
            for _ in range(n_per_class):
                for digit in range(10):
                    images.append(to_mnist(photograph(draw(style, digit, rng), condition, rng)))
                    labels.append(digit)
            out[(name, condition)] = (np.stack(images), np.asarray(labels, np.int64))
    return out


def family_writer(family: str, rng: np.random.Generator) -> Style:
    """A writer of ``family``'s glyphs only (every digit), with a slant, a pen and a hand of their own."""
    templates = {}
    for digit, strokes in FAMILIES[family].items():
        stretch = rng.uniform(0.9, 1.1, size=2)
        templates[digit] = [[tuple((np.asarray(p) - 0.5) * stretch + 0.5) for p in stroke] for stroke in strokes]
    pen = math.exp(rng.uniform(math.log(6.0), math.log(30.0)))
    return Style(family, templates, slant=rng.uniform(-15, 30), width=(pen, 1.2 * pen), jitter=rng.uniform(0.008, 0.02))


def family_check_set(family: str, n_per_class: int = 10, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The check set of one glyph family: for each photo condition, ``n_per_class`` writers of the family
    (``family_writer``) each write 0–9, photographed and read back through ``to_mnist``; MNIST-style images
    (n, 28, 28) and labels. A stream of its own per family and condition: never a training writer's."""
    f_i = list(FAMILIES).index(family)
    out = {}
    for c_i, condition in enumerate(CONDITIONS):
        rng = np.random.default_rng([seed, 0xC4EC, f_i, c_i])
        images, labels = [], []
        for _ in range(n_per_class):
            writer = family_writer(family, rng)
            if condition == "thin pen":
                writer = _thin(writer)
            for digit in range(10):
                images.append(to_mnist(photograph(draw(writer, digit, rng), condition, rng)))
                labels.append(digit)
        out[condition] = (np.stack(images), np.asarray(labels, np.int64))
    return out
