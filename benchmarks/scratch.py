"""The from-scratch NumPy models on full MNIST, each beside its scikit-learn counterpart.

Targets: scratch-mlp >= 98.5%, training <= 90 s and faster than MLPClassifier with the same
hidden sizes and epochs; scratch-knn >= the zoo's knn with the same preprocessing and
predicting no slower than scikit-learn's; scratch-cnn >= 99.0% in <= 20 min;
scratch-lr >= 92% and scratch-svm >= 91%, each <= 30 s.
Writes benchmarks/scratch.json and the "scratch" section of BENCHMARKS.md.
Usage: python benchmarks/scratch.py [--models scratch-lr,...] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from _report import HERE, machine, table, update_section
from digitlab.artifacts import write_json
from digitlab.data.datasets import load_dataset
from digitlab.models import classic
from digitlab.models.scratch.estimators import ScratchMLP
from digitlab.train import train_and_score

TARGETS = {
    "scratch-lr": "≥ 92%, ≤ 30 s",
    "scratch-svm": "≥ 91%, ≤ 30 s",
    "scratch-mlp": "≥ 98.5%, ≤ 90 s",
    "scratch-knn": "≥ knn, predict ≤ knn's",
    "scratch-cnn": "≥ 99.0%, ≤ 20 min",
}


def sklearn_mlp_same_shape(seed: int) -> Pipeline:
    """MLPClassifier with scratch-mlp's hidden sizes, epochs, batch size and preprocessing."""
    mine = ScratchMLP()
    return classic._with_front(
        (
            "clf",
            MLPClassifier(
                hidden_layer_sizes=mine.hidden,
                batch_size=mine.batch_size,
                max_iter=mine.epochs,
                alpha=mine.l2,
                random_state=seed,
                n_iter_no_change=mine.epochs + 1,
            ),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--models",
        default="scratch-lr,scratch-svm,scratch-mlp,scratch-knn,scratch-cnn",
        help="models to run (default: all five)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    ds = load_dataset("mnist")
    rows = []
    for name in args.models.split(","):
        print(f"training {name} ...", flush=True)
        t = train_and_score(name, ds, args.seed)
        rows.append(
            {
                "model": name,
                "accuracy": t.metrics["accuracy"],
                "fit_s": t.fit_s,
                "predict_s": t.predict_s,
                "epochs": getattr(t.model, "n_epochs_", None),
            }
        )
        print(rows[-1], flush=True)
    refs = []
    names = {r["model"] for r in rows}
    if "scratch-mlp" in names:
        print("MLPClassifier, same hidden sizes and epochs ...", flush=True)
        ref = sklearn_mlp_same_shape(args.seed)
        start = time.perf_counter()
        ref.fit(ds.x_train, ds.y_train)
        fit_s = time.perf_counter() - start
        refs.append(
            {
                "model": "sklearn MLPClassifier (same shape)",
                "accuracy": float((ref.predict(ds.x_test) == ds.y_test).mean()),
                "fit_s": fit_s,
                "predict_s": None,
                "epochs": ScratchMLP().epochs,
            }
        )
    if "scratch-knn" in names:
        print("zoo knn ...", flush=True)
        t = train_and_score("knn", ds, args.seed)
        refs.append(
            {
                "model": "knn (scikit-learn, same preprocessing)",
                "accuracy": t.metrics["accuracy"],
                "fit_s": t.fit_s,
                "predict_s": t.predict_s,
                "epochs": None,
            }
        )
    previous = HERE / "scratch.json"
    if previous.is_file():  # keep the earlier rows of models not run this time (their own date stays in the JSON)
        import json

        old = json.loads(previous.read_text())
        ran = {r["model"] for r in rows} | {r["model"] for r in refs}
        rows = [r for r in old.get("models", []) if r["model"] not in ran] + rows
        refs = [r for r in old.get("references", []) if r["model"] not in ran] + refs
        order = list(TARGETS)
        rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    result = {"machine": machine(), "seed": args.seed, "models": rows, "references": refs}
    mlp = next((r for r in rows if r["model"] == "scratch-mlp"), None)
    ref_mlp = next((r for r in refs if r["model"].startswith("sklearn MLP")), None)
    if mlp and ref_mlp:
        result["mlp_speedup"] = ref_mlp["fit_s"] / mlp["fit_s"]
    write_json(HERE / "scratch.json", result)
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    lines = [
        [
            r["model"],
            f"{r['accuracy']:.2%}",
            fmt(r["fit_s"], ".1f"),
            fmt(r["predict_s"], ".1f"),
            fmt(r["epochs"], ""),
            TARGETS.get(r["model"], "reference"),
        ]
        for r in rows + refs
    ]
    m = result["machine"]
    body = (
        "## From-scratch NumPy models (`benchmarks/scratch.py`)\n\n"
        f"Full MNIST, seed {args.seed}, {m['cpus']} CPUs, NumPy {m['versions'].get('numpy')}, {m['date']}.\n\n"
        + table(["model", "test accuracy", "fit s", "predict s", "epochs", "target"], lines)
    )
    if "mlp_speedup" in result:
        body += f"\n\nscratch-mlp trains {result['mlp_speedup']:.2f}× as fast as MLPClassifier with the same shape."
    update_section("scratch", body)
    print(body)


if __name__ == "__main__":
    main()
