"""Pictures of digits as people make them, read back through to_mnist."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.data.pictures import to_mnist


@pytest.fixture(scope="module")
def mnist_small(mnist_cache: Path) -> Dataset:
    return load_dataset("mnist", cache_dir=mnist_cache, allow_network=False).subset(6000, 300, random_state=0)


@pytest.fixture(scope="module")
def knn(mnist_small: Dataset):
    from digitlab.models import registry

    return registry.get("knn").build(0).fit(mnist_small.x_train, mnist_small.y_train)


def render(digit: np.ndarray, rng: np.random.Generator, size: int, invert: bool, noise: float) -> Image.Image:
    """A test digit as a person might photograph it: enlarged, off-centre, ink on paper, noisy."""
    big = Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR)
    page = np.zeros((size * 2, int(size * 2.5)), np.float64)
    top, left = rng.integers(0, size), rng.integers(0, int(size * 1.5))
    page[top : top + size, left : left + size] = np.asarray(big, np.float64)
    if invert:
        page = 255.0 - page * 0.8  # dark grey ink on white paper
    page += rng.normal(0, noise, page.shape)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


@pytest.mark.slow
def test_renderings_of_test_digits_are_read_correctly(mnist_small: Dataset, knn) -> None:
    rng = np.random.default_rng(0)
    x, y = mnist_small.x_test[:200], mnist_small.y_test[:200]
    baseline = (knn.predict(x) == y).mean()
    for size, invert, noise in [(56, False, 0.0), (120, True, 0.0), (90, True, 12.0), (200, False, 8.0)]:
        images = np.stack([to_mnist(render(d, rng, size, invert, noise)) for d in x])
        accuracy = (knn.predict(images) == y).mean()
        assert accuracy >= baseline - 0.05, (size, invert, noise, accuracy, baseline)
        assert images.shape == (200, 28, 28) and images.dtype == np.uint8


def test_output_is_mnist_style() -> None:
    page = np.full((300, 200), 250.0)
    page[60:240, 90:110] = 20.0  # a tall dark stroke on white paper (a "1")
    img = to_mnist(page)
    assert img.dtype == np.uint8 and img.shape == (28, 28)
    rows = np.flatnonzero(img.any(axis=1))
    assert rows[-1] - rows[0] + 1 == 20  # the longer side fits 20 pixels
    assert img[0].max() == 0 and img[:, 0].max() == 0  # ink is white on black, border empty
    total = img.sum()
    r = (img.sum(axis=1) * np.arange(28)).sum() / total
    assert abs(r - 14) <= 1.0


def test_blank_and_faint_pictures_are_blank() -> None:
    """The one definition of blank (#31): white paper, faint noise and an empty canvas are blank, a stroke is not."""
    from digitlab.data.pictures import inked_rows, is_blank

    rng = np.random.default_rng(0)
    blank = [np.full((100, 100), 255.0), 240 + rng.normal(0, 3, (100, 100)), np.zeros((280, 280, 4), np.uint8)]
    stroke = np.full((100, 100), 255.0)
    stroke[20:80, 45:55] = 0.0
    read = np.stack([to_mnist(p) for p in [*blank, stroke]])
    assert [is_blank(image) for image in read] == [True, True, True, False]
    assert inked_rows(read) == [3] and inked_rows(read[:3]) == [] and inked_rows(read[:0]) == []


def test_every_reading_path_uses_the_one_blank_check() -> None:
    """No module decides "blank" by itself: the faces, the service and explain all ask images.is_blank."""
    import re

    src = Path(__file__).resolve().parents[2] / "src" / "digitlab"
    own = re.compile(r"if not (image|picture|drawn)\.any\(\)")
    found = [str(p.relative_to(src)) for p in src.rglob("*.py") if own.search(p.read_text())]
    assert found == [], found


def test_transparent_canvas_with_black_strokes() -> None:
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[50:230, 130:150] = (0, 0, 0, 255)  # opaque black stroke on a transparent canvas
    img = to_mnist(rgba)
    assert img.max() == 255 and img[0].max() == 0


def test_unreadable_and_oversized_inputs(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(DigitlabError, match=r"notes\.png: not a readable image"):
        to_mnist(text)
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")  # 48 M pixels, a few KB on disk
    with pytest.raises(DigitlabError, match="too many pixels"):
        to_mnist(huge.getvalue(), "huge.png")


def test_predict_command_reports_each_file(
    tmp_path: Path, real_mnist: Path, mnist_small: Dataset, mnist_run: Path
) -> None:
    env = {**os.environ, "DIGITLAB_DATA": str(real_mnist)}
    knn = str(mnist_run / "models" / "knn.skops")  # the k-NN of the real quick run
    digit = tmp_path / "seven.png"
    Image.fromarray(255 - mnist_small.x_test[list(mnist_small.y_test).index(7)]).resize((140, 140)).save(digit)
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "predict", str(digit), str(blank), str(bad), "--model", knn, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1  # one file failed, the others were still read
    rows = {Path(r["file"]).name: r for r in json.loads(proc.stdout)["predictions"]}
    assert rows["seven.png"]["label"] == "7" and len(rows["seven.png"]["top3"]) == 3
    assert rows["blank.png"]["status"] == "blank"
    assert rows["bad.jpg"]["status"] == "error" and "not a readable image" in rows["bad.jpg"]["error"]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.mark.parametrize("condition", ["grey paper", "uneven light", "shadow", "noise", "blur", "jpeg", "off-centre"])
def test_a_photographed_drawing_reads_like_the_drawing(condition: str) -> None:
    """Grey paper, a lighting gradient, a shadow across the page, noise, blur, JPEG: evened out by to_mnist."""
    from digitlab.data.strokes import STYLES, draw, photograph

    for seed in range(8):
        canvas = draw(STYLES["plain"], seed, np.random.default_rng(seed))
        photo = photograph(canvas, condition, np.random.default_rng(100 + seed))
        assert photo.shape == (900, 1200) and photo.dtype == np.uint8
        assert _corr(to_mnist(canvas), to_mnist(photo)) > 0.6, seed


def test_a_thin_pen_is_thickened_to_mnist_strokes() -> None:
    from dataclasses import replace

    from digitlab.data.strokes import STYLES, draw

    for seed in range(5):  # the same seed draws the same digit, only the pen differs
        thick = to_mnist(draw(STYLES["plain"], seed, np.random.default_rng(seed)))
        thin = to_mnist(draw(replace(STYLES["plain"], width=(3.0, 3.0)), seed, np.random.default_rng(seed)))
        bright_thin, bright_thick = int((thin > 128).sum()), int((thick > 128).sum())
        assert 0.6 * bright_thick <= bright_thin <= 1.6 * bright_thick, seed  # not a faint hairline, not a blob


def test_the_real_world_check_set_is_the_same_for_the_same_seed() -> None:
    from digitlab.data.strokes import CONDITIONS, check_set

    first = check_set(("continental",), n_per_class=1, seed=3)
    assert list(first) == [("continental", c) for c in CONDITIONS]
    again = check_set(("continental",), n_per_class=1, seed=3)
    for key, (x, y) in first.items():
        assert x.shape == (10, 28, 28) and list(y) == list(range(10))
        assert np.array_equal(x, again[key][0]), key
        assert x.reshape(10, -1).max(axis=1).min() > 100, key  # every digit found, none blank


def test_opencv_filters_give_what_pillow_and_scipy_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV's median and closing only make to_mnist faster: without OpenCV every picture reads the same."""
    from digitlab.data import pictures as images
    from digitlab.data.strokes import CONDITIONS, STYLES, draw, photograph

    assert images._cv2() is not None  # the test environment has the augment extra
    rng = np.random.default_rng(5)
    photos = [photograph(draw(STYLES["continental"], d, rng), c, rng) for c in CONDITIONS for d in (1, 7)]
    fast = [to_mnist(p) for p in photos]
    monkeypatch.setattr(images, "_cv2", lambda: None)
    for condition, p, f in zip([c for c in CONDITIONS for _ in (1, 7)], photos, fast, strict=True):
        assert np.array_equal(to_mnist(p), f), condition


def test_synthetic_training_digits_are_repeatable_digits_in_many_hands() -> None:
    from digitlab.data.strokes import FAMILIES, FAMILY_WEIGHTS, random_writer, synthetic_digits

    x, y = synthetic_digits(3, seed=4)
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8 and y.tolist() == list(range(10)) * 3
    assert x.reshape(30, -1).max(axis=1).min() > 100  # every digit drawn and found by to_mnist
    assert np.array_equal(x, synthetic_digits(3, seed=4)[0])
    assert not np.array_equal(x, synthetic_digits(3, seed=5)[0])
    writers = [random_writer(np.random.default_rng(s)) for s in range(40)]
    assert len({round(w.slant) for w in writers}) > 20 and min(w.width[0] for w in writers) < 6
    flagged = [w.templates[1] for w in writers if len(w.templates[1]) == 2]  # a 1 with its flag and its base
    assert flagged and len(flagged) < 40 and set(FAMILY_WEIGHTS) == set(FAMILIES)  # every family
    assert set(FAMILIES) == {"plain", "school", "continental", "rounded", "print"}  # the held-out check's families


def test_a_mark_far_from_the_digit_is_not_part_of_it() -> None:
    """A blot in a corner (or what a shadow's edge leaves) must not stretch the crop and shrink the digit."""
    from digitlab.data.strokes import STYLES, draw

    for digit in (1, 4, 7):  # a 4 and a continental 7 are two strokes each: both stay
        canvas = draw(STYLES["continental"], digit, np.random.default_rng(digit))
        page = np.full((700, 700), 235, np.uint8)
        page[210:490, 210:490] = np.minimum(page[210:490, 210:490], canvas)
        blotted = page.copy()
        blotted[30:90, 600:660] = 20  # a dark blot, 60 px square, far from the digit
        clean, read = to_mnist(page), to_mnist(blotted)
        assert _corr(clean, read) > 0.99, digit
        assert (read > 128).sum() > 40, digit  # the digit fills the box, not a few pixels of it


def test_opencv_and_scipy_read_every_photograph_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading path uses OpenCV where it is installed (marks, outline, closing, median: ~2× faster) and SciPy
    and Pillow where it is not; a picture reads the same either way, photographed under every condition."""
    from digitlab.data import pictures, strokes

    rng = np.random.default_rng(7)
    writer = strokes.family_writer("continental", rng)
    photos = [strokes.photograph(strokes.draw(writer, d, rng), c, rng) for c in strokes.CONDITIONS for d in (0, 4, 8)]
    with_cv2 = [pictures.to_mnist(p) for p in photos]
    monkeypatch.setattr(pictures, "_cv2", lambda: None)
    without = [pictures.to_mnist(p) for p in photos]
    assert all(a.any() for a in with_cv2)
    different = [
        k for k, (a, b) in enumerate(zip(with_cv2, without, strict=True)) if np.abs(a.astype(int) - b).max() > 1
    ]
    assert len(different) <= 1, different  # Pillow's and OpenCV's 3×3 median may differ by a level at the edge
