"""The reading cache: `digitlab predict` keeps an ONNX copy of a cnn once, then reads with onnxruntime alone
(no PyTorch in the process), with the same answers; a changed model is a new entry, a damaged entry is made
again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.data.datasets import load_dataset
from digitlab.service import exporting
from tests.conftest import digitlab

NO_TORCH = (
    "import json, sys; from digitlab.faces.cli.main import main; rc = main(sys.argv[1:]); "
    "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}), file=sys.stderr)"
)


def _pictures(mnist_cache: Path, folder: Path) -> list[str]:
    ds = load_dataset("mnist", cache_dir=mnist_cache)
    folder.mkdir()
    files = []
    for k in range(6):
        Image.fromarray(255 - ds.x_test[k]).save(folder / f"{k}-{ds.y_test[k]}.png")  # dark ink on white paper
        files.append(str(folder / f"{k}-{ds.y_test[k]}.png"))
    return files


def test_the_second_predict_reads_the_cnn_without_pytorch(mnist_run: Path, mnist_cache: Path, tmp_path: Path) -> None:
    files = _pictures(mnist_cache, tmp_path / "pictures")
    cache = tmp_path / "cache"
    env = {"DIGITLAB_DATA": str(cache)}
    args = ["predict", *files, "--model", "cnn", "--out", str(mnist_run.parent), "--json"]
    first = digitlab(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "keeping an ONNX copy of cnn in the reading cache" in first.stderr
    (entry,) = (cache / "readers").glob("cnn-*.onnx")
    second = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env},
        timeout=300,
        check=False,
    )
    facts = json.loads(second.stderr.strip().splitlines()[-1])
    assert facts == {"rc": 0, "torch": False}, second.stderr
    assert "keeping an ONNX copy" not in second.stderr
    a, b = json.loads(first.stdout)["predictions"], json.loads(second.stdout)["predictions"]
    assert [p["label"] for p in a] == [p["label"] for p in b] == [f.split("-")[-1][0] for f in files]
    assert np.allclose([p["confidence"] for p in a], [p["confidence"] for p in b], atol=1e-4)
    assert entry.stat().st_size > 10_000


def test_a_changed_model_is_a_new_entry_and_a_damaged_one_is_made_again(
    mnist_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("cnn.pt", "cnn.pt.json"):
        shutil.copy(mnist_run / "models" / name, folder / name)
    model = folder / "cnn.pt"
    predictor = exporting.Predictor(model, reading=True)
    assert exporting.cached_reader(model) is None and exporting.should_remember(predictor)
    entry = exporting.remember_reader(predictor)
    assert entry is not None and entry == exporting.reader_cache(model)
    cached = exporting.cached_reader(model)
    assert cached is not None and cached.runtime == "onnx" and cached.name == "cnn"
    assert not exporting.should_remember(cached)
    images = np.zeros((2, 28, 28), np.uint8)
    images[1, 6:22, 12:16] = 255
    assert np.abs(cached.probabilities(images) - predictor.probabilities(images)).max() < 1e-4
    config = json.loads((folder / "cnn.pt.json").read_text())
    config["metadata"]["description"] = "changed"
    (folder / "cnn.pt.json").write_text(json.dumps(config))
    assert exporting.reader_cache(model) != entry and exporting.cached_reader(model) is None
    entry.write_bytes(b"not an onnx model")  # the entry of the unchanged model (the run's own cnn.pt), damaged
    assert exporting.reader_cache(mnist_run / "models" / "cnn.pt") == entry
    assert exporting.cached_reader(mnist_run / "models" / "cnn.pt") is None  # dropped, to be made again
    assert not entry.exists()


def test_runtime_auto_reads_the_shipped_reader_with_its_onnx_copy_and_torch_runs_it_as_saved() -> None:
    """`serve`, `predict` and batch scoring default to ``auto``: the shipped reader answers from the ONNX file it
    ships with (no export, no PyTorch); ``--runtime torch`` still runs the saved network; both say the same."""
    from digitlab.service.serving import ServeRequest, load_served

    auto = exporting.load_predictor("reader", Path("runs-that-do-not-exist"))
    torch = exporting.load_predictor("reader", Path("runs-that-do-not-exist"), "torch")
    assert auto.runtime == "onnx" and type(auto.model).__name__ == "OnnxClassifier"
    assert torch.runtime == "torch" and type(torch.model).__name__ != "OnnxClassifier"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(16, 28, 28)).astype(np.uint8)
    assert np.allclose(auto.probabilities(images), torch.probabilities(images), atol=1e-4)
    (served,) = load_served(ServeRequest(models=("best",), out=Path("runs-that-do-not-exist")))
    assert served.runtime == "onnx" and served.platform == "onnxruntime_onnx"
    with pytest.raises(exporting.DigitlabError, match="--runtime 'fast'"):
        exporting.load_predictor("reader", Path("runs"), "fast")
