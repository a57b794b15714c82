"""How fast the `digitlab` command starts: `--help`, `runs`, and `predict one.png` from a cold process.

Issue 31's goals on 2 cores: `--help` and `runs` well under a second, `predict one.png` within 1.5 s.
Each command runs in a fresh process ``--repeat`` times (the median is kept), beside the baseline
``python -c "import numpy"`` measured in the same run, so a slow day shows as a slow baseline.
The models are a quick lr and a quick cnn trained into a temporary runs folder first; training the cnn puts
its ONNX copy in the reading cache, so `predict` with it loads onnxruntime alone. The first `predict` of a cnn
with no cache entry (PyTorch, then the copy made) is measured with an empty cache each time.
Writes benchmarks/cli_start.json and the "cli_start" section of BENCHMARKS.md.
Usage: python benchmarks/cli_start.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json


def seconds(args: list[str], cwd: Path, repeat: int, fresh_cache: bool = False) -> float:
    times = []
    for _ in range(repeat):
        env = dict(os.environ)
        if fresh_cache:  # an empty data cache: no reading-cache entry for the cnn
            env["DIGITLAB_DATA"] = tempfile.mkdtemp(dir=cwd)
        began = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="cold starts per command (default: 5)")
    args = parser.parse_args()
    digitlab = [sys.executable, "-m", "digitlab"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for model in ("lr", "cnn"):
            print(f"digitlab train --model {model} --quick ...", flush=True)
            subprocess.run([*digitlab, "train", "--model", model, "--quick"], cwd=root, check=True, capture_output=True)
        page = np.full((120, 100), 255, np.uint8)
        page[20:100, 45:55] = 0  # a 1
        Image.fromarray(page).save(root / "one.png")
        commands = {
            'python -c "import numpy" (baseline)': [sys.executable, "-c", "import numpy"],
            'python -c "import torch" (what reading a cnn with PyTorch needs at least)': [
                sys.executable,
                "-c",
                "import torch",
            ],
            "digitlab --help": [*digitlab, "--help"],
            "digitlab runs": [*digitlab, "runs"],
            "digitlab predict one.png --model lr": [*digitlab, "predict", "one.png", "--model", "lr"],
            "digitlab predict one.png (cnn, the default)": [*digitlab, "predict", "one.png"],
        }
        found = {name: seconds(command, root, args.repeat) for name, command in commands.items()}
        first = "digitlab predict one.png (cnn, first time: PyTorch, then its ONNX copy kept)"
        found[first] = seconds([*digitlab, "predict", "one.png"], root, args.repeat, fresh_cache=True)
    baseline = found['python -c "import numpy" (baseline)']
    goals = {"digitlab --help": 1.0, "digitlab runs": 1.0, "digitlab predict one.png (cnn, the default)": 1.5}
    results = {"machine": machine(), "repeat": args.repeat, "seconds": found, "baseline_s": baseline}
    write_json(HERE / "cli_start.json", results)
    rows = [
        [name, f"{s:.2f}", f"{s / baseline:.1f}×", f"≤ {goals[name]:g} s" if name in goals else ""]
        for name, s in found.items()
    ]
    for row in rows:
        print(" | ".join(row), flush=True)
    m = results["machine"]
    update_section(
        "cli_start",
        "## CLI start (`benchmarks/cli_start.py`)\n\n"
        f"Cold processes on {m['cpus']} CPUs ({m['date']}), the median of {args.repeat}; the baseline is "
        '`python -c "import numpy"` in the same run.\n\n' + table(["command", "s", "× baseline", "goal"], rows),
    )


if __name__ == "__main__":
    main()
