"""Preprocessing per dataset: each model on Fashion-MNIST with its defaults there and with MNIST's.

Deskew and the PCA sizes were chosen on MNIST. For each model this trains, on the full
training split and with one seed, (a) the estimator ``digitlab train --dataset fashion-mnist``
builds (``registry.build(name, seed, dataset)``: no deskew off handwriting, plus the model's
``dataset_params``) and (b) the MNIST defaults (deskew in front), then scores both on the test
split. Beside them: the best figure for the model's family in Zalando's benchmark of
scikit-learn classifiers on raw pixels (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747, table 3,
mean of 5 runs), the plain pipeline to beat, and for the cnn the goal of #18 (92%).
Writes benchmarks/datasets.json and the "datasets" section of BENCHMARKS.md.
Usage: python benchmarks/datasets.py [--dataset fashion-mnist] [--models lr,knn,svm,mlp,cnn] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

from _report import HERE, fit_score, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset
from digitlab.models import registry

# Zalando's best per family on Fashion-MNIST (arXiv:1708.07747, table 3); the cnn's is #18's goal
REFERENCE = {
    "lr": ("LogisticRegression C=1, ovr, l1", 0.842),
    "knn": ("KNeighborsClassifier k=5, p=1, distance", 0.854),
    "svm": ("SVC C=10, RBF", 0.897),
    "mlp": ("MLPClassifier ReLU, (100,)", 0.871),
    "cnn": ("#18 goal", 0.92),
}


def changed(name: str, dataset: str) -> dict[str, str]:
    """The parameters where the dataset's defaults differ from MNIST's."""
    ours = registry.build(name, 0, dataset).get_params(deep=True)
    mnist = registry.build(name, 0).get_params(deep=True)
    steps = ("steps", "members", *(k for k, v in ours.items() if hasattr(v, "get_params") and k != "deskew"))
    return {k: repr(v) for k, v in ours.items() if k not in steps and repr(v) != repr(mnist.get(k))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--models", default="lr,knn,svm,mlp,cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true", help="rewrite the section from datasets.json")
    args = parser.parse_args()
    if args.report_only:
        report(json.loads((HERE / "datasets.json").read_text()))
        return
    ds = load_dataset(args.dataset)
    rows = []
    for name in args.models.split(","):
        ours = registry.build(name, args.seed, ds.name)
        acc, fit_s = fit_score(ours, ds)
        row = {"model": name, "defaults": changed(name, ds.name), "accuracy": acc, "fit_s": fit_s}
        if row["defaults"]:  # the MNIST defaults differ here: measure them too
            row["mnist_defaults_accuracy"], row["mnist_defaults_fit_s"] = fit_score(registry.build(name, args.seed), ds)
        if name in REFERENCE:
            row["reference"], row["reference_accuracy"] = REFERENCE[name]
        rows.append(row)
        print(json.dumps(row), flush=True)
    previous = HERE / "datasets.json"
    if previous.exists():  # a run of some models keeps the others' rows from the last run on this dataset
        last = json.loads(previous.read_text())
        if last.get("dataset") == ds.name and last.get("seed") == args.seed:
            ran = {r["model"] for r in rows}
            order = [r["model"] for r in last["models"]] + [r["model"] for r in rows]
            merged = {r["model"]: r for r in last["models"] if r["model"] not in ran} | {r["model"]: r for r in rows}
            rows = [merged[name] for name in dict.fromkeys(order)]
    result = {"machine": machine(), "dataset": ds.name, "seed": args.seed, "models": rows}
    write_json(HERE / "datasets.json", result)
    report(result)


def report(result: dict) -> None:
    rows = []
    for r in result["models"]:
        mnist = r.get("mnist_defaults_accuracy")
        ref = r.get("reference_accuracy")
        rows.append(
            [
                r["model"],
                f"{r['accuracy']:.2%}",
                f"{r['fit_s']:.0f} s",
                f"{mnist:.2%}" if mnist is not None else "same",
                f"{ref:.1%} ({r['reference']})" if ref is not None else "",
                ("met" if r["accuracy"] >= ref else "not met") if ref is not None else "",
                ", ".join(f"{k}={v}" for k, v in r["defaults"].items()) or "as on MNIST",
            ]
        )
    body = (
        f"## Preprocessing per dataset: {result['dataset']}\n\n"
        f"Each model trained on the full {result['dataset']} training split and scored on its test split, "
        f"seed {result['seed']}, {result['machine']['cpus']} CPUs, {result['machine']['date']}: with the defaults "
        "digitlab uses for this dataset, and with the MNIST defaults (deskew in front). The reference is the best "
        "figure for the model's family in Zalando's benchmark of scikit-learn classifiers on raw pixels "
        "(arXiv:1708.07747, table 3), i.e. the plain pipeline to beat; for the cnn, #18's goal. "
        "`digitlab compare --dataset fashion-mnist` trains the same models. "
        "Reproduce: `python benchmarks/datasets.py`.\n\n"
        + table(
            ["model", "accuracy", "fit", "with MNIST defaults", "reference", "goal", "defaults here"],
            rows,
        )
    )
    update_section("datasets", body)


if __name__ == "__main__":
    main()
