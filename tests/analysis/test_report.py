"""The HTML report: every section, every figure embedded and readable, nothing linked from outside."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from digitlab.analysis import report
from digitlab.core.errors import DigitlabError
from digitlab.data import sources
from digitlab.models import registry


class _Page(HTMLParser):
    """Ids, <img> sources and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "img":
            self.images.append(found)
        for key in ("src", "href"):
            if found.get(key):
                self.urls.append(str(found[key]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_report_of_a_real_run_has_every_section_and_no_broken_image(mnist_run: Path) -> None:
    html = (mnist_run / "report.html").read_text()  # written by `digitlab run` itself
    page = parse(html)
    assert {section for section, _ in report.SECTIONS} <= page.ids
    assert {"model-lr", "model-knn", "model-cnn", "model-lr-tuned"} <= page.ids
    # self-contained: nothing is fetched from anywhere, every link stays on the page
    assert all(url.startswith(("data:image/png;base64,", "#")) for url in page.urls), page.urls
    assert len(page.images) >= 20
    for img in page.images:
        png = base64.b64decode(str(img["src"]).split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as picture:
            picture.verify()  # a truncated or corrupt PNG raises here
        assert img.get("alt")
    text = " ".join(page.text)
    for spec in sources.MNIST.files:  # dataset section: the pinned checksums of the real files
        assert spec.sha256 in text
    assert "One training image of each class" in text  # the 10 example images
    assert "after scaling to [0, 1]" in text  # sample of normalised data
    assert "true / predicted" in text.lower()  # true-vs-predicted grid
    assert "most confident mistakes" in text  # misclassified gallery
    assert "This run has no" not in text  # tuning and augmentation are present, so no placeholder
    assert "halving search" in text and "saved as lr-tuned" in text
    assert "lr with opencv" in text
    assert registry.get("knn").pros in text  # aspects to consider
    assert "missing from the run folder" not in text


def test_report_command_writes_where_asked_and_prints_json(mnist_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "report", str(mnist_run), "--output", str(target), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["path"] == str(target) and target.stat().st_size == result["bytes"]
    assert result["missing_figures"] == [] and result["has_tuning"] and result["has_augmentation"]
    assert result["models"][:5] == ["lr", "knn", "svm", "mlp", "cnn"]


def test_missing_figure_becomes_a_note_not_a_broken_image(mnist_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(mnist_run, run)
    (run / "figures" / "knn-confusion.png").unlink()
    (run / "figures" / "class_histogram.png").write_bytes(b"not a png")
    html, summary = report.render(run)
    assert sorted(summary["missing_figures"]) == ["figures/class_histogram.png", "figures/knn-confusion.png"]
    assert "Figure figures/knn-confusion.png is missing from the run folder" in html
    assert all(str(img["src"]).startswith("data:image/png;base64,") for img in parse(html).images)


def test_text_from_run_files_is_escaped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    data = {
        "dataset": "<script>alert(1)</script>",
        "classes": ["0", "1"],
        "image_shape": [28, 28],
        "splits": {
            s: {"x_shape": [2, 28, 28], "x_dtype": "uint8", "y_dtype": "int64", "per_class": [1, 1]}
            for s in ("train", "test")
        },
        "files": {},
    }
    (run / "data.json").write_text(json.dumps(data))
    html, summary = report.render(run)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert {section for section, _ in report.SECTIONS} <= page.ids  # absent steps still get their section
    assert "This run has no model comparison" in " ".join(page.text)
    assert summary["figures"] == 0


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match="no such run folder"):
        report.build(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DigitlabError, match="nothing to report"):
        report.build(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "compare.json").write_text("{not json")
    with pytest.raises(DigitlabError, match=r"compare\.json: not readable JSON"):
        report.build(tmp_path / "bad")
    assert not (tmp_path / "bad" / "report.html").exists()  # nothing half-written
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "report", "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: run folder not found") and len(proc.stderr.strip().splitlines()) == 1
