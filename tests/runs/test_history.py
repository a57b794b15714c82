"""Run history: `digitlab runs` (list, show, diff, rm, prune) and the dashboard's History page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from digitlab import service
from digitlab.faces.dashboard import PAGES, common
from tests.conftest import digitlab


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeded compare runs on the 8×8 digits (the second is latest)."""
    root = tmp_path_factory.mktemp("history")
    for _ in range(2):
        request = service.CompareRequest(("lr", "knn"), service.DataRequest(dataset="digits", seed=0), root / "runs")
        service.compare(request)
    return root


@pytest.fixture
def runs(two_runs: Path, tmp_path: Path) -> Path:
    shutil.copytree(two_runs, tmp_path / "w", symlinks=True)
    return tmp_path / "w" / "runs"


def test_runs_lists_complete_incomplete_and_corrupt_runs(runs: Path) -> None:
    incomplete = runs / "20990101-000000-train-lr"  # no run.json, not latest: a run that never finished
    shutil.copytree(sorted(runs.glob("*-compare"))[0], incomplete)
    (incomplete / "run.json").unlink()
    corrupt = runs / "20000101-000000-compare"
    corrupt.mkdir()
    (corrupt / "compare.json").write_text("{")
    proc = digitlab("runs", "--json", cwd=runs.parent)
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)["runs"]}
    assert next(iter(rows)) == incomplete.name  # newest first
    assert rows[incomplete.name]["complete"] is False
    assert rows[corrupt.name]["problem"] == "unreadable compare.json" and rows[corrupt.name]["complete"] is False
    good = [r for r in rows.values() if r["complete"]]
    assert len(good) == 2 and all(r["dataset"] == "digits" and r["seed"] == 0 for r in good)
    assert all(set(r["models"]) == {"lr", "knn"} and r["seconds"] is not None for r in good)
    assert sum(r["latest"] for r in rows.values()) == 1
    shutil.rmtree(incomplete)  # a deleted folder disappears from the list
    proc = digitlab("runs", "--json", cwd=runs.parent)
    assert incomplete.name not in {r["id"] for r in json.loads(proc.stdout)["runs"]}


def test_diff_of_two_seeded_runs_shows_identical_metrics(runs: Path) -> None:
    a, b = sorted(p.name for p in runs.glob("*-compare"))
    proc = digitlab("runs", "diff", a, b, "--json", cwd=runs.parent)
    assert proc.returncode == 0, proc.stderr
    rows = {r["key"]: r for r in json.loads(proc.stdout)["rows"]}
    for key in ("accuracy.lr", "accuracy.knn", "macro_f1.lr", "n_errors.knn", "seed", "dataset"):
        assert rows[key]["same"], rows[key]
    assert rows["accuracy.lr"]["difference"] == 0
    assert not rows["fit_s.lr"]["same"] or rows["fit_s.lr"]["difference"] == 0  # timings may differ


def test_rm_and_prune_never_take_the_latest_without_force(runs: Path) -> None:
    older, latest = sorted(p.name for p in runs.glob("*-compare"))
    proc = digitlab("runs", "rm", latest, "--yes", cwd=runs.parent)
    assert proc.returncode == 1 and "is the latest run; add --force" in proc.stderr
    proc = digitlab("runs", "prune", "--keep", "0", cwd=runs.parent)  # no terminal, no --yes: refuses
    assert proc.returncode == 1 and proc.stderr.startswith("error: would delete 1 run folder(s); add --yes")
    assert (runs / older).is_dir()
    proc = digitlab("runs", "prune", "--keep", "0", "--yes", cwd=runs.parent)
    assert proc.returncode == 0 and not (runs / older).exists() and (runs / latest).is_dir()
    proc = digitlab("runs", "rm", latest, "--yes", "--force", cwd=runs.parent)
    assert proc.returncode == 0 and not (runs / latest).exists() and not (runs / "latest").is_symlink()


def test_show_and_errors_are_one_line(runs: Path) -> None:
    latest = (runs / "latest").resolve().name
    proc = digitlab("runs", "show", latest, "--json", cwd=runs.parent)
    assert proc.returncode == 0 and json.loads(proc.stdout)["facts"]["accuracy.knn"] > 0.9
    proc = digitlab("runs", "show", "nope", cwd=runs.parent)
    assert proc.returncode == 1 and proc.stderr.startswith("error: run folder not found: 'nope'")
    assert proc.stderr.count("\n") == 1


def test_history_page_charts_runs_and_diffs_two(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.RUNS_ENV, str(runs))
    monkeypatch.delenv(common.RUN_ENV, raising=False)
    at = AppTest.from_file(str(PAGES / "history.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "History"
    assert at.selectbox(key="history_dataset").options == ["all", "digits"]
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["dataset"]) == {"digits"}
    diff = at.dataframe[1].value
    accuracy = diff[diff[""] == "accuracy.lr"]
    assert list(accuracy["b - a"]) == [0.0]


def test_history_page_without_runs_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.RUNS_ENV, str(tmp_path / "none"))
    monkeypatch.delenv(common.RUN_ENV, raising=False)
    at = AppTest.from_file(str(PAGES / "history.py"), default_timeout=60).run()
    assert not at.exception and "digitlab run --quick" in at.info[0].value
