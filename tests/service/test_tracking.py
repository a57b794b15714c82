"""MLflow tracking: a real SQLite store, read back with MlflowClient; logged models load and predict.

Each test copies a migrated database (``migrated_mlflow_db``), so no test waits for MLflow's
migrations. The model runs use the 8×8 digits (seconds); one test reads the MLflow run of the
real MNIST session run (``mnist_run`` is made with ``--mlflow``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from digitlab import service
from digitlab.data import sources
from digitlab.data.datasets import load_dataset
from digitlab.models.store import load_model
from digitlab.service import tracking
from tests.conftest import digitlab


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", tracking.ENV):
        monkeypatch.delenv(key, raising=False)


def _store(db: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(db, out / tracking.DB_FILE)
    return out


def _uri(out: Path) -> str:
    return f"sqlite:///{(out / tracking.DB_FILE).resolve()}"


@pytest.fixture(scope="module")
def tracked(migrated_mlflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """lr, mlp and cnn compared on the 8×8 digits with ``mlflow=True``, into a fresh copy of the store."""
    out = _store(migrated_mlflow_db, tmp_path_factory.mktemp("tracked") / "runs")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", tracking.ENV):
            mp.delenv(key, raising=False)
        request = service.CompareRequest(("lr", "mlp", "cnn"), service.DataRequest(dataset="digits"), out, mlflow=True)
        result = service.compare(request).to_json()
    yield {"out": out, "result": result, "client": MlflowClient(tracking_uri=_uri(out))}


def test_one_parent_run_with_parameters_tags_and_artifacts(tracked: dict[str, Any]) -> None:
    client, result = tracked["client"], tracked["result"]
    logged = result["mlflow"]
    assert logged["tracking_uri"] == _uri(tracked["out"])
    parent = client.get_run(logged["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == Path(result["run"]).name
    params = parent.data.params
    assert params["command"] == "compare" and params["dataset"] == "digits" and params["seed"] == "0"
    assert params["models"] == "lr,mlp,cnn" and params["n_train"] == str(result["n_train"])
    tags = parent.data.tags
    assert tags["dataset"] == "digits" and tags["seed"] == "0" and tags["digitlab.version"]
    assert tags["digitlab.run_folder"] == result["run"]
    assert parent.data.metrics["best_accuracy"] == pytest.approx(max(r["accuracy"] for r in result["models"]))
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"compare.json", "run.json", "figures"} <= top and "models" not in top
    figures = [a.path for a in client.list_artifacts(parent.info.run_id, "figures")]
    assert "figures/comparison.png" in figures
    copy = Path(client.download_artifacts(parent.info.run_id, "compare.json", str(tracked["out"].parent)))
    assert json.loads(copy.read_text()) == json.loads((Path(result["run"]) / "compare.json").read_text())


def test_a_child_run_per_model_with_its_test_metrics_and_parameters(tracked: dict[str, Any]) -> None:
    client, result = tracked["client"], tracked["result"]
    logged = result["mlflow"]
    children = client.search_runs(
        [logged["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{logged['run_id']}'"
    )
    assert {c.info.run_name for c in children} == {"lr", "mlp", "cnn"} == set(logged["children"])
    rows = {r["model"]: r for r in result["models"]}
    for child in children:
        name = child.info.run_name
        assert child.info.status == "FINISHED"
        assert child.data.metrics["accuracy"] == pytest.approx(rows[name]["accuracy"])
        assert child.data.metrics["macro_f1"] == pytest.approx(rows[name]["macro_f1"])
        assert child.data.params["model"] == name and child.data.params["seed"] == "0"
    cnn = next(c for c in children if c.info.run_name == "cnn")
    assert cnn.data.params["max_lr"] == "0.005" and cnn.data.params["epochs"] == "8" and cnn.data.params["views"] == "1"
    assert cnn.data.tags["digitlab.family"] == "pytorch"


def test_per_epoch_loss_and_validation_accuracy_by_step(tracked: dict[str, Any]) -> None:
    client, result = tracked["client"], tracked["result"]
    children = result["mlflow"]["children"]
    run = Path(result["run"])
    cnn, _ = load_model(run / "models" / "cnn.pt")
    loss = client.get_metric_history(children["cnn"], "loss")
    val = client.get_metric_history(children["cnn"], "val_accuracy")
    assert [m.step for m in loss] == list(range(1, len(cnn.history_) + 1))
    assert [m.value for m in loss] == pytest.approx([h["loss"] for h in cnn.history_])
    assert [m.value for m in val] == pytest.approx([h["val_accuracy"] for h in cnn.history_])
    mlp, _ = load_model(run / "models" / "mlp.skops")
    mlp_loss = client.get_metric_history(children["mlp"], "loss")
    assert [m.value for m in mlp_loss] == pytest.approx(list(mlp.steps[-1][1].loss_curve_))
    assert len(mlp_loss) == 20  # the MLP's fixed 20 epochs
    assert client.get_metric_history(children["lr"], "loss") == []  # no epochs, no series


def test_logged_models_load_and_predict_as_the_saved_ones(tracked: dict[str, Any]) -> None:
    result = tracked["result"]
    mlflow.set_tracking_uri(_uri(tracked["out"]))
    models = mlflow.search_logged_models(experiment_ids=[result["mlflow"]["experiment_id"]], output_format="list")
    by_run = {m.source_run_id: m for m in models}
    x = load_dataset("digits").x_test[:60]
    for name, child in result["mlflow"]["children"].items():
        logged = by_run[child]
        pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
        (spec,) = pyfunc.metadata.get_input_schema().inputs
        assert spec.type == np.dtype("uint8") and spec.shape == (-1, 8, 8)
        saved, _ = load_model(next((Path(result["run"]) / "models").glob(f"{name}.*")))
        out = np.asarray(pyfunc.predict(x))
        if name == "cnn":  # mlflow.pytorch: one module from uint8 images to probabilities
            assert pyfunc.metadata.flavors.keys() >= {"pytorch", "python_function"}
            np.testing.assert_allclose(out, saved.predict_proba(x), atol=1e-5)
        else:  # mlflow.sklearn: the pipeline itself
            assert "sklearn" in pyfunc.metadata.flavors
            np.testing.assert_array_equal(out, saved.predict(x))
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.model_uri))
        example = np.asarray(json.loads((local / "input_example.json").read_text()))
        assert example.shape == (2, 8, 8)  # two real test digits as the input example


def test_runs_mlflow_logs_a_finished_run_once(migrated_mlflow_db: Path, tmp_path: Path) -> None:
    out = _store(migrated_mlflow_db, tmp_path / "runs")
    trained = service.train(service.TrainRequest("lr", service.DataRequest(dataset="digits"), out))
    assert "mlflow" not in trained.data  # not asked for: nothing logged
    first = service.mlflow_log([], out).to_json()["logged"][0]
    assert first["already"] is False and set(first["children"]) == {"lr"} and first["run"] == str(trained.run)
    again = service.mlflow_log([trained.run.name], out).to_json()["logged"][0]
    assert again["already"] is True and again["run_id"] == first["run_id"]
    forced = service.mlflow_log([trained.run.name], out, again=True).to_json()["logged"][0]
    assert forced["run_id"] != first["run_id"]
    client = MlflowClient(tracking_uri=_uri(out))
    runs = client.search_runs([first["experiment_id"]])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)  # two parents, two children


def test_environment_turns_tracking_on_and_picks_the_store(
    migrated_mlflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = _store(migrated_mlflow_db, tmp_path / "elsewhere")
    monkeypatch.setenv(tracking.ENV, "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(elsewhere))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "my-digits")
    monkeypatch.chdir(tmp_path)  # a store of the user's own keeps MLflow's artefact root, ./mlruns
    out = tmp_path / "runs"
    result = service.train(service.TrainRequest("lr", service.DataRequest(dataset="digits"), out)).to_json()
    assert result["mlflow"]["tracking_uri"] == _uri(elsewhere)
    assert not (out / tracking.DB_FILE).exists()  # the default store is not used
    client = MlflowClient(tracking_uri=_uri(elsewhere))
    experiment = client.get_experiment_by_name("my-digits")
    assert experiment is not None and experiment.experiment_id == result["mlflow"]["experiment_id"]
    assert (tmp_path / "mlruns").is_dir()  # artefacts where MLflow puts them for this store, under the cwd


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_tracking_server_is_one_line_before_training(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}", "DIGITLAB_DATA": str(tmp_path)}
    proc = digitlab(
        *("train", "--model", "cnn", "--dataset", "digits", "--out", str(tmp_path / "runs"), "--mlflow"),
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MLFLOW_TRACKING_URI" in lines[0] and "nothing was trained" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "epoch" not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_corrupt_store_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    (out / tracking.DB_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(service.DigitlabError, match=r"mlflow\.db .*cannot be used") as err:
        service.train(service.TrainRequest("lr", service.DataRequest(dataset="digits"), out, mlflow=True))
    assert "\n" not in str(err.value)
    assert [p.name for p in out.iterdir()] == [tracking.DB_FILE]  # nothing trained, no run folder


def test_mlflow_is_not_imported_unless_asked_for() -> None:
    code = "import sys, digitlab.faces.cli.main; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_the_real_mnist_run_is_in_mlflow_with_the_data_checksums(mnist_run: Path, real_mnist: Path) -> None:
    client = MlflowClient(tracking_uri=_uri(mnist_run.parent))
    found = client.search_runs(
        [client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id],
        filter_string=f"tags.`digitlab.run_folder` = '{mnist_run}'",
    )
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["dataset"] == "mnist" and parent.data.params["quick"] == "True"
    for spec in sources.MNIST.files:
        assert parent.data.tags[f"checksum.{spec.name}"] == spec.sha256
    assert (parent.data.tags.get("mlflow.source.git.commit") or "x" * 40).__len__() == 40
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    names = {c.info.run_name for c in children}
    assert {"lr", "knn", "cnn", "lr-tuned"} <= names
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.html", "compare.json", "figures"}
    cnn = next(c for c in children if c.info.run_name == "cnn")
    assert len(client.get_metric_history(cnn.info.run_id, "val_accuracy")) >= 5
