"""Pictures as people make them (scanners, phones, editors) must be read as the right digit."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab import service
from digitlab.data.datasets import Dataset, load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictor(mnist_run: Path) -> service.Predictor:
    return service.Predictor(mnist_run / "models" / "cnn.pt")


@pytest.fixture(scope="module")
def digits(predictor: service.Predictor, mnist_cache: Path) -> list[tuple[np.ndarray, str]]:
    """Five MNIST test digits of different classes that the cnn reads surely when clean."""
    os.environ.setdefault("DIGITLAB_DATA", str(mnist_cache))
    ds: Dataset = load_dataset("mnist", cache_dir=mnist_cache)
    chosen: list[tuple[np.ndarray, str]] = []
    for k in range(200):
        label = ds.class_names[ds.y_test[k]]
        if any(label == c for _, c in chosen):
            continue
        answer = predictor.predict_image(ds.x_test[k])
        if answer.label == label and (answer.confidence or 0) > 0.95:
            chosen.append((ds.x_test[k], label))
        if len(chosen) == 5:
            break
    return chosen


def paper(digit: np.ndarray, size: int = 140) -> Image.Image:
    """Dark ink on light paper, as a scan or photo shows a digit: (size, size) grayscale."""
    big = Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC)
    return big


def _png16(img: Image.Image) -> bytes:
    a = np.asarray(img, dtype=np.float64)
    light = (40000 + a / 255.0 * 25000).astype(np.uint16)  # a light pencil scan: all values far above 255
    buf = io.BytesIO()
    Image.fromarray(light).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    return buf.getvalue()


def _exif_rotated(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def _save(fmt: str, mode: str | None = None, **kwargs: object) -> Callable[[Image.Image], bytes]:
    def encode(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        (img.convert(mode) if mode else img).save(buf, fmt, **kwargs)
        return buf.getvalue()

    return encode


def _alpha_only(img: Image.Image) -> bytes:
    """RGBA whose colour is black everywhere: the digit exists only in the alpha channel."""
    ink = 255 - np.asarray(img)
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def _animated_gif(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    blank = Image.new("L", img.size, 255)
    img.save(buf, "GIF", save_all=True, append_images=[blank, blank], duration=100, loop=0)
    return buf.getvalue()


FORMATS: dict[str, Callable[[Image.Image], bytes]] = {
    "png-16-bit": _png16,
    "jpeg-exif-rotated": _exif_rotated,
    "jpeg-cmyk": _save("JPEG", "CMYK", quality=95),
    "png-palette": _save("PNG", "P"),
    "png-rgba-alpha-only": _alpha_only,
    "gif-animated": _animated_gif,
    "bmp": _save("BMP"),
    "tiff": _save("TIFF"),
    "webp": _save("WEBP", quality=95),
    "png-rgb": _save("PNG", "RGB"),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_pictures_are_read_as_the_right_digit(
    fmt: str, predictor: service.Predictor, digits: list[tuple[np.ndarray, str]], tmp_path: Path
) -> None:
    files, labels = [], []
    for k, (digit, label) in enumerate(digits):
        path = tmp_path / f"{fmt}-{k}"
        path.write_bytes(FORMATS[fmt](paper(digit)))
        files.append(path)
        labels.append(label)
    answers = predictor.predict(files)
    assert [a.label for a in answers] == labels, [a.to_json() for a in answers]


def test_unicode_file_names_through_the_command_line(
    mnist_run: Path, digits: list[tuple[np.ndarray, str]], tmp_path: Path
) -> None:
    digit, label = digits[0]
    path = tmp_path / "Ziffer-ü-数字-٣.png"
    paper(digit).save(path)
    model = str(mnist_run / "models" / "cnn.pt")
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "predict", str(path), "--model", model, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["predictions"][0]
    assert row["file"] == str(path) and row["label"] == label


def test_a_40_megapixel_photo_is_read_in_little_memory(
    mnist_run: Path, digits: list[tuple[np.ndarray, str]], tmp_path: Path
) -> None:
    """Decoded at reduced size: the extra peak memory for a 40 MP JPEG stays under 300 MB."""
    digit, label = digits[0]
    width, height = 7300, 5400  # 39.4 megapixels
    photo = Image.new("L", (width, height), 235)
    photo.paste(paper(digit, 3000), ((width - 3000) // 2, (height - 3000) // 2))
    path = tmp_path / "photo.jpg"
    photo.save(path, "JPEG", quality=85)
    del photo
    script = f"""
import json, resource
from pathlib import Path
from digitlab import service
p = service.Predictor(Path({str(mnist_run / "models" / "cnn.pt")!r}))
import numpy as np
p.probabilities(np.zeros((1, 28, 28), np.uint8))  # warm: torch's first call allocates
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
answer = p.predict([Path({str(path)!r})])[0]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"label": answer.label, "extra_mb": (after - before) / 1024}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["label"] == label
    assert result["extra_mb"] <= 300, result


def test_a_small_picture_is_told_by_its_header_alone() -> None:
    from digitlab.service.predictor import SMALL_PIXELS, small_picture
    from tests.conftest import png

    assert small_picture(png(np.zeros((280, 280), np.uint8)))
    assert not small_picture(png(np.zeros((1200, 1000), np.uint8)))  # 1.2 MP: read on a worker thread
    assert small_picture(b"not a picture")  # fails at once when read
    assert SMALL_PIXELS == 1_000_000
