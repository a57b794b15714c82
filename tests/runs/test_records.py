"""Run records: every file a real run leaves reads back as its typed record and writes out unchanged; the one
reader (``Run.open``) finds every step, orders evaluations, and names what it could not read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from digitlab.core.errors import DigitlabError
from digitlab.runs.reader import Run
from digitlab.runs.records import RECORDS, Compare, Evaluation, Record, record_for


def _docs(run: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(run.glob("*.json")) if p.name != "run.json"}


def test_every_file_of_a_real_run_round_trips_through_its_record(mapped_run: Path) -> None:
    docs = _docs(mapped_run)
    kinds = {name: record_for(name) for name in docs}
    assert None not in kinds.values(), [n for n, k in kinds.items() if k is None]
    assert {"compare.json", "tune.json", "metrics.json", "augment-opencv.json", "look.json"} <= set(docs)
    assert any(n.startswith("map-") for n in docs)
    for name, doc in docs.items():
        record = kinds[name].of(doc, name)  # type: ignore[union-attr]
        assert record.to_json() == doc, name
        assert type(record).of(json.loads(json.dumps(record.to_json()))) == record


def test_the_reader_finds_every_step_of_a_real_run(mapped_run: Path) -> None:
    run = Run.open(mapped_run)
    compare = run.compare
    assert isinstance(compare, Compare) and compare.names == ["lr", "knn", "svm", "mlp", "cnn"]
    assert compare.best in compare.names and all(0.8 < row.accuracy <= 1 for row in compare.models)
    evaluations = run.evaluations
    assert list(evaluations)[:5] == compare.names  # compare's order first, then the others by name
    assert "lr-tuned" in evaluations and all(isinstance(e, Evaluation) for e in evaluations.values())
    assert run.tune is not None and run.tune.model == "lr" and run.tune.saved_as == "lr-tuned"
    assert list(run.augmentations) == ["opencv"] and run.augmentations["opencv"].with_["accuracy"] > 0.8
    assert run.data is not None and run.data.dataset == "mnist" and run.settings["quick"] is True
    assert run.maps and run.look is not None and run.explore is not None and run.preprocess is not None
    assert run.figure(compare.figure) is not None and run.figure("figures/none.png") is None
    assert run.problems == [] and run.complete and run.name == mapped_run.resolve().name


def test_an_unreadable_file_is_named_and_the_rest_still_read(mnist_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / mnist_run.name
    shutil.copytree(mnist_run, copy, ignore=shutil.ignore_patterns("mlflow*", "models"))
    (copy / "evaluate-knn.json").write_text("{ not json")
    (copy / "tune.json").write_text(json.dumps({"model": "lr", "best_cv_accuracy": "high"}))
    run = Run.open(copy)
    assert "knn" not in run.evaluations and "lr" in run.evaluations
    assert run.tune is None
    assert run.unreadable == ["evaluate-knn.json", "tune.json"]
    assert "evaluate-knn.json: not readable JSON" in run.problems[0]
    assert "tune.json: field 'best_cv_accuracy'" in run.problems[1]
    with pytest.raises(DigitlabError, match=r"evaluate-knn.json: not readable JSON .*re-run the step"):
        _ = Run.open(copy, strict=True).evaluations


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    (tmp_path / "evaluate-a.json").write_text(json.dumps({"accuracy": 0.5}))
    assert Run.open(tmp_path).evaluations["a"].accuracy == 0.5
    (tmp_path / "evaluate-a.json").write_text(json.dumps({"accuracy": 0.75, "n_test": 4}))
    assert Run.open(tmp_path).evaluations["a"].accuracy == 0.75


def test_records_keep_keys_they_do_not_name_and_are_frozen() -> None:
    doc = {"accuracy": 0.9, "something_new": {"a": [1, 2]}, "report": {"0": {"precision": 1.0}}}
    record = Evaluation.of(doc)
    assert record.to_json() == doc and record.get("something_new") == {"a": [1, 2]}
    assert record.per_class == [{"precision": 1.0, "label": "0"}]
    with pytest.raises(Exception, match="frozen"):
        record.accuracy = 1.0  # type: ignore[misc]
    with pytest.raises(DigitlabError, match=r"evaluate-x.json: field 'accuracy'"):
        Evaluation.of({"n_test": 3}, "evaluate-x.json")


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match=r"no such run folder; `digitlab runs` lists"):
        Run.open(tmp_path / "nowhere")


def test_every_record_names_a_file() -> None:
    assert all(kind.FILE for kind in RECORDS) and len({kind.FILE for kind in RECORDS}) == len(RECORDS)
    without_file = {kind.__name__ for kind in Record.__subclasses__() if not kind.FILE}
    assert without_file == {"ModelRow", "Report", "Exported", "Scored", "Explained", "MlflowLogged", "Outcome"}
    assert record_for("augment-compare.json").__name__ == "AugmentCompare"  # type: ignore[union-attr]
    assert record_for("augment-keras.json").__name__ == "Augmentation"  # type: ignore[union-attr]
    assert record_for("report.html") is None and record_for("run.json") is None
