"""`digitlab run --smoke`: every step on the real MNIST files, on a tiny subset, in seconds (what CI and a user
checking an install run), and the models it leaves are real ones."""

from __future__ import annotations

import json
from pathlib import Path

from digitlab.runs.reader import Run
from tests.conftest import digitlab


def test_smoke_runs_every_step_and_later_steps_reload_its_data(mnist_cache: Path, tmp_path: Path) -> None:
    env = {"DIGITLAB_DATA": str(mnist_cache)}
    proc = digitlab("run", "--smoke", "--out", "runs", "--seed", "3", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    run = Run.open(result["run"])
    assert run.settings == {
        "dataset": "mnist",
        "seed": 3,
        "quick": False,
        "smoke": True,
        "models": list(("lr", "knn", "scratch-mlp", "cnn")),
    }
    assert json.loads((run.path / "run.json").read_text())["smoke"] is True
    assert run.data is not None and [run.data.splits[s]["x_shape"][0] for s in ("train", "test")] == [500, 200]
    assert run.compare is not None and run.compare.names == ["lr", "knn", "scratch-mlp", "cnn"]
    assert set(run.evaluations) == {"lr", "knn", "scratch-mlp", "cnn", "lr-tuned"}
    assert run.tune is not None and run.tune.get("search") == "random"
    assert list(run.augmentations) == ["opencv"] and run.augmentations["opencv"].model == "lr"
    assert run.look is not None and run.explore is not None and run.preprocess is not None
    assert (run.path / "report.html").stat().st_size > 50_000 and run.problems == []
    assert result["report"]["missing_figures"] == []
    # its models are real models: evaluated on the whole test split, the knn trained on 500 digits holds up
    proc = digitlab("evaluate", "--model", "knn", "--out", "runs", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads(proc.stdout)
    assert evaluated["n_test"] == 10_000 and abs(evaluated["accuracy"] - run.evaluations["knn"].accuracy) < 0.05
