"""Any picture of a digit -> an MNIST-style 28×28 image, made the way MNIST itself was made.

MNIST digits are white ink on black, size-normalised to fit a 20×20 box (aspect ratio
kept), then placed in 28×28 so that their centre of mass sits at the centre. A photo,
scan or canvas drawing looks nothing like that until it goes through the same steps;
without them MNIST models fall to chance on drawn digits.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError, NotAPicture, TooLarge
from digitlab.core.settings import MAX_PICTURE_BYTES as MAX_BYTES

MAX_PIXELS = 40_000_000  # Pillow's decompression-bomb guard, made an error
WORK_SIDE = 1024  # pictures are decoded or reduced to about this many pixels a side: a digit needs no more
INK_FRACTION = 0.2  # pixels below this share of the brightest ink are background


def load_image(source: Any, name: str = "image") -> np.ndarray:
    """Decode a path, bytes, PIL image or array into a grayscale float array (H, W) in [0, 255].

    Transparent pixels (a canvas background) count as white paper.
    """
    from PIL import Image

    if isinstance(source, np.ndarray):
        return _gray_from_array(source, name)
    if isinstance(source, Image.Image):
        return _gray_from_pil(source)
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        if path.is_dir():
            raise DigitlabError(
                f"{path}: is a folder with no pictures (PNG, JPEG, BMP, GIF, TIFF, WebP) in it; "
                "pass picture files or folders of them."
            )
        try:
            size = path.stat().st_size
        except OSError:
            raise DigitlabError(f"{path}: no such file.") from None
        if size > MAX_BYTES:
            raise TooLarge(f"{path}: {_mib(size)} is too large (limit {_mib(MAX_BYTES)}).")
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise DigitlabError(f"{path}: cannot read it ({exc.strerror}); check its permissions.") from None
    if isinstance(source, bytes | bytearray):
        if len(source) > MAX_BYTES:
            raise TooLarge(f"{name}: {_mib(len(source))} is too large (limit {_mib(MAX_BYTES)}).")
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(source)) as img:
                    if img.format == "JPEG":  # decode a large photo at 1/2 … 1/8 scale: far less memory
                        img.draft("RGB" if img.mode in ("RGB", "CMYK", "YCbCr") else img.mode, (WORK_SIDE, WORK_SIDE))
                    img.load()
                    return _gray_from_pil(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooLarge(f"{name}: image has too many pixels (limit {MAX_PIXELS:,}).") from None
        except (OSError, ValueError, SyntaxError):
            raise NotAPicture(f"{name}: not a readable image (PNG, JPEG, BMP, GIF, TIFF or WebP).") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    raise DigitlabError(f"{name}: cannot read an image from {type(source).__name__}.")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _gray_from_pil(img: Any) -> np.ndarray:
    """Grayscale in [0, 255]: EXIF orientation applied, first frame, large pictures reduced, any bit depth."""
    from PIL import Image, ImageOps

    if img.width * img.height > MAX_PIXELS:
        raise TooLarge(f"image has too many pixels ({img.width}×{img.height}).")
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # an animated GIF or multi-page TIFF: the first frame
    img = ImageOps.exif_transpose(img)  # a phone photo stands the way it was taken
    factor = max(img.width, img.height) // WORK_SIDE
    if factor >= 2:
        img = img.reduce(factor)  # (H, W) -> (H/f, W/f), averaging: strokes stay
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _gray_from_wide(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L"), dtype=np.float64)


def _gray_from_wide(img: Any) -> np.ndarray:
    """16-bit, 32-bit and float pictures scaled to [0, 255] (not clipped: a light pencil scan stays visible)."""
    a = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        top = 1.0 if a.max(initial=0.0) <= 1.0 else max(float(a.max()), 255.0)
    elif img.mode.startswith("I;16") or a.max(initial=0.0) > 255:
        top = 65535.0 if a.max(initial=0.0) <= 65535 else float(a.max())
    else:
        top = 255.0
    return np.clip(a * (255.0 / top), 0.0, 255.0)


def _gray_from_array(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] == 4:  # RGBA: composite onto white
        alpha = a[..., 3:4] / 255.0
        a = a[..., :3] * alpha + 255.0 * (1 - alpha)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's "L"
    if a.ndim != 2 or min(a.shape) < 2:
        raise DigitlabError(f"{name}: expected a 2-D grayscale, RGB or RGBA image, got shape {a.shape}.")
    if a.max() <= 1.0 and a.min() >= 0.0 and a.dtype.kind == "f" and a.max() > 0:
        a = a * 255.0  # floats in [0, 1]
    return a


def is_blank(image: np.ndarray) -> bool:
    """Whether a picture, as ``to_mnist`` made it, holds no ink: nothing to read, explain or store.

    The one definition of "blank" (to_mnist gives all zeros when it finds no ink): every face and
    every reading path asks this, so a picture is blank everywhere or nowhere.
    """
    return not np.asarray(image).any()


def inked_rows(images: np.ndarray) -> list[int]:
    """Which of (n, H, W) images are not blank (``is_blank``), in order: the ones a model reads."""
    images = np.asarray(images)
    if len(images) == 0:  # every picture unreadable: nothing to read
        return []
    return [int(k) for k in np.flatnonzero(images.reshape(len(images), -1).any(axis=1))]


def to_mnist(image: Any, name: str = "image") -> np.ndarray:
    """MNIST-style (28, 28) uint8: white ink on black, fit in 20×20, centred by mass.

    Photos and scans first have their lighting evened out (grey paper, a gradient, a shadow:
    ``_flatten``), speckles of sensor noise dropped (``_strokes``) and strokes far thinner than
    MNIST's thickened (``_thicken``). All zeros when the picture holds no ink.
    """
    ink, photo = ink_map(image, name)
    if not ink.any():
        return np.zeros((28, 28), np.uint8)
    return fit_mnist(ink, photo)


def ink_map(image: Any, name: str = "image", smallest: float = 0.05, line: bool = False) -> tuple[np.ndarray, bool]:
    """The ink of a picture: (H, W) float64 in [0, 255], 0 where there is paper (all zeros: no ink), and
    whether it was read as a photo or scan (``to_mnist``'s first half). ``smallest``: a mark with fewer
    pixels than this fraction of the largest mark's is a speck (a decimal point needs less than the 5%
    that suits one digit). ``line``: the ink is a line of characters side by side, so marks far to the left
    and right of the largest belong to it too."""
    gray = load_image(image, name)  # (H, W) in [0, 255]
    photo = min(gray.shape) >= 40
    if photo:  # photos and scans: a 3×3 median removes speckle, keeps strokes
        gray = _median3(np.clip(gray, 0, 255).astype(np.uint8)).astype(np.float64)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    light = np.percentile(border, 75) > 127  # light paper, even where a shadow darkens part of the edge
    paper = gray if light else 255.0 - gray  # (H, W) ink dark on light paper either way
    flattened = False
    if photo:
        paper, flattened = _flatten(paper)
    border = np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])
    ink = np.clip(np.median(border) - paper, 0, None)  # (H, W) the background lifted to 0
    peak = ink.max()
    if peak < 25:  # nothing darker than faint paper texture
        return np.zeros_like(ink), photo
    ink[ink < INK_FRACTION * peak] = 0.0  # faint noise and shadows
    if photo:
        ink = _strokes(ink, smudges=flattened, smallest=smallest, sideways=4.0 if line else 0.5)
    return ink * (255.0 / peak), photo


def fit_mnist(ink: np.ndarray, photo: bool = True) -> np.ndarray:
    """(H, W) ink (``ink_map``'s, or a part of it) -> MNIST-style (28, 28) uint8: cropped to the ink (thin
    strokes of a photo thickened), fit in 20×20, centred by mass (``to_mnist``'s second half)."""
    from PIL import Image

    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # crop to the ink
    if photo:
        box = _thicken(box)
    h, w = box.shape
    scale = 20.0 / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(
        Image.fromarray(box.astype(np.float32), mode="F").resize((new_w, new_h), Image.Resampling.LANCZOS)
    )
    small = np.clip(small, 0, 255)
    canvas = np.zeros((28, 28))
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = small
    return _centre_of_mass(canvas)


@functools.cache
def _ndimage() -> Any:
    """scipy.ndimage, imported once: ``from scipy import ndimage`` costs about 0.2 ms at every call, a tenth of
    reading a picture (the server reads hundreds a second)."""
    from scipy import ndimage

    return ndimage


@functools.cache
def _cv2() -> Any:
    """OpenCV when installed (the ``augment`` extra): the same filters as Pillow's and SciPy's, many times faster."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _median3(gray: np.ndarray) -> np.ndarray:
    """The 3×3 median of a uint8 picture (edges repeated); OpenCV's takes 1 ms where Pillow's takes 40–130."""
    cv2 = _cv2()
    if cv2 is not None:
        return np.asarray(cv2.medianBlur(gray, 3))
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(gray).filter(ImageFilter.MedianFilter(3)))


def _flatten(paper: np.ndarray) -> tuple[np.ndarray, bool]:
    """Even out the lighting of a page (ink dark on light): divide by the paper's own brightness.

    The paper's brightness at each pixel is a grey closing wider than any stroke (a sixth of
    the picture's longer side): strokes vanish from it, a shadow's edge stays sharp. Where the
    page's edge is evenly lit (a canvas, a flat scan, a digit that fills the picture, whose
    strokes may be wider than the closing) the picture is returned as it is. Also says whether
    the lighting was evened out.
    """
    ndimage = _ndimage()
    size = max(3, max(paper.shape) // 6) | 1
    cv2 = _cv2()
    if cv2 is not None:  # the same closing (edges repeated) in 8 bits (the page's values are whole): 4× faster
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
        page = np.clip(np.rint(paper), 0, 255).astype(np.uint8)
        closed = cv2.morphologyEx(page, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
        light = closed.astype(np.float64)  # (H, W) the paper without the ink
    else:
        light = ndimage.grey_closing(paper, size=(size, size), mode="nearest")  # (H, W) the paper without the ink
    edge = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]])  # the page's edge is paper
    low, high = np.percentile(edge, [5, 95])
    if high - low < 0.12 * high or high < 25:  # evenly lit along the edge (or no paper to speak of)
        return paper, False
    return np.clip(paper / np.maximum(light, 1.0), 0, 1) * 255.0, True


def _strokes(ink: np.ndarray, smudges: bool = False, smallest: float = 0.05, sideways: float = 0.5) -> np.ndarray:
    """``ink`` without specks (and, with ``smudges``, smudges): the pen's marks are not tiny.

    A connected mark smaller than a twentieth of the largest is noise. Where the lighting was
    evened out, a mark whose darkest point is less than half as dark as the darkest ink is what
    is left of a shadow's edge, not a stroke (elsewhere a lightly pencilled stroke is kept).
    """
    labels, n = marks(ink > 0)
    if n <= 1:
        return ink
    marked = labels > 0
    which, values = labels[marked], ink[marked]  # (m,) the marks' pixels only: a few percent of a photo
    sizes = np.bincount(which, minlength=n + 1)[1:]  # (n,) pixels per mark
    peaks = np.zeros(n + 1)
    np.maximum.at(peaks, which, values)  # darkest ink per mark (ndimage.maximum sorts every pixel: 10× slower)
    peaks = peaks[1:]  # (n,)
    strong = peaks >= 0.5 * peaks.max() if smudges else np.ones(n, bool)
    keep = np.zeros(n + 1, bool)
    candidates = (sizes >= max(4, smallest * sizes.max())) & strong  # (n,)
    masses = np.bincount(which, weights=values, minlength=n + 1)[1:]  # (n,) ink per mark
    keep[1:] = _near_the_digit(labels, np.where(candidates, masses, -1.0), sideways)
    return np.where(keep[labels], ink, 0.0)


def marks(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 8-connected marks of a boolean mask: (H, W) labels (0: none, 1..n in raster order) and n. OpenCV's
    where installed (10× faster), else SciPy's: the same labels."""
    cv2 = _cv2()
    if cv2 is not None:
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        return labels, int(count) - 1
    labels, n = _ndimage().label(mask, structure=np.ones((3, 3)))
    return labels, int(n)


def _near_the_digit(labels: np.ndarray, masses: np.ndarray, sideways: float = 0.5) -> np.ndarray:
    """(n,) whether each mark belongs to the digit: the mark with the most ink, and every other mark that
    reaches into the box around those found so far widened by half its longer side (``sideways`` times it to the
    left and right: a line of characters reaches further; marks of negative mass
    are never kept). A mark out there (what is left of a shadow's edge, a speck of dirt in a corner) would
    otherwise stretch the crop and shrink the digit to a few pixels."""
    ndimage = _ndimage()
    boxes = [box if mass >= 0 else None for box, mass in zip(ndimage.find_objects(labels), masses, strict=True)]
    near = np.zeros(len(masses), bool)
    near[int(np.argmax(masses))] = True
    while True:
        found = [box for box, inside in zip(boxes, near, strict=True) if inside and box is not None]
        top, bottom = min(b[0].start for b in found), max(b[0].stop for b in found)
        left, right = min(b[1].start for b in found), max(b[1].stop for b in found)
        margin = 0.5 * max(bottom - top, right - left)
        across = sideways * max(bottom - top, right - left)  # to the left and right
        reach = np.array(
            [
                box is not None
                and box[0].start < bottom + margin
                and box[0].stop > top - margin
                and box[1].start < right + across
                and box[1].stop > left - across
                for box in boxes
            ]
        )
        if (reach == near).all():
            return near
        near = reach


def _thicken(box: np.ndarray) -> np.ndarray:
    """Strokes far thinner than MNIST's (a fine pen on a large photo) widened to about 10% of the digit.

    The stroke width is estimated as area / half the outline; MNIST's is 10–15% of its 20-pixel box.
    """
    ndimage = _ndimage()
    mask = box > 0
    cv2 = _cv2()
    if cv2 is not None:  # the same erosion (a 3×3 cross, outside the box empty), 10× faster
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        eroded = cv2.erode(mask.astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    else:
        eroded = ndimage.binary_erosion(mask)
    outline = int((mask & ~eroded).sum())
    width = 2.0 * mask.sum() / max(outline, 1)
    target = 0.1 * max(box.shape)
    if width >= 0.6 * target:
        return box
    grow = round(target - width) | 1
    return ndimage.grey_dilation(box, size=(grow, grow))


def _centre_of_mass(canvas: np.ndarray) -> np.ndarray:
    """Shift (whole pixels, zero fill) so the centre of mass lands on (14, 14), as MNIST did."""
    total = canvas.sum()
    r = (canvas.sum(axis=1) * np.arange(28)).sum() / total
    c = (canvas.sum(axis=0) * np.arange(28)).sum() / total
    dr, dc = round(14 - r), round(14 - c)
    out = np.zeros_like(canvas)
    src = canvas[max(0, -dr) : 28 - max(0, dr), max(0, -dc) : 28 - max(0, dc)]
    out[max(0, dr) : max(0, dr) + src.shape[0], max(0, dc) : max(0, dc) + src.shape[1]] = src
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
