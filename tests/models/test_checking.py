"""The reading check (issue 32): `best` is the shipped reader unless a reader you trained reads photographed
handwriting better; the check is made once and each model measured once, by the SHA-256 of its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitlab.models import checking, shipped
from digitlab.models.store import load_model
from digitlab.runs.lookup import best_reader
from digitlab.service.exporting import why_this


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_check_is_made_once_and_measures_the_shipped_reader(private_cache: Path) -> None:
    x, y = checking.pictures()
    assert x.shape == (550, 28, 28) and x.dtype == np.uint8 and sorted(set(y.tolist())) == list(range(10))
    (kept,) = (private_cache / "checks").glob("reading-*.npz")
    again, _ = checking.pictures()  # read back, not drawn again
    assert np.array_equal(x, again) and kept.is_file()
    path = shipped.model_path()
    assert checking.known(path) is None
    score = checking.measure(load_model(path, reading=True)[0], path)
    assert score >= 0.97 and checking.known(path) == score  # photographed handwriting of every family


def test_a_reader_that_reads_the_check_better_answers_best_and_says_why(mnist_run: Path, private_cache: Path) -> None:
    out = mnist_run.parent
    cnn = mnist_run / "models" / "cnn.pt"
    assert best_reader(out) == shipped.model_path()  # nothing measured: the shipped reader
    folder = private_cache / "checks"
    folder.mkdir(parents=True)

    def figure(path: Path, accuracy: float) -> None:
        name = f"{checking.check_id()}-{checking.digest(path)}.json"
        (folder / name).write_text(json.dumps({"accuracy": accuracy}))

    figure(shipped.model_path(), 0.99)
    figure(cnn, 0.995)
    assert best_reader(out) == cnn
    assert "better than the shipped reader (99.50% vs 99.00%" in why_this("best", cnn)
    figure(cnn, 0.98)  # worse: the shipped reader again
    assert best_reader(out) == shipped.model_path()
    assert best_reader(out, kinds=("cnn-hands",)) == shipped.model_path()


def test_a_quick_or_foreign_model_is_never_measured(private_cache: Path) -> None:
    class Tiny:
        image_shape_ = (28, 28)
        classes_ = np.arange(10)

    assert checking.remember(Tiny(), Path("nowhere.pt"), n_train=6_000) is None
    Tiny.image_shape_ = (8, 8)
    assert checking.remember(Tiny(), Path("nowhere.pt"), n_train=60_000) is None
    assert not (private_cache / "checks").exists()
