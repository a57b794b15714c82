"""The service layer: run folders, model lookup, requests checked first, one Predictor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from digitlab import service
from digitlab.core.errors import DigitlabError, Interrupted
from digitlab.runs.folders import RUN_FILE, mark_latest, new_run, run_folder

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_parallel_new_run_calls_each_get_their_own_folder(tmp_path: Path) -> None:
    with ThreadPoolExecutor(12) as pool:
        runs = list(pool.map(lambda _: new_run(tmp_path, "same"), range(12)))
    assert len({r.path for r in runs}) == 12
    assert all(r.path.is_dir() for r in runs)


@pytest.mark.parametrize(
    "failure",
    [
        DigitlabError("bad input"),
        RuntimeError("a bug"),
        KeyboardInterrupt(),
        Interrupted(15),
        pytest.param("streamlit-stop", id="streamlit-stop"),
        pytest.param("streamlit-rerun", id="streamlit-rerun"),
    ],
)
def test_a_failed_run_leaves_no_folder_and_latest_unchanged(tmp_path: Path, failure: object) -> None:
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

    if failure == "streamlit-stop":
        failure = StopException()
    elif failure == "streamlit-rerun":
        failure = RerunException(None)
    with run_folder(tmp_path, "good") as good:
        (good.path / "result.json").write_text("{}")
    assert (tmp_path / "latest").resolve() == good.path
    with pytest.raises(BaseException) as caught, run_folder(tmp_path, "bad") as bad:
        (bad.path / "half.json").write_text("{")
        raise failure  # type: ignore[misc]
    assert caught.value is failure
    assert not bad.path.exists()
    assert (tmp_path / "latest").resolve() == good.path
    assert json.loads((good.path / RUN_FILE).read_text())["complete"] is True


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DigitlabError, match="is a file, not a folder"), run_folder(target, "x"):
        pass


def _train(out: Path, dataset: str, model: str = "lr") -> Path:
    result = service.train(service.TrainRequest(model, service.DataRequest(dataset=dataset), out))
    return Path(result["path"])


def test_lookup_prefers_latest_then_newest_complete_run_that_reads_the_pictures(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    big = _train(out, f"idx:{tiny_idx_dir}")  # 28×28
    small = _train(out, "digits")  # 8×8, newer and latest
    assert service.find_model("lr", out) == small  # latest first when any size will do
    assert service.find_model("lr", out, (28, 28)) == big  # the 8×8 one cannot read pictures
    assert service.Predictor.for_model("lr", out).path == big
    # a newer folder without run.json (an unfinished run) is never used
    unfinished = out / "29990101-000000-train-lr"
    shutil.copytree(big.parent.parent, unfinished)
    (unfinished / RUN_FILE).unlink()
    assert service.find_model("lr", out, (28, 28)) == big
    # with only 8×8 models the error names what was found
    shutil.rmtree(big.parent.parent)
    with pytest.raises(DigitlabError, match=r"reads 28×28 images .*reads 8×8 images"):
        service.find_model("lr", out, (28, 28))


def test_lookup_by_name_finds_saved_variants_and_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match=r"unknown model 'lrr'; choose best \(the best reader.*lr, knn, svm"):
        service.find_model("lrr", tmp_path)
    with pytest.raises(DigitlabError, match="no saved 'svm-tuned' model"):
        service.find_model("svm-tuned", tmp_path)
    with pytest.raises(DigitlabError, match="is a folder, not a model file"):
        service.find_model(str(tmp_path), tmp_path)


def test_best_is_the_shipped_reader_and_any_model_can_be_named(mnist_run: Path, private_runs: Path) -> None:
    """``predict``, Try it and ``serve`` read with ``best``: the reader digitlab ships, before any saved model."""
    from digitlab.models import shipped

    out = private_runs
    assert service.find_model("best", out, (28, 28)) == shipped.model_path() == service.find_model("reader", out)
    assert service.find_model("cnn", out, (28, 28)) == out / mnist_run.name / "models" / "cnn.pt"
    names = [p.name for p in service.run_predictors(out / mnist_run.name)[0]]
    assert names[:3] == ["reader", "cnn", "svm"]  # Try it: the shipped reader, then the run's best reader
    best = service.load_predictor("best", out, reading=True)
    assert best.name == "reader" and best.runtime == "onnx" and "shipped with digitlab" in best.why
    assert "named: cnn" in service.load_predictor("cnn", out).why
    assert service.is_model_name("reader") and not service.is_model_name("readers")


def test_best_is_the_saved_model_that_reads_real_pictures_best(
    mnist_run: Path, private_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the shipped reader (a copy made before it), ``best`` is the run's model ranked first in
    registry.READERS."""
    from digitlab.models import registry, shipped
    from digitlab.runs.folders import MODEL_INDEX

    monkeypatch.setattr(shipped, "_checked", lambda: False)
    out = private_runs
    run = out / mnist_run.name
    models = run / "models"
    index = json.loads((models / MODEL_INDEX).read_text())
    index["lr"]["accuracy"] = 0.9999  # more accurate on MNIST than any other: reading real pictures comes first
    (models / MODEL_INDEX).write_text(json.dumps(index))
    assert service.find_model("best", out, (28, 28)) == models / "cnn.pt"
    newer = out / "29990101-000000-train-lr"  # a later `digitlab train --model lr`, now the latest run
    shutil.copytree(run, newer)
    for path in (newer / "models").iterdir():
        if not path.name.startswith(("lr.", "index")):
            path.unlink()
    (out / "latest").unlink()
    (out / "latest").symlink_to(newer.name)
    assert service.find_model("best", out, (28, 28)) == models / "cnn.pt"  # the better reader, from the older run
    assert service.find_model("lr", out, (28, 28)) == newer / "models" / "lr.skops"
    shutil.rmtree(newer)
    (out / "latest").unlink()
    (out / "latest").symlink_to(run.name)
    assert [p.name for p in service.run_predictors(run)[0]][:2] == ["cnn", "svm"]  # Try it: the best reader leads
    assert service.load_predictor("best", out, "onnx").name == "cnn"
    for name in ("cnn.pt", "cnn.pt.json"):
        (models / name).unlink()
    assert service.find_model("best", out, (28, 28)) == models / "svm.skops"
    rest = [p.name for p in service.run_predictors(run)[0]]
    assert rest[0] == "svm" and rest[1] == "lr"  # then by MNIST accuracy
    with pytest.raises(DigitlabError, match=r"no saved cnn or .* model under .* reads 28×28 pictures"):
        service.load_predictor("best", out, "onnx")
    for path in models.glob("*.skops"):
        path.unlink()
    with pytest.raises(DigitlabError, match=r"no saved model under .* reads 28×28 pictures; run `digitlab run`"):
        service.find_model("best", out, (28, 28))
    assert registry.READERS[0] == json.loads((BENCHMARKS / "realworld.json").read_text())["best_reader"]


def test_the_readers_are_ranked_as_the_real_world_check_set_measured_them() -> None:
    from digitlab.models import registry

    measured = [m for m in json.loads((BENCHMARKS / "realworld.json").read_text())["models"] if not m.get("held_out")]
    ranked = [m["model"] for m in sorted(measured, key=lambda m: -m["accuracy"])]
    assert list(registry.READERS) == ranked
    assert registry.reader_rank("svm-tuned") == registry.READERS.index("svm")
    assert registry.reader_rank("cnn-hands-personal") == 0 and registry.reader_rank("lr") == len(registry.READERS)


def test_predictor_reads_files_bytes_and_arrays_and_reports_bad_ones(tiny_idx_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from digitlab.data.datasets import load_dataset

    out = tmp_path / "runs"
    _train(out, f"idx:{tiny_idx_dir}")
    predictor = service.Predictor.for_model("lr", out)
    ds = load_dataset(f"idx:{tiny_idx_dir}")
    digit = ds.x_test[0]
    png = tmp_path / "digit.png"
    Image.fromarray(digit).save(png)
    blank = np.zeros((40, 40), np.uint8)
    rows = predictor.predict([png, png.read_bytes(), digit, blank, tmp_path, tmp_path / "missing.png"])
    assert [r.status for r in rows[:3]] != ["error"] * 3
    assert rows[0].label == rows[1].label == rows[2].label
    assert rows[0].status in ("ok", "uncertain") and len(rows[0].top3) == 3
    assert rows[3].status == "blank"
    assert rows[4].status == "error" and "folder" in (rows[4].error or "")
    assert rows[5].status == "error" and "no such file" in (rows[5].error or "")
    assert rows[0].to_json()["top3"][0]["label"] == rows[0].label


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (service.TrainRequest("lr", service.DataRequest(seed=-1)), "--seed -1"),
        (service.TrainRequest("lr", service.DataRequest(seed=2**32)), "--seed 4294967296"),
        (service.TrainRequest("svn"), "unknown model 'svn'"),
        (service.CompareRequest(("lr", "lr")), "listed twice"),
        (service.TuneRequest(n_iter=0), "--n-iter 0"),
        (service.TuneRequest(n_jobs=0), "--n-jobs 0"),
        (service.TuneRequest(dask_local=0), "--dask-local 0"),
        (service.TuneRequest(params=("clf__C=abc",)), "clf__C=abc"),
        (service.TuneRequest(search="gird"), "unknown search 'gird'"),
        (service.AugmentRequest(("elastc",)), "unknown augmentation library 'elastc'"),
        (service.AugmentRequest(factor=0), "--factor 0"),
        (service.EnsembleRequest(("lr", "svm"), "nan,1"), "finite"),
        (service.EnsembleRequest(("lr", "svm"), "inf,1"), "finite"),
        (service.EnsembleRequest(("lr", "svm"), "0,0"), "not all zero"),
        (service.EnsembleRequest(("lr", "svm"), "1,2,3"), "one per model"),
        (service.DashboardRequest(port=0, out=Path(".")), "--port 0"),
        (service.DashboardRequest(out=Path("/no/where")), "/no/where"),
        (service.RunRequest(tune="svn"), "unknown model 'svn'"),
    ],
)
def test_requests_are_checked_before_any_work(request_: object, message: str) -> None:
    with pytest.raises(DigitlabError, match=message.replace("(", r"\(").replace("[", r"\[")):
        request_.check()  # type: ignore[attr-defined]


def test_progress_events_reach_the_callback(tmp_path: Path) -> None:
    events: list[service.Event] = []
    service.compare(
        service.CompareRequest(("lr", "knn"), service.DataRequest(dataset="digits"), tmp_path), events.append
    )
    job = [e for e in events if e.level == service.JOB]
    assert [e.step for e in job] == ["train lr", "train knn", "done"]
    assert [(e.done, e.total) for e in job] == [(0, 2), (1, 2), (2, 2)]
    assert any(e.level == service.INNER and "fitting lr" in e.message for e in events)


def test_without_torch_run_refuses_cnn_before_training(tmp_path: Path) -> None:
    """A torch that cannot be imported (as when it is not installed): one line, nothing trained or saved."""
    shim = tmp_path / "no-torch" / "torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "run", "--dataset", "digits", "--models", "lr,knn,cnn"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: model cnn needs PyTorch"), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_mark_latest_replaces_the_link(tmp_path: Path) -> None:
    first, second = new_run(tmp_path, "a"), new_run(tmp_path, "b")
    mark_latest(first)
    mark_latest(second)
    assert (tmp_path / "latest").resolve() == second.path


def test_the_api_is_small_and_the_faces_use_only_it_or_a_service_module() -> None:
    import re

    from digitlab.service import _EARLIER, _MODULES, _NAMESPACES

    assert len(service.__all__) <= 35
    for name in service.__all__:  # every documented name resolves
        assert getattr(service, name) is not None, name
    faces = Path(service.__file__).parents[1] / "faces"
    used = {m for p in faces.rglob("*.py") for m in re.findall(r"\bservice\.([A-Za-z_]\w*)", p.read_text())}
    assert used <= set(service.__all__) | set(_NAMESPACES) | set(_MODULES), used - set(service.__all__)
    for name in _EARLIER:  # the names of earlier versions still resolve, to the same objects
        assert getattr(service, name) is not None, name
    assert service.run_history is service.runs.run_history and service.QUICK_TRAIN == service.settings.QUICK_TRAIN
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = service.nope
