"""Training the cnn on a shared CPU: how much slower it gets when another CPU-bound process runs.

Each measurement trains the cnn (2 epochs on a stratified 12,000-digit subset of MNIST, the same
seed) in a fresh process, alone and then beside a competing process that keeps one core busy
(a pure-Python loop, as another user's job would), under each thread setting:

- ``default``: what torch does by itself (one thread per core, OpenMP threads spin while they wait);
- ``OMP_WAIT_POLICY=PASSIVE``: waiting threads sleep at once; ``GOMP_SPINCOUNT=20000``: they spin briefly, then sleep;
- ``one thread``: ``OMP_NUM_THREADS=1``;
- ``digitlab``: what ``import digitlab`` sets unless ``DIGITLAB_THREADS=off`` (see ``digitlab/__init__.py``).

Slowdown = time beside the competitor / time alone, with the same setting. Goal (#18): <= 2×
(it was 2.8× for a full training run: 674 s against 241 s).
Writes benchmarks/shared_cpu.json and the "shared_cpu" section of BENCHMARKS.md.
Usage: python benchmarks/shared_cpu.py [--epochs 2] [--n-train 12000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _report import HERE, machine, table, update_section

OFF = {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "OMP_NUM_THREADS": None, "DIGITLAB_THREADS": "off"}
SETTINGS = {  # environment of the training process (None: unset)
    "default": OFF,
    "OMP_WAIT_POLICY=PASSIVE": dict(OFF, OMP_WAIT_POLICY="PASSIVE"),
    "GOMP_SPINCOUNT=20000": dict(OFF, GOMP_SPINCOUNT="20000"),
    "one thread": dict(OFF, OMP_NUM_THREADS="1"),
    "digitlab": dict(OFF, DIGITLAB_THREADS=None),
}
BUSY = "while True: pass"


def train_once(epochs: int, n_train: int) -> float:
    """Train the cnn once in this process; the seconds of ``fit``."""
    import digitlab  # noqa: F401  (its thread settings, when on, come first)
    from digitlab.data.datasets import load_dataset
    from digitlab.models.cnn import CNNClassifier

    ds = load_dataset("mnist").subset(n_train, 1000, random_state=0)
    model = CNNClassifier(epochs=epochs, validation_fraction=0.0, verbose=False, random_state=0)
    start = time.perf_counter()
    model.fit(ds.x_train, ds.y_train)
    return time.perf_counter() - start


def measure(setting: str, busy: bool, epochs: int, n_train: int) -> float:
    env = dict(os.environ)
    for key, value in SETTINGS[setting].items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    competitor = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(0.5 if busy else 0.0)
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(epochs), str(n_train)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2, help="cnn epochs per measurement (default: 2)")
    parser.add_argument("--n-train", type=int, default=12_000, help="training digits (default: 12,000)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(train_once(int(args.one[0]), int(args.one[1])))
        return
    rows = []
    for setting in SETTINGS:
        alone = measure(setting, False, args.epochs, args.n_train)
        shared = measure(setting, True, args.epochs, args.n_train)
        rows.append({"setting": setting, "alone_s": alone, "shared_s": shared, "slowdown": shared / alone})
        print(f"{setting}: alone {alone:.1f} s, shared {shared:.1f} s, slowdown {shared / alone:.2f}×", flush=True)
    ours = next(r for r in rows if r["setting"] == "digitlab")
    base = next(r for r in rows if r["setting"] == "default")
    result = {
        "machine": machine(),
        "epochs": args.epochs,
        "n_train": args.n_train,
        "rows": rows,
        "goal_slowdown_within_2x": ours["slowdown"] <= 2.0,
        "alone_cost_vs_default": ours["alone_s"] / base["alone_s"],
    }
    from digitlab.core.files import write_json

    write_json(HERE / "shared_cpu.json", result)
    body = [
        "## Training on a shared CPU (`benchmarks/shared_cpu.py`)",
        "",
        f"The cnn, {args.epochs} epochs on {args.n_train:,} MNIST digits, each run in a fresh process, alone and "
        "beside a competing process that keeps one core busy; "
        f"{result['machine']['cpus']} cores, {result['machine']['date']}.",
        "",
        table(
            ["setting", "alone", "beside a busy process", "slowdown"],
            [[r["setting"], f"{r['alone_s']:.1f} s", f"{r['shared_s']:.1f} s", f"{r['slowdown']:.2f}×"] for r in rows],
        ),
        "",
        f"Goal: slowdown ≤ 2× with digitlab's settings ({ours['slowdown']:.2f}×: "
        f"{'met' if result['goal_slowdown_within_2x'] else 'not met'}); alone they cost "
        f"{(result['alone_cost_vs_default'] - 1) * 100:+.0f}% against torch's default.",
        "",
        "Reproduce: `python benchmarks/shared_cpu.py`.",
    ]
    update_section("shared_cpu", "\n".join(body))
    print(json.dumps({r["setting"]: round(r["slowdown"], 2) for r in rows}))


if __name__ == "__main__":
    main()
