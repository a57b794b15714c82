"""Reading whole numbers (issue 33, first step): `digitlab read` on pictures of handwritten numbers made of MNIST
**test** digits, photographed; blank, letters and broken files each a clear answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data.datasets import load_dataset
from digitlab.data.number_lines import Layout, compose, on_paper
from digitlab.service.exporting import load_predictor
from digitlab.service.numbers import read_number
from tests.conftest import digitlab


@pytest.fixture(scope="module")
def digits(mnist_cache: Path) -> dict[int, np.ndarray]:
    ds = load_dataset("mnist", cache_dir=mnist_cache)
    x = ds.x_test.reshape(-1, 28, 28)
    return {d: x[ds.y_test == d][:40] for d in range(10)}


def number(
    digits: dict[int, np.ndarray], text: str, seed: int, layout: Layout = Layout(), how: str = "scan"
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    glyphs = [digits[int(c)][int(rng.integers(40))] for c in text if c.isdigit()]
    line, _ = compose(glyphs, text, rng, layout)
    return on_paper(line, rng, how)


CASES = ["4817", "12.50", "-3", "905", "3,75", "-0.25", "7006215"]


@pytest.mark.parametrize("method", ["lines", "segments"])
@pytest.mark.parametrize("text", CASES)
def test_a_written_number_is_read_with_its_boxes(digits: dict[int, np.ndarray], text: str, method: str) -> None:
    """Both ways of reading (the line reader; cutting, then the digit reader) on numbers of separated digits."""
    reader = load_predictor("best", Path("no-runs-here"))
    picture = number(digits, text, seed=CASES.index(text), how="photo")
    got = read_number(reader, picture, text, method)
    assert got.text == text.replace(",", "."), got
    assert got.status == "ok" or got.reasons, got  # flagged only with its reasons
    assert got.confidence > 0.5 and len(got.characters) == len(text)
    xs = [c.box[0] for c in got.characters]
    assert xs == sorted(xs)  # left to right, inside the picture
    assert all(
        0 <= c.box[0] < c.box[2] <= picture.shape[1] and 0 <= c.box[1] < c.box[3] <= picture.shape[0]
        for c in got.characters
    )
    if "," in text:
        assert [c.written for c in got.characters if c.label == "."] == [","]  # the comma is kept


def test_touching_digits_are_read_by_the_line_reader(digits: dict[int, np.ndarray]) -> None:
    """Digits that touch or overlap cannot be cut apart surely; the line reader reads them (benchmarks/read.py:
    91% of touching numbers whole, cutting 33%)."""
    reader = load_predictor("best", Path("no-runs-here"))
    texts = ["3519", "80264", "7731", "461"]
    right = sum(
        read_number(reader, number(digits, t, seed=40 + k, layout=Layout(gap=(-0.1, 0.0))), t).text == t
        for k, t in enumerate(texts)
    )
    assert right >= 3


def test_an_unknown_method_is_one_line() -> None:
    from digitlab.core.errors import DigitlabError
    from digitlab.service.numbers import method_for

    assert method_for("auto") == "lines"  # this copy ships the line reader
    with pytest.raises(DigitlabError, match=r"--method 'fast': choose one of auto, lines, segments"):
        method_for("fast")


def test_blank_letters_and_a_broken_file_each_get_a_clear_answer(tmp_path: Path) -> None:
    reader = load_predictor("best", Path("no-runs-here"))
    blank = np.full((120, 300), 235, np.uint8)
    assert read_number(reader, blank, "blank").status == "blank"
    page = Image.new("L", (420, 160), 240)
    pen = ImageDraw.Draw(page)
    for k, letter in enumerate(("W", "K", "H")):  # letters drawn as strokes: never a confident number
        x = 40 + 120 * k
        if letter == "W":
            pen.line([(x, 30), (x + 20, 130), (x + 45, 60), (x + 70, 130), (x + 90, 30)], fill=20, width=9)
        elif letter == "K":
            pen.line([(x, 30), (x, 130)], fill=20, width=9)
            pen.line([(x + 70, 30), (x + 5, 80), (x + 70, 130)], fill=20, width=9)
        else:
            pen.line([(x, 30), (x, 130)], fill=20, width=9)
            pen.line([(x + 70, 30), (x + 70, 130)], fill=20, width=9)
            pen.line([(x, 80), (x + 70, 80)], fill=20, width=9)
    letters = read_number(reader, np.asarray(page), "letters")
    assert letters.status == "uncertain", letters
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    failed = read_number(reader, broken, str(broken))
    assert failed.status == "error" and "not a readable image" in (failed.error or "")


def test_digitlab_read_prints_each_number_and_its_json(digits: dict[int, np.ndarray], tmp_path: Path) -> None:
    folder = tmp_path / "numbers"
    folder.mkdir()
    for k, text in enumerate(("2026", "19.99")):
        Image.fromarray(number(digits, text, seed=10 + k, how="photo")).save(folder / f"{text}.jpg", quality=85)
    (folder / "notes.txt").write_text("not a picture: skipped")
    done = digitlab("read", str(folder), "--json", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "line-reader" and result["method"] == "lines" and "shipped" in result["why"]
    got = {Path(n["file"]).stem: n for n in result["numbers"]}
    assert {k: v["text"] for k, v in got.items()} == {"2026": "2026", "19.99": "19.99"}
    row = got["19.99"]
    assert row["status"] in ("ok", "uncertain") and row["uncertain"] is (row["status"] == "uncertain")
    assert 0.5 < row["confidence"] <= 1
    assert [c["label"] for c in row["characters"]] == list("19.99")
    assert all(len(c["box"]) == 4 and len(c["top3"]) in (0, 3) for c in row["characters"])
    (folder / "bad.png").write_bytes(b"nope")
    failed = digitlab("read", str(folder), "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].endswith("The other pictures were read.")
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_digitlab_read_output_writes_a_row_a_picture(
    digits: dict[int, np.ndarray], tmp_path: Path, suffix: str
) -> None:
    """`read --output`: the batch machinery of `predict` (files listed lazily, the file written whole or not at
    all, never over one not made here without --force); a bad picture is a row with its error."""
    import csv

    folder = tmp_path / "numbers"
    folder.mkdir()
    for k, text in enumerate(("318", "7.05", "-42")):
        Image.fromarray(number(digits, text, seed=60 + k, how="scan")).save(folder / f"{text}.png")
    (folder / "broken.png").write_bytes(b"not a picture")
    target = tmp_path / f"numbers{suffix}"
    done = digitlab("read", str(folder), "--output", str(target), "--json", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"] == 4 and summary["error"] == 1 and summary["model"] == "line-reader"
    if suffix == ".csv":
        with target.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in target.read_text().splitlines()]
    by_name = {Path(r["file"]).stem: r for r in rows}
    assert {k: by_name[k]["text"] for k in ("318", "7.05", "-42")} == {"318": "318", "7.05": "7.05", "-42": "-42"}
    chars = by_name["7.05"]["characters"]
    assert [c["label"] for c in json.loads(chars)] == list("7.05")
    assert by_name["broken"]["status"] == "error" and "not a readable image" in by_name["broken"]["error"]
    again = digitlab("read", str(folder), "--output", str(target), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr.strip().splitlines()[-1]


def test_digitlab_read_on_a_dask_cluster_gives_the_same_rows(digits: dict[int, np.ndarray], tmp_path: Path) -> None:
    """`read --output --dask-local 1`: the chunks are read on a Dask worker (which loads the readers once)."""
    folder = tmp_path / "numbers"
    folder.mkdir()
    for k, text in enumerate(("2048", "65.5")):
        Image.fromarray(number(digits, text, seed=70 + k, how="scan")).save(folder / f"{text}.png")
    rows = {}
    for where, extra in (("local", []), ("dask", ["--dask-local", "1"])):
        target = tmp_path / f"{where}.jsonl"
        done = digitlab(
            "read", str(folder), "--output", str(target), *extra, "--out", str(tmp_path / "r"), cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        rows[where] = sorted(
            (Path(r["file"]).name, r["text"]) for r in map(json.loads, target.read_text().splitlines())
        )
    assert rows["local"] == rows["dask"] == [("2048.png", "2048"), ("65.5.png", "65.5")]


def test_without_onnxruntime_or_pytorch_numbers_are_cut_into_digits() -> None:
    """A copy with neither runtime for the line reader reads numbers the other way, and says so."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.modules['torch'] = None\n"
        "from digitlab.service import numbers\n"
        "print(numbers.method_for('auto'))\n"
        "try:\n    numbers.method_for('lines')\nexcept numbers.DigitlabError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "segments",
        "--method lines: this copy of digitlab has neither onnxruntime nor PyTorch to run its line reader "
        "(pip install 'digitlab[onnx]'); use --method segments.",
    ]
