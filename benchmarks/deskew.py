"""Ablation: each classic model with and without the deskew step in front, on full MNIST.

Writes benchmarks/deskew.json and the "deskew" section of BENCHMARKS.md; the claim in
models/classic.py that deskewing lifts every model rests on this run.
Usage: python benchmarks/deskew.py [--models lr,knn,svm,mlp] [--seed 0]
"""

from __future__ import annotations

import argparse

from _report import HERE, fit_score, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset
from digitlab.models import registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lr,knn,svm,mlp")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ds = load_dataset("mnist")
    rows = []
    for name in args.models.split(","):
        with_acc, with_s = fit_score(registry.get(name).build(args.seed), ds)
        without_acc, without_s = fit_score(registry.get(name).build(args.seed).set_params(deskew="passthrough"), ds)
        rows.append(
            {
                "model": name,
                "with_deskew": with_acc,
                "without_deskew": without_acc,
                "gain_pp": (with_acc - without_acc) * 100,
                "fit_s_with": with_s,
                "fit_s_without": without_s,
            }
        )
        print(rows[-1], flush=True)
    result = {"machine": machine(), "seed": args.seed, "models": rows}
    write_json(HERE / "deskew.json", result)
    body = (
        "## Deskew ablation\n\n"
        f"Each classic model with and without the deskew step, full MNIST, seed {args.seed}, "
        f"{result['machine']['cpus']} CPUs, {result['machine']['date']}.\n\n"
        + table(
            ["model", "with deskew", "without", "gain (points)"],
            [
                [r["model"], f"{r['with_deskew']:.2%}", f"{r['without_deskew']:.2%}", f"{r['gain_pp']:+.2f}"]
                for r in rows
            ],
        )
    )
    update_section("deskew", body)


if __name__ == "__main__":
    main()
