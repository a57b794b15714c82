"""Batch scoring of picture folders: `digitlab predict FOLDER --output results.csv` locally and on Dask.

Goals (issue 14): images/s for 20,000 PNG files with one process and with `--dask-local 2`; the peak RSS
with 20,000 files within 1.5x of that with 2,000 (results are streamed, not held).
Writes benchmarks/batch.json and the "batch" section of BENCHMARKS.md.
Usage: python benchmarks/batch.py [--run RUN] [--files 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset
from serve import make_run

MEASURE = """
import json, resource, subprocess, sys, time
began = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": done.returncode, "seconds": seconds, "peak_rss_mb": peak, "out": done.stdout[-4000:],
                  "err": done.stderr[-2000:]}))
"""


def write_pictures(folder: Path, n: int) -> None:
    x = load_dataset("mnist").x_train
    for k in range(n):
        sub = folder / f"{k // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[k % len(x)]).save(sub / f"{k:06d}.png")


def score(folder: Path, model: Path, output: Path, dask: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "digitlab", "predict", str(folder), "--model", str(model), "--output", str(output)]
    cmd += ["--json", *(["--dask-local", str(dask)] if dask else [])]
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(result["err"])
    summary = json.loads(result["out"])
    return {
        "files": summary["files"],
        "backend": summary["backend"],
        "seconds": result["seconds"],
        "images_per_s_end_to_end": summary["files"] / result["seconds"],
        "images_per_s_scoring": summary["images_per_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "errors": summary["error"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="run folder with a saved cnn (default: a fresh quick one)")
    parser.add_argument("--files", type=int, default=20_000, help="pictures in the large folder (default: 20,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = args.run or make_run(root / "runs", quick=True)
        model = run / "models" / "cnn.pt"
        small, large = root / "small", root / "large"
        write_pictures(small, args.files // 10)
        write_pictures(large, args.files)
        rows = [
            score(small, model, root / "small.csv", None),
            score(large, model, root / "large.csv", None),
            score(large, model, root / "large-dask.csv", 2),
        ]
    for row in rows:
        print(row, flush=True)
    result = {"machine": machine(), "results": rows}
    write_json(HERE / "batch.json", result)
    ratio = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    m = result["machine"]
    body = (
        "## Batch scoring (`benchmarks/batch.py`)\n\n"
        f"`digitlab predict FOLDER --output results.csv` with a quick cnn on MNIST training digits saved as PNG "
        f"files ({m['cpus']} CPUs, {m['date']}). End to end = the whole command (start, model load, Dask cluster "
        "start); scoring = reading, decoding and scoring the files.\n\n"
        + table(
            ["files", "backend", "seconds", "images/s end to end", "images/s scoring", "peak RSS MB", "errors"],
            [
                [
                    f"{r['files']:,}",
                    r["backend"],
                    f"{r['seconds']:.1f}",
                    f"{r['images_per_s_end_to_end']:,.0f}",
                    f"{r['images_per_s_scoring']:,.0f}",
                    f"{r['peak_rss_mb']:.0f}",
                    r["errors"],
                ]
                for r in rows
            ],
        )
        + f"\n\nPeak RSS with {rows[1]['files']:,} files is {ratio:.2f}× that with {rows[0]['files']:,} "
        "(goal: ≤ 1.5×; the main process, which holds one chunk at a time)."
    )
    update_section("batch", body)


if __name__ == "__main__":
    main()
