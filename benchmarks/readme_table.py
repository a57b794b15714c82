"""The README's model table, made from the benchmark results (never typed by hand).

    python benchmarks/readme_table.py          # rewrite the table in README.md
    python benchmarks/readme_table.py --check  # exit 1 when README.md and the JSON files disagree

Rows come from benchmarks/compare.json (classic models), cnn_speed.json (the cnn: the mean of its
seeds), cnn.json (cnn-aug, the ensemble, and the classic net, measured there as "cnn" before #18
made it cnn-classic), scratch.json (from-scratch models) and realworld.json (cnn-hands, trained for
the real-world check set); descriptions from the model registry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START, END = "<!-- models-table:start -->", "<!-- models-table:end -->"
SOURCES = ("compare.json", "cnn_speed.json", "cnn.json", "scratch.json", "realworld.json")
RENAMED = {"cnn.json": {"cnn": "cnn-classic"}}  # cnn.json measured the classic net when it was the cnn


def _models(source: str, data: dict) -> list[dict[str, object]]:
    if source == "cnn_speed.json":  # three seeds of the cnn: their mean
        runs = data["runs"]
        mean = {k: sum(float(r[k]) for r in runs) / len(runs) for k in ("accuracy", "fit_s", "predict_s")}
        return [dict(mean, model=f"cnn (mean of {len(runs)} seeds)")]
    if source == "realworld.json":  # models trained there (cnn-hands) and their full-MNIST figures
        trained = [m for m in data["models"] if m.get("mnist", {}).get("accuracy") and not m.get("held_out")]
        return [dict(m["mnist"], model=m["model"]) for m in trained]
    return list(data["models"])


def _rows() -> list[dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for source in SOURCES:
        data = json.loads((HERE / source).read_text())
        for row in _models(source, data):
            name = str(row["model"]).split(" ")[0]  # "ensemble (cnn + cnn-aug + svm, …)" -> "ensemble"
            name = RENAMED.get(source, {}).get(name, name)
            rows.setdefault(name, {"date": data["machine"]["date"], **row, "model": name, "source": source})
    return list(rows.values())


def _seconds(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "—"


def render() -> str:
    from digitlab.service import model_catalogue

    described = {m.name: m.description for m in model_catalogue()}
    lines = [
        START,
        "| model | what | full-MNIST test accuracy | fit (s) | predict 10,000 (s) | measured in |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in _rows():
        name = str(row["model"])
        accuracy = row["accuracy"]
        assert isinstance(accuracy, float)
        lines.append(
            f"| `{name}` | {described.get(name, '')} | {accuracy:.2%} | {_seconds(row.get('fit_s'))} | "
            f"{_seconds(row.get('predict_s'))} | `benchmarks/{row['source']}` ({row['date']}) |"
        )
    lines.append(END)
    return "\n".join(lines)


def current() -> str:
    text = README.read_text()
    return text[text.index(START) : text.index(END) + len(END)]


def main(argv: list[str]) -> int:
    table = render()
    if "--check" in argv:
        if current() != table:
            print("README.md's model table differs from benchmarks/*.json; run python benchmarks/readme_table.py")
            return 1
        return 0
    text = README.read_text()
    README.write_text(text.replace(current(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
