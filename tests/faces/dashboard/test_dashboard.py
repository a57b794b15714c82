"""The Streamlit dashboard, page by page, with Streamlit's own AppTest on a real run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from digitlab import service
from digitlab.data.datasets import load_dataset
from digitlab.faces.dashboard import APP, PAGES, common

TIMEOUT = 120  # seconds for one script run (model loading on a busy CI machine)


@pytest.fixture
def on_run(mnist_run: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(common.RUN_ENV, str(mnist_run))
    monkeypatch.setenv(common.RUNS_ENV, str(mnist_run.parent))
    return mnist_run


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_data_page_shows_counts_files_and_figures(on_run: Path) -> None:
    at = page("data")
    assert at.title[0].value == "Data"
    assert [m.value for m in at.metric] == ["mnist", "6,000", "1,000", "28 × 28"]
    counts, files = at.dataframe[0].value, at.dataframe[1].value
    assert counts["train"].sum() == 6000 and counts["test"].sum() == 1000
    data = json.loads((on_run / "data.json").read_text())
    assert list(files["SHA-256"]) == [f["sha256"] for f in data["files"].values()]
    assert len(at.get("image")) == 5  # ten examples, 10 per class, histogram, mean images, pixel histogram


def test_preprocess_page_shows_statistics_and_the_normalised_sample(on_run: Path) -> None:
    at = page("preprocess")
    stats = at.dataframe[1].value
    assert list(stats["pixels"]) == ["raw", "scaled", "standardised"]
    sample = at.dataframe[2].value
    assert sample.shape == (28, 28) and sample.to_numpy().min() >= 0.0 and sample.to_numpy().max() <= 1.0
    assert len(at.get("image")) == 3


def test_models_page_compares_and_lists_aspects(on_run: Path) -> None:
    at = page("models")
    table, aspects = at.dataframe[0].value, at.dataframe[1].value
    compare = json.loads((on_run / "compare.json").read_text())
    best = max(compare["models"], key=lambda m: m["accuracy"])
    assert table["model"].iloc[0] == best["model"]  # sorted by accuracy
    assert table["test accuracy"].iloc[0] == pytest.approx(best["accuracy"] * 100)
    assert set(aspects["model"]) == {"lr", "knn", "svm", "mlp", "cnn"} and aspects["pros"].str.len().min() > 10


def test_evaluation_page_model_picker_switches_the_model(on_run: Path) -> None:
    at = page("evaluation")
    picker = at.selectbox(key="eval_model")
    assert set(picker.options) == {"lr", "knn", "svm", "mlp", "cnn", "lr-tuned"}
    picker.select("knn").run()
    assert not at.exception
    knn = json.loads((on_run / "evaluate-knn.json").read_text())
    assert at.metric[0].value == f"{knn['accuracy']:.2%}"
    report = at.dataframe[0].value
    assert list(report["label"][:10]) == [str(d) for d in range(10)]
    assert len(at.get("image")) == 2  # true/predicted grid, misclassified gallery
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # the clickable confusion matrix, F1 per class
    assert list(charts[0].proto.selection_mode) == ["cell"]  # a click on a cell reruns the page with it


def test_models_page_charts_are_interactive_vega_lite(on_run: Path) -> None:
    at = page("models")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # the comparison and the training curves
    assert all('"tooltip"' in c.proto.spec for c in charts)  # hover values
    comparison = b"".join(d.data.data for d in charts[0].proto.datasets)
    assert all(name.encode() in comparison for name in ("lr", "knn", "svm", "mlp", "cnn"))
    curves = b"".join(d.data.data for d in charts[1].proto.datasets)
    assert b"val_accuracy" in curves and b"loss" in curves  # the cnn's epochs and the MLP's losses


def test_map_page_shows_the_map_with_thumbnails(mapped_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.RUN_ENV, str(mapped_run))
    monkeypatch.setenv(common.RUNS_ENV, str(mapped_run.parent))
    at = page("map")
    assert "cnn-umap" in at.selectbox(key="map_name").options
    chart = at.get("vega_lite_chart")[0]
    assert '"image"' in chart.proto.spec  # the hover thumbnail
    assert any("1,000 digits (test)" in c.value for c in at.caption)


def test_tuning_and_augmentation_pages_show_their_results(on_run: Path) -> None:
    tune = json.loads((on_run / "tune.json").read_text())
    at = page("tuning")
    assert [m.value for m in at.metric] == [
        "lr",
        f"{tune['best_cv_accuracy']:.2%}",
        f"{tune['test']['accuracy']:.2%}",
    ]
    assert len(at.dataframe[0].value) == len(tune["candidates"])
    at = page("augmentation")
    rows = at.dataframe[0].value
    assert list(rows["library"]) == ["opencv"] and list(rows["model"]) == ["lr"]
    assert len(at.get("image")) == 1


def test_try_it_page_loads_every_saved_model_and_asks_for_a_digit(on_run: Path) -> None:
    at = page("try_it")
    assert at.tabs[0].label == "Draw" and at.tabs[1].label == "Upload"
    messages = [i.value for i in at.info]
    assert any("canvas is empty" in m for m in messages) and any("Upload a photo" in m for m in messages)
    predictors, problems = common.load_predictors(str(on_run), (0.0,))
    assert problems == []
    assert {p.name for p in predictors} == {"reader", "lr", "knn", "svm", "mlp", "cnn", "lr-tuned", "lr-opencv"}


def test_try_it_without_any_run_reads_with_the_shipped_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.RUN_ENV, raising=False)
    monkeypatch.setenv(common.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGES / "try_it.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("the reader shipped with digitlab reads your digit" in i.value for i in at.info)
    assert at.tabs[0].label == "Draw" and "No saved run" in at.warning[0].value  # training stays one step away
    predictors, problems = common.load_predictors("", ())
    assert [p.name for p in predictors] == ["reader"] and problems == []
    assert not (tmp_path / "runs").exists()


def test_app_starts_on_the_data_page_and_switches_pages(on_run: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and at.title[0].value == "Data"
    for name, title in [("tuning", "Tuning"), ("try_it", "Try it"), ("read_number", "Read a number")]:
        at.switch_page(str(PAGES / f"{name}.py")).run()
        assert not at.exception and at.title[0].value == title


def test_every_model_reads_real_test_digits(mnist_run: Path, real_mnist: Path) -> None:
    predictors, _ = common.load_predictors(str(mnist_run), (1.0,))
    assert [p.name for p in predictors[:2]] == ["reader", "cnn"]  # the shipped reader, then the run's best reader
    ds = load_dataset("mnist")
    hits = {p.name: 0 for p in predictors}
    for image, label in zip(ds.x_test[:50], ds.y_test[:50], strict=True):
        for row in service.predict_each(predictors, image):
            hits[row.model] += row.label == str(label)
            assert sum(row.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert min(hits.values()) >= 42, hits


def test_ensemble_member_files_are_not_listed_twice(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ["ensemble-0-cnn.pt", "ensemble-1-svm.skops", "svm.skops", "cnn.pt.json"]:
        (models / name).write_bytes(b"")
    (models / "ensemble.ensemble.json").write_text(json.dumps({"files": ["ensemble-0-cnn.pt", "ensemble-1-svm.skops"]}))
    assert [m.path.name for m in service.run_models(tmp_path)] == ["ensemble.ensemble.json", "svm.skops"]


def test_without_a_run_it_offers_training_then_shows_the_new_run(
    real_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(common.RUN_ENV, raising=False)
    monkeypatch.setenv(common.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGES / "data.py"), default_timeout=600)
    at.run()
    assert not at.exception
    assert "No saved run" in at.warning[0].value and not (tmp_path / "runs").exists()  # nothing trained at start
    assert at.radio[0].value == "quick"
    at.multiselect[0].set_value([])
    at.button[0].click().run()
    assert at.error[0].value == "Pick at least one model to train."
    at.multiselect[0].set_value(["lr"])
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    latest = tmp_path / "runs" / "latest"
    assert (latest / "models" / "lr.skops").is_file() and (latest / "report.html").is_file()
    assert [m.value for m in at.metric][:3] == ["mnist", "6,000", "1,000"]  # the page now shows the new run


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-run"], "error: run folder not found: 'no-such-run'"),
        (["--port", "70000"], "error: --port 70000: choose a port between 1 and 65535."),
    ],
)
def test_dashboard_command_errors_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "dashboard", *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and proc.stderr.strip().startswith(expected), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_run_on_the_8x8_digits_shows_its_data_and_says_why_it_cannot_read_drawings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "run", "--quick", "--dataset", "digits", "--models", "lr", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    monkeypatch.setenv(common.RUN_ENV, json.loads(proc.stdout)["run"])
    at = page("data")
    assert [m.value for m in at.metric] == ["digits", "1,347", "450", "8 × 8"]
    assert list(at.dataframe[1].value["SHA-256"]) == ["—"]  # from a library: no file, no checksum
    at = AppTest.from_file(str(PAGES / "try_it.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "trained on 8×8 images" in at.warning[0].value  # the run's models cannot read drawings: it says why
    assert not at.error  # and the reader digitlab ships reads them instead


def test_your_digits_page_counts_measures_deletes_and_personalises(
    mnist_run: Path, private_runs: Path, real_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digitlab.data.strokes import writer_digits
    from digitlab.data.your_digits import DigitStore

    runs = private_runs  # a copy: personalising adds a run folder
    monkeypatch.setenv(common.RUN_ENV, str(runs / mnist_run.name))
    monkeypatch.setenv(common.RUNS_ENV, str(runs))
    x, y, png = writer_digits("continental", 2, seed=1)
    ids = [a.id for a in DigitStore().add_many([(x[k], png[k], int(y[k])) for k in range(20)], "me", "canvas")]
    at = page("your_digits")
    assert at.title[0].value == "Your digits"
    assert any("**me** has **20** digits saved" in m.value for m in at.markdown)
    scores = at.dataframe[0].value
    assert set(scores["model"]) == {"reader", "lr", "knn", "svm", "mlp", "cnn", "lr-tuned", "lr-opencv"}
    assert scores["accuracy"].between(0, 1).all() and list(scores["accuracy"]) == sorted(
        scores["accuracy"], reverse=True
    )
    confusion = at.dataframe[1].value
    assert confusion.drop(columns="wrote").to_numpy().sum() == 20

    at.button(key=f"rm_{ids[0]}").click().run()
    assert not at.exception
    assert any("**me** has **19** digits saved" in m.value for m in at.markdown)
    assert any("Draw 0 next" in i.value for i in at.info)  # the digit with fewest now

    at.button(key="label_4").click().run()  # a label with nothing drawn: nothing saved
    assert any("Draw a digit on the canvas" in w.value for w in at.warning)
    assert sum(DigitStore().counts().values()) == 19

    at.button(key="personalise").click().run(timeout=600)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Saved cnn-personal" in s.value for s in at.success)
    assert [m.name for m in service.personal_models(runs)] == ["cnn-personal"]
    at = page("your_digits")  # now measured too
    assert "cnn-personal" in set(at.dataframe[0].value["model"])
