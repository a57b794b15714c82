from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.core.files import atomic_open, atomic_write_bytes
from digitlab.data.datasets import load_dataset
from digitlab.features.transforms import ScaleImages, StandardiseImages
from digitlab.models.store import load_model
from digitlab.runs.folders import new_run
from digitlab.service import data, evaluating, training


def _is_png(path: Path) -> bool:
    with Image.open(path) as img:
        return img.format == "PNG" and img.size[0] > 50


@pytest.mark.parametrize("which", ["digits", "tiny"])
def test_explore_writes_statistics_and_figures(which: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset("digits" if which == "digits" else f"idx:{tiny_idx_dir}")
    run = new_run(tmp_path / "runs", "explore")
    result = data.explore_into(ds, run)
    assert result["splits"]["train"]["per_class"] == np.bincount(ds.y_train, minlength=10).tolist()
    assert result["splits"]["train"]["x_shape"] == list(ds.x_train.shape)
    assert result["splits"]["test"]["pixels"]["max"] == float(ds.x_test.max())
    assert set(result["figures"]) == {"class_histogram", "examples", "mean_images", "pixel_histogram", "ten_examples"}
    for rel in result["figures"].values():
        assert _is_png(run.path / rel)
    assert json.loads(run.file("explore.json").read_text())["splits"] == result["splits"]


@pytest.mark.parametrize("which", ["digits", "tiny"])
def test_preprocess_shows_before_and_after(which: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset("digits" if which == "digits" else f"idx:{tiny_idx_dir}")
    run = new_run(tmp_path / "runs", "preprocess")
    result = data.preprocess_into(ds, run)
    stats = result["stats"]
    assert stats["raw"]["max"] == 255.0
    assert stats["scaled"]["max"] == 1.0 and stats["scaled"]["min"] == 0.0
    assert abs(stats["standardised"]["mean"]) < 1e-3
    # counted per (pixel, value), the statistics are those of every value in the arrays themselves
    every = {
        "raw": ds.x_train,
        "scaled": ScaleImages().fit_transform(ds.x_train),
        "standardised": StandardiseImages().fit(ds.x_train).transform(ds.x_train),
    }
    for name, values in every.items():
        v = values.astype(np.float64)
        direct = {"min": v.min(), "max": v.max(), "mean": v.mean(), "std": v.std(), "median": np.median(v)}
        assert stats[name] == pytest.approx(dict(direct, fraction_zero=np.mean(v == 0)), rel=1e-9, abs=1e-12)
    for rel in result["figures"].values():
        assert _is_png(run.path / rel)


def test_compare_then_evaluate_saved_model(tmp_path: Path) -> None:
    ds = load_dataset("digits")
    run = new_run(tmp_path / "runs", "compare")
    result = training.compare_into(ds, ["lr", "knn"], run, seed=0)
    assert [row["model"] for row in result["models"]] == ["lr", "knn"]
    assert all(row["accuracy"] > 0.9 and row["size_bytes"] > 0 for row in result["models"])
    _, meta = load_model(run.models / "knn.skops")
    assert meta["dataset"] == "digits" and meta["seed"] == 0 and meta["metrics"]["accuracy"] > 0.9
    assert _is_png(run.path / result["figure"])
    evaluation = evaluating.evaluate_into(ds, run.models / "knn.skops", new_run(tmp_path / "runs", "evaluate"))
    assert evaluation["accuracy"] == result["models"][1]["accuracy"]
    cm = np.array(evaluation["confusion_matrix"])
    assert cm.sum() == len(ds.y_test) and np.trace(cm) == len(ds.y_test) - evaluation["n_errors"]
    assert len(evaluation["misclassified"]) == min(40, evaluation["n_errors"])


def test_saved_files_are_complete_or_untouched_and_readable_like_any_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    atomic_write_bytes(target, b"first")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's owner-only 0o600
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"first" and os.listdir(target.parent) == ["report.html"]
