"""Defects found by reading the code end to end; each test failed before its fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitlab import service
from digitlab.data.datasets import load_dataset
from digitlab.runs.folders import run_folder
from digitlab.service import augmenting

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("k", range(len(_python_blocks())))
def test_readme_python_blocks_run(k: int, tmp_path: Path, mnist_cache: Path) -> None:
    code = _python_blocks()[k]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "DIGITLAB_DATA": str(mnist_cache)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"README block {k} failed:\n{code}\n{proc.stderr[-3000:]}"


def test_readme_has_python_blocks() -> None:
    assert len(_python_blocks()) >= 2


def test_readme_model_table_matches_the_benchmark_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "readme_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_evaluate_robustness_is_saved_and_reported(tmp_path: Path) -> None:
    from digitlab.analysis import report

    data = service.DataRequest(dataset="digits")
    service.train(service.TrainRequest("lr", data, tmp_path))
    result = service.evaluate(service.EvaluateRequest("lr", data, tmp_path, robustness=True))
    saved = Path(result.run or "") / "evaluate-lr.json"
    import json

    scores = json.loads(saved.read_text())["robustness"]
    assert set(scores["accuracy"]) >= {"clean", "rotated +15°", "noise (σ=40)"}
    html = Path(report.build(result.run or "")["path"]).read_text()
    assert "Robustness: accuracy on transformed copies" in html and "rotated +15°" in html


def test_metadata_of_a_tuned_scratch_model_names_its_family() -> None:
    from digitlab.models import registry
    from digitlab.training.train import Trained, model_metadata

    ds = load_dataset("digits")
    model = registry.get("scratch-mlp").build(0)
    trained = Trained(
        "scratch-mlp-tuned", model, 1.0, 0.1, np.zeros(1), np.zeros((1, 10)), {"accuracy": 1.0, "macro_f1": 1.0}
    )
    meta = model_metadata(trained, ds, 0)
    assert meta["family"] == "numpy (from scratch)"
    assert meta["description"] == registry.get("scratch-mlp").description
    assert registry.base_name("cnn-aug-tuned") == "cnn-aug"
    assert registry.base_name("mlp-opencv") == "mlp"


def test_augment_reports_a_test_split_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag is computed from hashes, not written as True: a step that touches the test split is caught."""
    import digitlab.features.augment.robustness as robustness_module

    ds = load_dataset("digits")
    real = robustness_module.robustness

    def touching(model: object, x_test: np.ndarray, y_test: np.ndarray) -> dict:
        x_test[0, 0, 0] += 1  # a bug that writes into the test images
        return real(model, x_test, y_test)

    with run_folder(tmp_path, "augment") as run:
        clean = augmenting.augment_into(ds, "elastic", "lr", run)
        assert clean["test_untouched"] is True
        monkeypatch.setattr(robustness_module, "robustness", touching)
        dirty = augmenting.augment_into(ds, "elastic", "lr", run)
    assert dirty["test_untouched"] is False


def test_cnn_random_state_none_draws_fresh_randomness() -> None:
    from digitlab.models.cnn import CNNClassifier

    ds = load_dataset("digits")
    x, y = ds.x_train[:200], ds.y_train[:200]

    def weights(random_state: int | None) -> np.ndarray:
        model = CNNClassifier(epochs=1, validation_fraction=0.0, random_state=random_state, verbose=False).fit(x, y)
        return next(model.network_.parameters()).detach().numpy().copy()

    assert np.array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(None), weights(None))
