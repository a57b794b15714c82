from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.models.store import load_model
from digitlab.runs.folders import new_run
from digitlab.service import tuning
from digitlab.training.tune import parse_overrides, parse_value, space_for, tune

SMALL_SVM = {"clf__C": [1.0, 10.0], "clf__gamma": ["scale", 0.01], "pca__n_components": [30], "deskew": ["passthrough"]}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_grid_search_returns_best_params_and_a_refitted_model(digits: Dataset) -> None:
    found = tune("svm", digits.x_train, digits.y_train, search="grid", cv=3, space=SMALL_SVM)
    assert found.n_candidates == 4 and len(found.candidates) == 4
    assert found.candidates[0]["rank"] == 1
    assert found.best_params == found.candidates[0]["params"]
    scores = [c["mean_cv_accuracy"] for c in found.candidates]
    assert scores == sorted(scores, reverse=True) and scores[0] == found.best_cv_accuracy > 0.95
    assert found.best_params["clf__C"] == found.model.named_steps["clf"].C
    assert (found.model.predict(digits.x_test) == digits.y_test).mean() > 0.95


def test_halving_and_random_searches(digits: Dataset) -> None:
    halving = tune("svm", digits.x_train, digits.y_train, search="halving", cv=3, space=SMALL_SVM)
    assert halving.candidates[0]["n_samples"] > halving.candidates[-1]["n_samples"]  # survivors saw more data
    rand = tune("knn", digits.x_train, digits.y_train, search="random", n_iter=3, cv=3)
    assert len(rand.candidates) == 3


def test_the_test_split_never_reaches_the_search(digits: Dataset, tmp_path: Path) -> None:
    run = new_run(tmp_path, "tune")
    result = tuning.tune_into(digits, "svm", run, seed=0, train_size=600, space=SMALL_SVM)
    searched = digits.subset(600, None, random_state=0)
    assert result["n_train_searched"] == 600
    assert result["search_data_sha256"] == hashlib.sha256(searched.x_train.tobytes()).hexdigest()
    train_rows = {row.tobytes() for row in digits.x_train}
    assert {row.tobytes() for row in searched.x_train} <= train_rows  # only training images were searched
    model, meta = load_model(Path(result["model_path"]))
    assert result["test"]["accuracy"] == pytest.approx((model.predict(digits.x_test) == digits.y_test).mean())
    assert meta["model"] == "svm"
    assert (run.path / result["figures"]["heatmap"]).is_file()
    assert json.loads(run.file("tune.json").read_text())["best_params"] == result["best_params"]


def test_dask_local_cluster_runs_the_search(digits: Dataset) -> None:
    found = tune(
        "lr",
        digits.x_train[:400],
        digits.y_train[:400],
        cv=2,
        space={"clf__C": [0.1, 1.0]},
        dask_local=2,
    )
    assert found.backend == "dask LocalCluster (2 workers)"
    assert found.best_cv_accuracy > 0.8


def test_bad_spaces_and_names_are_one_line_errors() -> None:
    with pytest.raises(DigitlabError, match="unknown parameter 'clf__CC' for model svm; tunable names include"):
        space_for("svm", {"clf__CC": [1]})
    with pytest.raises(DigitlabError, match="needs at least one value"):
        space_for("svm", {"clf__C": []})
    with pytest.raises(DigitlabError, match="expected NAME=V1,V2"):
        parse_overrides(["clf__C"])
    with pytest.raises(DigitlabError, match="unknown search 'grdi'"):
        tune("lr", np.zeros((30, 8, 8), np.uint8), np.arange(30) % 3, search="grdi")


def test_values_are_parsed() -> None:
    assert [parse_value(v) for v in ["10", "0.5", "none", "scale", "(128;64)"]] == [10, 0.5, None, "scale", (128, 64)]


def test_cli_tune_bad_parameter(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "tune", "--dataset", "digits", "--param", "clf__gamma2=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: unknown parameter 'clf__gamma2' for model svm")
    assert proc.stderr.count("\n") == 1
