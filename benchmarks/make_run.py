"""How long `make run` takes: `digitlab run` on full MNIST, step by step, against a same-run speed reference.

Runs exactly what `make run` runs after installing (`digitlab run`: data, explore, preprocess, lr, knn,
svm, mlp and the cnn, what the models look at, the report) in a fresh process into a temporary folder,
and reads each step's start from its progress lines. Shared machines vary in speed from day to day
(and by more than the goal's margin), so the same run also trains the cnn as it was before #18
(cnn_speed.Before18) for three epochs: ten times its mean epoch is what that cnn's training took
where the goal was set (241 s, benchmarks/cnn.json, 2026-11-24), which turns today's seconds into
seconds there. Goal (#18): `make run` <= 3 min of pipeline time on 2 cores.
Writes benchmarks/make_run.json and the "make_run" section of BENCHMARKS.md.
Usage: python benchmarks/make_run.py [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import HERE, machine, table, update_section
from cnn_speed import REFERENCE_BASELINE_S, Before18
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset

GOAL_S = 180.0
CALIBRATION_EPOCHS = 3
STEP = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


def calibrate() -> dict[str, float]:
    """The pre-#18 cnn for a few epochs on full MNIST: its 10-epoch training time on this machine today.

    ``factor`` turns seconds measured here today into seconds where the #18 goals were set (where those
    10 epochs took ``where_goal_set_s``): the one conversion every #18 speed figure uses."""
    ds = load_dataset("mnist")
    model = Before18(random_state=0)
    model.epochs = CALIBRATION_EPOCHS  # Before18 takes only a seed; the epochs are set on it
    start = time.perf_counter()
    model.fit(ds.x_train, ds.y_train)
    seconds = time.perf_counter() - start
    ten = seconds / CALIBRATION_EPOCHS * 10
    return {
        "epochs": CALIBRATION_EPOCHS,
        "fit_s": seconds,
        "ten_epochs_s": ten,
        "where_goal_set_s": REFERENCE_BASELINE_S,
        "factor": REFERENCE_BASELINE_S / ten,
    }


def digitlab_run(out: Path) -> dict:
    """`digitlab run` as `make run` calls it, in a fresh process: wall seconds, each step's start, the result."""
    digitlab = Path(sys.executable).with_name("digitlab")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(digitlab), "run", "--out", str(out), "--json"], capture_output=True, text=True, env=os.environ.copy()
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"digitlab run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    steps = [(float(m[1]), m[2]) for line in proc.stderr.splitlines() if (m := STEP.match(line.strip()))]
    return {"wall_s": wall, "steps": steps, "result": json.loads(proc.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report-only", action="store_true", help="rewrite the section from make_run.json")
    args = parser.parse_args()
    if args.report_only:
        report(json.loads((HERE / "make_run.json").read_text()))
        return
    print(f"the pre-#18 cnn for {CALIBRATION_EPOCHS} epochs (speed reference) ...", flush=True)
    reference = calibrate()
    print(reference, flush=True)
    print("digitlab run on full MNIST ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = digitlab_run(Path(tmp))
    models = run["result"]["compare"]["models"]
    result = {
        "machine": machine(),
        "reference": reference,
        "wall_s": run["wall_s"],
        "pipeline_s": run["result"]["seconds"],
        "steps": run["steps"],
        "models": [
            {k: m[k] for k in ("model", "accuracy", "fit_s", "predict_s")}
            for m in models  # fitted alone
        ],
        "wall_s_where_goal_set": run["wall_s"] * reference["factor"],
        "goal_s": GOAL_S,
    }
    result["meets"] = result["wall_s_where_goal_set"] <= GOAL_S
    write_json(HERE / "make_run.json", result)
    report(result)


def _durations(steps: list) -> list[tuple[str, float]]:
    """(step, seconds) for the job steps of the run, from their start times (inner lines folded in)."""
    marks = [(t, text) for t, text in steps if not text.startswith(("fitting", "predicting", "cache", "cnn epoch"))]
    return [(text, marks[k + 1][0] - t) for k, (t, text) in enumerate(marks[:-1])]


def report(result: dict) -> None:
    m, ref = result["machine"], result["reference"]
    rows = [[step.split(":")[0], f"{seconds:.1f}"] for step, seconds in _durations(result["steps"])]
    body = (
        "## `make run`: the whole pipeline on full MNIST (`benchmarks/make_run.py`)\n\n"
        f"`digitlab run` (what `make run` runs once installed) in a fresh process, {m['cpus']} CPUs, {m['date']}: "
        f"**{result['wall_s']:.0f} s** from start to exit ({result['pipeline_s']:.0f} s after the imports). "
        f"Speed reference in the same run: the cnn as it was before #18 trains {ref['epochs']} epochs in "
        f"{ref['fit_s']:.0f} s, so its 10 epochs take {ref['ten_epochs_s']:.0f} s here against "
        f"{ref['where_goal_set_s']:.0f} s where the goal was set: **≈ {result['wall_s_where_goal_set']:.0f} s there** "
        f"(goal ≤ {result['goal_s']:.0f} s: {'met' if result['meets'] else 'not met'}).\n\n"
        + table(["step (seconds from its start to the next)", "s"], rows)
        + "\n\nEach model fitted and predicted alone (the deskewing the classic models share is counted in each):\n\n"
        + table(
            ["model", "accuracy", "fit s", "predict s"],
            [
                [r["model"], f"{r['accuracy']:.2%}", f"{r['fit_s']:.1f}", f"{r['predict_s']:.1f}"]
                for r in result["models"]
            ],
        )
    )
    update_section("make_run", body)
    print(body)


if __name__ == "__main__":
    main()
