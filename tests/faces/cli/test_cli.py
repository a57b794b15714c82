"""The command line as a user meets it: real processes, real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import digitlab


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "info", "--dataset", "mnst"], "error: unknown dataset 'mnst'; choose one of mnist"),
        (["data", "fetch", "--data-dir", "/no/such/folder"], "error: --data-dir /no/such/folder: no such folder"),
        (["explore", "--dataset", "idx:/no/such/folder"], "error: dataset idx:/no/such/folder: no such folder"),
        (["train", "--dataset", "digits", "--bogus"], "error: No such option: --bogus"),
        (["compare", "--dataset", "digits", "--models", "lr,svn"], "error: unknown model 'svn'"),
        (["train", "--seed", "abc"], "error: Invalid value for '--seed'"),
        (["evaluate", "--model", "nothing.skops", "--dataset", "digits"], "error: nothing.skops: no such model file"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = digitlab(*args, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.startswith(expected), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_explore_json_is_one_object_and_latest_points_at_the_run(tmp_path: Path) -> None:
    proc = digitlab("explore", "--dataset", "digits", "--json", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["splits"]["train"]["x_shape"] == [1347, 8, 8]
    latest = tmp_path / "out" / "latest"
    assert latest.resolve() == Path(result["run"]).resolve()
    assert (latest / "explore.json").is_file() and (latest / "figures" / "examples.png").is_file()


def test_preprocess_prints_a_table(tiny_idx_dir: Path, tmp_path: Path) -> None:
    proc = digitlab("preprocess", "--dataset", f"idx:{tiny_idx_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pixel values before and after" in proc.stdout and "standardised" in proc.stdout


def test_models_lists_the_registry(tmp_path: Path) -> None:
    proc = digitlab("models", "--json", cwd=tmp_path)
    names = [m["name"] for m in json.loads(proc.stdout)["models"]]
    assert names[:8] == ["lr", "knn", "svm", "mlp", "cnn", "cnn-aug", "cnn-hands", "ensemble"]
    assert {"scratch-lr", "scratch-knn", "scratch-svm", "scratch-mlp", "scratch-cnn"} <= set(names)
    assert {"cnn-fast", "cnn-classic"} <= set(names)
    shipped = json.loads(proc.stdout)["shipped"]  # the default reader, what it is and how it measured
    assert shipped["name"] == "reader" and shipped["recipe"] == "cnn-hands" and "make_reader.py" in shipped["command"]
    table = digitlab("models", cwd=tmp_path).stdout
    assert "default reader: reader, shipped with digitlab" in " ".join(table.split())


def test_train_then_evaluate_by_name(tmp_path: Path) -> None:
    proc = digitlab("train", "--model", "knn", "--dataset", "digits", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    trained = json.loads(proc.stdout)
    assert trained["accuracy"] > 0.95 and Path(trained["path"]).is_file()
    # train leaves the evaluation of what it trained (the dashboard and the report of a one-model run show it)
    own = json.loads((Path(trained["run"]) / "evaluate-knn.json").read_text())
    assert own["accuracy"] == trained["accuracy"] and len(own["confusion_matrix"]) == 10
    assert (Path(trained["run"]) / own["figures"]["confusion_matrix"]).is_file()
    proc = digitlab("evaluate", "--model", "knn", "--dataset", "digits", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(proc.stdout)
    assert evaluated["accuracy"] == trained["accuracy"]
    assert Path(evaluated["run"], evaluated["figures"]["confusion_matrix"]).is_file()


def test_run_quick_on_digits_end_to_end(tmp_path: Path) -> None:
    proc = digitlab("run", "--quick", "--dataset", "digits", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["model"] for r in result["compare"]["models"]] == ["lr", "knn", "svm", "mlp", "cnn"]
    run = Path(result["run"])
    for name in ["metrics.json", "explore.json", "preprocess.json", "compare.json", "evaluate-svm.json"]:
        assert (run / name).is_file(), name
    assert "[" in proc.stderr  # progress lines on stderr, not on stdout
    report = (run / "report.html").read_text()  # a dataset from a library, not files, reports too
    assert "sklearn.datasets.load_digits" in report and "bundled with scikit-learn" in report


@pytest.mark.slow
def test_the_five_models_on_real_mnist_and_the_same_seed_gives_the_same_metrics(
    mnist_run: Path, real_mnist: Path, tmp_path: Path
) -> None:
    result = json.loads((mnist_run / "compare.json").read_text())  # `run --quick` of the five default models
    assert (result["n_train"], result["n_test"]) == (6000, 1000)
    accuracy = {row["model"]: row["accuracy"] for row in result["models"]}
    assert set(accuracy) == {"lr", "knn", "svm", "mlp", "cnn"}
    assert min(accuracy.values()) > 0.85 and accuracy["svm"] > 0.95 and accuracy["cnn"] > 0.96
    assert (mnist_run / "models" / "cnn.pt").is_file() and (mnist_run / "models" / "cnn.pt.json").is_file()
    again = json.loads(digitlab("compare", "--quick", "--json", "--models", "svm", cwd=tmp_path).stdout)
    assert again["models"][0]["accuracy"] == accuracy["svm"]


def test_ensemble_of_saved_models(tmp_path: Path) -> None:
    for name in ("lr", "knn"):
        assert digitlab("train", "--model", name, "--dataset", "digits", cwd=tmp_path).returncode == 0
    proc = digitlab("ensemble", "--models", "lr,knn", "--weights", "1,2", "--dataset", "digits", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [m["model"] for m in result["members"]] == ["lr", "knn"]
    assert result["weights"] == pytest.approx([1 / 3, 2 / 3])
    assert result["accuracy"] >= min(m["accuracy"] for m in result["members"])
    assert Path(result["model_path"]).name == "ensemble.ensemble.json"
    bad = digitlab("ensemble", "--models", "lr,knn", "--weights", "1,x", "--dataset", "digits", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --weights '1,x'")


@pytest.mark.parametrize("library", ["albumentations", "opencv", "keras", "elastic"])
def test_augment_quick_runs_end_to_end_for_every_backend(library: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    proc = digitlab(
        "augment",
        "--library",
        library,
        "--model",
        "mlp",
        "--quick",
        "--dataset",
        f"idx:{tiny_idx_dir}",
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["results"][0]
    assert result["library"] == library and result["mode"] == "fresh copy each epoch"
    assert 0 <= result["with"]["accuracy"] <= 1 and result["test_untouched"]
    assert Path(json.loads(proc.stdout)["run"], result["figures"]["preview"]).is_file()


def test_evaluate_robustness(tmp_path: Path) -> None:
    assert digitlab("train", "--model", "lr", "--dataset", "digits", cwd=tmp_path).returncode == 0
    proc = digitlab("evaluate", "--model", "lr", "--dataset", "digits", "--robustness", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)["robustness"]["accuracy"]
    assert "rotated +15°" in scores and scores["clean"] > 0.9
