"""What augmentation buys, on full MNIST, measured honestly (training data only).

1. mlp with and without each fast back end (same seed): target >= +0.3 points of test accuracy.
2. Robustness suite of cnn vs cnn-aug (the models benchmarks/cnn.py saved): target >= +5 points.
Writes benchmarks/augment.json and the "augment" section of BENCHMARKS.md.
Usage: python benchmarks/augment.py [--libraries elastic,opencv] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import time

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset
from digitlab.features.augment.robustness import robustness
from digitlab.models import registry
from digitlab.models.augmented import Augmented
from digitlab.models.store import load_model
from digitlab.training.train import train_and_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--libraries", default="elastic,opencv", help="back ends for the mlp (default: elastic,opencv)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    ds = load_dataset("mnist")
    test_hash = hashlib.sha256(ds.x_test.tobytes()).hexdigest()
    print("mlp without augmentation ...", flush=True)
    plain = train_and_score("mlp", ds, args.seed)
    rows = [{"model": "mlp", "library": "none", "accuracy": plain.metrics["accuracy"], "fit_s": plain.fit_s}]
    for library in args.libraries.split(","):
        print(f"mlp with {library} ...", flush=True)
        start = time.perf_counter()
        model = Augmented(registry.get("mlp").build(args.seed), library, random_state=args.seed)
        model.fit(ds.x_train, ds.y_train)
        fit_s = time.perf_counter() - start
        acc = float((model.predict(ds.x_test) == ds.y_test).mean())
        rows.append(
            {
                "model": "mlp",
                "library": library,
                "accuracy": acc,
                "fit_s": fit_s,
                "gain_pp": (acc - plain.metrics["accuracy"]) * 100,
            }
        )
        print(rows[-1], flush=True)
    robust = {}
    for name in ("cnn", "cnn-aug"):
        path = HERE / "runs" / f"{name}.pt"
        if path.is_file():
            model, _ = load_model(path)
            robust[name] = robustness(model, ds.x_test, ds.y_test)
            print(name, robust[name], flush=True)
    assert hashlib.sha256(ds.x_test.tobytes()).hexdigest() == test_hash  # the test split was never changed
    result = {"machine": machine(), "seed": args.seed, "mlp": rows, "robustness": robust, "test_sha256": test_hash}
    if len(robust) == 2:
        result["cnn_robustness_gain_pp"] = (
            robust["cnn-aug"]["mean_transformed"] - robust["cnn"]["mean_transformed"]
        ) * 100
    write_json(HERE / "augment.json", result)
    m = result["machine"]
    body = (
        "## Augmentation (`benchmarks/augment.py`)\n\n"
        f"Full MNIST, seed {args.seed}, {m['cpus']} CPUs, {m['date']}. Only training images are augmented "
        "(the mlp gets a fresh augmented copy of the training set each of its 20 epochs); the test split's "
        "SHA-256 is checked unchanged at the end.\n\n"
        + table(
            ["model", "augmentation", "test accuracy", "gain (points)", "fit s"],
            [
                [r["model"], r["library"], f"{r['accuracy']:.2%}", f"{r.get('gain_pp', 0.0):+.2f}", f"{r['fit_s']:.0f}"]
                for r in rows
            ],
        )
    )
    if robust:
        names = list(next(iter(robust.values()))["accuracy"])
        body += (
            "\n\nRobustness suite (accuracy on transformed copies of the test set):\n\n"
            + table(
                ["test images", *robust], [[k, *(f"{robust[n]['accuracy'][k]:.2%}" for n in robust)] for k in names]
            )
            + "\n\n"
            + " ".join(f"{n}: mean over transforms {r['mean_transformed']:.2%}." for n, r in robust.items())
        )
        if "cnn_robustness_gain_pp" in result:
            body += f" Gain from augmentation: {result['cnn_robustness_gain_pp']:+.1f} points (target ≥ +5)."
    update_section("augment", body)
    print(body)


if __name__ == "__main__":
    main()
