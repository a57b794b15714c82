"""Reading whole numbers (issue 33): `digitlab read`'s two ways against Tesseract 5 on the same pictures.

The check set: numbers written with MNIST **test** digits (never training digits; the reader never saw them),
one line each (``data.number_lines``), in groups: separated digits (3–8 digits), touching or overlapping
digits, decimal amounts (a point or a comma), slanted lines, small and large, photographed (uneven light,
blur, noise, JPEG), and a leading minus sign. Each group's numbers are drawn from a stream of their own
(seed, group). Tesseract 5 (Debian's `tesseract-ocr`, `--psm 7`, whitelist `0123456789.-`) reads the same
pictures in the same run, as the baseline. The two ways: ``lines`` (the shipped line reader, CNN + BiLSTM +
CTC: the default) and ``segments`` (the line cut into characters the digit reader reads). Figures: whole-number
accuracy and character accuracy (aligned by edit distance) per group and overall; milliseconds per number on
one core (models loaded); how many wrong readings are not flagged uncertain.
Writes benchmarks/read.json and the "read" section of BENCHMARKS.md.
Usage: python benchmarks/read.py [--per-group 100] [--seed 0] [--no-tesseract]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset
from digitlab.data.number_lines import Layout, compose, on_paper
from digitlab.service.exporting import load_predictor
from digitlab.service.numbers import read_number

GROUPS: dict[str, tuple[Layout, str, str]] = {  # name -> (layout, photo condition, kind of number)
    "separated": (Layout(), "scan", "integer"),
    "touching": (Layout(gap=(-0.12, 0.03)), "scan", "integer"),
    "decimal": (Layout(), "scan", "decimal"),
    "slanted": (Layout(slant=15), "scan", "integer"),
    "small": (Layout(height=36, margin=20), "scan", "integer"),
    "large": (Layout(height=160, margin=60), "scan", "integer"),
    "photographed": (Layout(), "photo|blur|noise", "mixed"),
    "minus": (Layout(), "scan", "negative"),
}
GOALS = {"separated": 0.99, "touching": 0.97, "decimal": 0.98, "overall": 0.98, "digits": 0.995}


def a_number(kind: str, rng: np.random.Generator) -> str:
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, int(rng.integers(3, 9))))
    if kind == "decimal" or (kind == "mixed" and rng.random() < 0.3):
        whole = digits[: max(1, len(digits) - 2)]
        return whole + rng.choice([".", ","]) + digits[len(whole) :][:2].ljust(2, "0")
    if kind == "negative":
        return "-" + digits[: int(rng.integers(1, 6))]
    return digits


def check_set(per_group: int, seed: int) -> list[dict[str, Any]]:
    ds = load_dataset("mnist")
    x, y = ds.x_test.reshape(-1, 28, 28), ds.y_test
    by_digit = {d: np.flatnonzero(y == d) for d in range(10)}
    out = []
    for g, (name, (layout, conditions, kind)) in enumerate(GROUPS.items()):
        rng = np.random.default_rng([seed, 0x4EAD, g])
        for _ in range(per_group):
            text = a_number(kind, rng)
            glyphs = [x[rng.choice(by_digit[int(c)])] for c in text if c.isdigit()]
            line, _ = compose(glyphs, text, rng, layout)
            condition = str(rng.choice(conditions.split("|")))
            out.append({"group": name, "text": text, "picture": on_paper(line, rng, condition)})
    return out


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def tesseract(picture: np.ndarray, folder: Path) -> str:
    path = folder / "line.png"
    Image.fromarray(picture).save(path)
    done = subprocess.run(
        ["tesseract", str(path), "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=0123456789.-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "".join(done.stdout.split())


def score(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    def figures(subset: list[dict[str, Any]]) -> dict[str, float]:
        truth = [r["text"].replace(",", ".") for r in subset]
        got = [r[key] for r in subset]
        chars = sum(len(t) for t in truth)
        wrong = sum(edit_distance(t, g) for t, g in zip(truth, got, strict=True))
        return {
            "numbers": float(np.mean([t == g for t, g in zip(truth, got, strict=True)])),
            "characters": max(0.0, 1 - wrong / chars),
            "n": len(subset),
        }

    return {"overall": figures(rows), "groups": {g: figures([r for r in rows if r["group"] == g]) for g in GROUPS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-group", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()
    rows = check_set(args.per_group, args.seed)
    reader = load_predictor("best", Path("no-runs"))
    times: dict[str, list[float]] = {"lines": [], "segments": []}
    for row in rows:
        for method in times:
            started = time.perf_counter()
            got = read_number(reader, row["picture"], row["text"], method)
            times[method].append(time.perf_counter() - started)
            row[method], row[f"{method}_status"] = got.text, got.status
    use_tesseract = not args.no_tesseract and shutil.which("tesseract") is not None
    if use_tesseract:
        with tempfile.TemporaryDirectory() as tmp:
            for row in rows:
                row["tesseract"] = tesseract(row["picture"], Path(tmp))
    eight = [k for k, r in enumerate(rows) if sum(c.isdigit() for c in r["text"]) == 8]
    result: dict[str, Any] = {
        "machine": machine(),
        "per_group": args.per_group,
        "seed": args.seed,
        "reader": reader.name,
        "tesseract": score(rows, "tesseract") if use_tesseract else None,
        "goals": GOALS,
    }
    for method, spent in times.items():
        wrong = [r for r in rows if r[method] != r["text"].replace(",", ".")]
        result[method] = {
            **score(rows, method),
            "ms_per_number": 1000 * float(np.median(spent)),
            "ms_per_8_digit_number": 1000 * float(np.median([spent[k] for k in eight])) if eight else None,
            "wrong_not_flagged": sum(r[f"{method}_status"] == "ok" for r in wrong),
            "wrong": len(wrong),
            "right_flagged": sum(r[f"{method}_status"] == "uncertain" for r in rows if r not in wrong),
            "misreads": [{"group": r["group"], "text": r["text"], "read": r[method]} for r in wrong][:30],
        }
    write_json(HERE / "read.json", result)
    report(result)
    print({m: result[m]["overall"] for m in times}, result["tesseract"]["overall"] if result["tesseract"] else None)


def report(result: dict[str, Any]) -> None:
    lines, cut, theirs = result["lines"], result["segments"], result["tesseract"]

    def cell(found: dict[str, Any] | None, g: str, what: str = "numbers") -> str:
        if not found:
            return "—"
        return f"{(found['overall'] if g == 'overall' else found['groups'][g])[what]:.1%}"

    rows = [
        [
            g,
            cell(lines, g),
            cell(lines, g, "characters"),
            cell(cut, g),
            cell(theirs, g),
            cell(theirs, g, "characters"),
            f"≥ {GOALS[g]:.0%}" if g in GOALS else "",
        ]
        for g in [*GROUPS, "overall"]
    ]
    m = result["machine"]
    ours = lines
    ratio = ours["overall"]["numbers"] / max(theirs["overall"]["numbers"], 1e-9) if theirs else float("nan")
    update_section(
        "read",
        "## Reading whole numbers (`benchmarks/read.py`)\n\n"
        f"{result['per_group']} numbers a group written with MNIST test digits (never seen in training) on one line, "
        f"seed {result['seed']}; `digitlab read`'s two ways — the line reader (CNN + BiLSTM + CTC, "
        "`benchmarks/ctc.py`; the default) and cutting the line into characters the "
        f"`{result['reader']}` reads (touching groups cut where it reads the pieces most surely) — against "
        f"Tesseract 5 (`--psm 7`, digits, `.` and `-` only) on the same pictures. {m['cpus']} CPUs, {m['date']}.\n\n"
        + table(
            [
                "group",
                "numbers (line reader)",
                "characters",
                "numbers (cutting)",
                "numbers (Tesseract)",
                "characters (Tesseract)",
                "goal",
            ],
            rows,
        )
        + f"\n\nThe line reader (the default) reads {ratio:.1f}× as many whole numbers as Tesseract. Median "
        f"{lines['ms_per_number']:.0f} ms a number ({lines['ms_per_8_digit_number'] or 0:.0f} ms with 8 digits; "
        f"cutting: {cut['ms_per_number']:.0f} ms), models loaded. Wrong and not flagged uncertain: "
        f"{lines['wrong_not_flagged']} of its {lines['wrong']} misreads (cutting: {cut['wrong_not_flagged']} of "
        f"{cut['wrong']}); right but flagged: {lines['right_flagged']}.",
    )


if __name__ == "__main__":
    main()
