"""`digitlab models`, `train`, `compare`, `evaluate`, `augment`, `ensemble`, `tune`, `run`: making models and
measuring them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from digitlab import service
from digitlab.faces.cli.app import (
    DataDir,
    DatasetOpt,
    Json,
    Mlflow,
    ModelsOpt,
    Out,
    Quick,
    Reporter,
    Seed,
    app,
    data_request,
    emit,
    make_table,
    split_names,
)
from digitlab.faces.cli.data import data_tables


@app.command()
def models(as_json: Json = False) -> None:
    """List the models in the registry, with when to choose and when to avoid each."""
    specs = service.catalogue.model_catalogue()
    result = {
        "models": [
            {
                "name": s.name,
                "family": s.family,
                "description": s.description,
                "pros": s.pros,
                "cons": s.cons,
                "search_space": dict(s.search_space),
            }
            for s in specs
        ],
        "shipped": service.catalogue.shipped_reader(),  # the reader `predict`, `serve` and Try it use by default
    }
    shipped = result["shipped"]
    footer = None
    if isinstance(shipped, dict):
        check = shipped["figures"].get("realworld_check", {}).get("accuracy")
        footer = (
            f"default reader: {shipped['name']}, shipped with digitlab ({shipped['recipe']}, seed {shipped['seed']}): "
            f"{shipped['figures'].get('mnist_test_accuracy', 0):.2%} of the MNIST test set"
            + (f", {check:.2%} of the real-world check set (its glyph families are not held out)" if check else "")
            + f"; made by `{shipped['command']}`"
        )
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                "models",
                ["model", "family", "description", "choose it for", "avoid it when"],
                [(s.name, s.family, s.description, s.pros, s.cons) for s in specs],
            )
        ],
        footer=footer,
    )


def compare_table(result: dict[str, Any]) -> Table:
    return make_table(
        f"{result['dataset']}: {result['n_train']:,} train / {result['n_test']:,} test, seed {result['seed']}",
        ["model", "accuracy", "macro F1", "fit s", "predict s", "size MB"],
        [
            (
                r["model"],
                f"{r['accuracy']:.2%}",
                r["macro_f1"],
                f"{r['fit_s']:.1f}",
                f"{r['predict_s']:.2f}",
                f"{r['size_bytes'] / 1e6:.2f}",
            )
            for r in result["models"]
        ],
    )


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", help="Registry name, see `digitlab models` (default: svm).")] = "svm",
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """Fit one model, save it with its metadata and print its accuracy and times."""
    reporter = Reporter()
    request = service.TrainRequest(
        model=model, data=data_request(dataset, data_dir, seed, quick), out=out, mlflow=mlflow
    )
    with reporter.live():
        result = service.train(request, reporter).to_json()
    emit(
        result,
        as_json,
        lambda: [compare_table(dict(result, models=[result]))],
        footer=f"model saved to {result['path']}",
    )


@app.command()
def compare(
    models: ModelsOpt = ",".join(service.settings.DEFAULT_MODELS),
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """Train several models on the same data and seed; table, chart and evaluations."""
    request = service.CompareRequest(
        models=split_names(models), data=data_request(dataset, data_dir, seed, quick), out=out, mlflow=mlflow
    )
    reporter = Reporter()
    with reporter.live():
        result = service.compare(request, reporter).to_json()
    emit(result, as_json, lambda: [compare_table(result)], footer=f"best: {result['best']}; files in {result['run']}")


@app.command()
def evaluate(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A .skops model file, or a registry name for the "
            "newest saved model of that name under --out (default: svm).",
        ),
    ] = "svm",
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    robust: Annotated[
        bool,
        typer.Option(
            "--robustness",
            help="Also score rotated, shifted, thicker, thinner and noisy copies of the test images (default: off).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Confusion matrix, classification report, most-confused pairs, misclassified gallery."""
    request = service.EvaluateRequest(model, data_request(dataset, data_dir, seed, quick), out, robustness=robust)
    reporter = Reporter()
    with reporter.live():
        result = service.evaluate(request, reporter).to_json()
    classes = list(result["report"])[: len(result["confusion_matrix"])]

    def tables() -> list[Table]:
        report = result["report"]
        per_class = make_table(
            f"{result['model']} on {result['dataset']}: accuracy {result['accuracy']:.2%}, "
            f"{result['n_errors']} errors of {result['n_test']:,}",
            ["class", "precision", "recall", "f1-score", "support"],
            [
                (c, report[c]["precision"], report[c]["recall"], report[c]["f1-score"], int(report[c]["support"]))
                for c in classes
            ],
        )
        cm = make_table(
            "confusion matrix (rows: true, columns: predicted)",
            ["true", *classes],
            [(name, *counts) for name, counts in zip(classes, result["confusion_matrix"], strict=True)],
        )
        pairs = make_table(
            "most-confused pairs",
            ["true", "predicted", "count", "share of true"],
            [(p["true"], p["predicted"], p["count"], f"{p['share_of_true']:.1%}") for p in result["confused_pairs"]],
        )
        tables = [per_class, cm, pairs]
        if robust:
            scores = result["robustness"]["accuracy"]
            tables.append(
                make_table(
                    "robustness: accuracy on transformed test copies",
                    ["test images", "accuracy"],
                    [(k, f"{v:.2%}") for k, v in scores.items()],
                )
            )
        return tables

    emit(
        result,
        as_json,
        tables,
        footer=f"model: {result['model_path']}; figures and evaluate-{result['model']}.json in {result['run']}",
    )


@app.command()
def augment(
    library: Annotated[
        str, typer.Option("--library", help="albumentations, opencv, keras or elastic (default: elastic).")
    ] = "elastic",
    model: Annotated[
        str, typer.Option("--model", help="Registry name to train with and without it (default: mlp).")
    ] = "mlp",
    factor: Annotated[
        int,
        typer.Option(
            "--factor",
            help="Augmented copies per image for models trained once on an expanded set (lr, knn, svm) (default: 1).",
        ),
    ] = 1,
    compare_all: Annotated[
        bool, typer.Option("--compare", help="Run every back end and compare them (default: off).")
    ] = False,
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """Train a model with and without augmentation of its training data; report the gain."""
    libraries = tuple(service.catalogue.AUGMENTERS) if compare_all else (library,)
    request = service.AugmentRequest(
        libraries, model, factor, data_request(dataset, data_dir, seed, quick), out, mlflow
    )
    reporter = Reporter()
    with reporter.live():
        result = service.augment(request, reporter).to_json()
    rows = [
        (
            r["library"],
            f"{r['without']['accuracy']:.2%}",
            f"{r['with']['accuracy']:.2%}",
            f"{r['gain_pp']:+.2f}",
            f"{r['without']['robustness']['mean_transformed']:.2%}",
            f"{r['with']['robustness']['mean_transformed']:.2%}",
            f"{r['robustness_gain_pp']:+.2f}",
            r["mode"],
        )
        for r in result["results"]
    ]
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"{model} on {result['dataset']} ({result['n_train']:,} train / {result['n_test']:,} test, "
                f"seed {seed}); "
                "only training images are augmented",
                ["library", "test acc without", "with", "gain pp", "robustness without", "with", "gain pp", "how"],
                rows,
            )
        ],
        footer=f"test split unchanged (SHA-256 {result['results'][0]['test_sha256'][:16]}…); files in {result['run']}",
    )


@app.command()
def ensemble(
    models: Annotated[
        str,
        typer.Option(
            "--models",
            help="Comma-separated saved models: .skops/.pt files or registry "
            "names for the newest saved one under --out (default: cnn,svm,mlp).",
        ),
    ] = "cnn,svm,mlp",
    weights: Annotated[
        str | None, typer.Option("--weights", help="One weight per model, e.g. 2,1,1 (default: equal).")
    ] = None,
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    as_json: Json = False,
) -> None:
    """Soft-vote saved models without retraining them; compare the ensemble with its members."""
    request = service.EnsembleRequest(split_names(models), weights, data_request(dataset, data_dir, seed, quick), out)
    reporter = Reporter()
    with reporter.live():
        result = service.ensemble(request, reporter).to_json()
    rows = [(m["model"], f"{m['accuracy']:.2%}", m["path"]) for m in result["members"]]
    rows.append(("ensemble", f"{result['accuracy']:.2%}", result["model_path"]))
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"soft voting on {result['dataset']} ({result['n_test']:,} test images)",
                ["model", "accuracy", "file"],
                rows,
            )
        ],
    )


@app.command()
def tune(
    model: Annotated[str, typer.Option("--model", help="Registry name, see `digitlab models` (default: svm).")] = "svm",
    search: Annotated[str, typer.Option("--search", help="grid, random or halving (default: grid).")] = "grid",
    cv: Annotated[int, typer.Option("--cv", help="Cross-validation folds (default: 3).")] = 3,
    n_iter: Annotated[int, typer.Option("--n-iter", help="Candidates for --search random (default: 10).")] = 10,
    train_size: Annotated[
        int | None,
        typer.Option("--train-size", help="Search on a stratified subset of N training images (default: all)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Replace one entry of the model's space: NAME=V1,V2 (repeatable; default: the "
            "registry's space, see `digitlab models --json`).",
        ),
    ] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", help="Parallel fits, -1 for all cores (default: -1).")] = -1,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Run on a running Dask cluster, e.g. tcp://HOST:8786 (default: local)."),
    ] = None,
    dask_local: Annotated[
        int | None, typer.Option("--dask-local", help="Start a Dask LocalCluster with N workers (default: off).")
    ] = None,
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """Cross-validated search on the training set; the test set scores the refitted best once."""
    request = service.TuneRequest(
        model=model,
        search=search,
        cv=cv,
        n_iter=n_iter,
        train_size=train_size,
        params=tuple(param or ()),
        n_jobs=n_jobs,
        scheduler=scheduler,
        dask_local=dask_local,
        data=data_request(dataset, data_dir, seed, quick),
        out=out,
        mlflow=mlflow,
    )
    reporter = Reporter()
    with reporter.live():
        result = service.tune(request, reporter).to_json()

    def tables() -> list[Table]:
        ranked = make_table(
            f"{model}: {search} search, {cv}-fold CV on {result['n_train_searched']:,} training images "
            f"({result['backend']}, {result['seconds']:.0f} s)",
            ["rank", "parameters", "mean CV accuracy", "± std", "mean fit s"],
            [
                (
                    c["rank"],
                    " ".join(f"{k}={v}" for k, v in c["params"].items()),
                    f"{c['mean_cv_accuracy']:.2%}",
                    f"{c['std_cv_accuracy']:.2%}",
                    f"{c['mean_fit_s']:.1f}",
                )
                for c in result["candidates"][:15]
            ],
        )
        return [ranked]

    best = " ".join(f"{k}={v}" for k, v in result["best_params"].items())
    emit(
        result,
        as_json,
        tables,
        footer=f"best: {best} (CV {result['best_cv_accuracy']:.2%}); refitted and scored once on the test split: "
        f"{result['test']['accuracy']:.2%}; files in {result['run']}",
    )


@app.command("run")
def run_command(
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Comma-separated registry names (default: lr,knn,svm,mlp,cnn; with --smoke lr,knn,scratch-mlp,cnn).",
        ),
    ] = None,
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help=f"Every step on a tiny subset ({service.settings.SMOKE_TRAIN} train / "
            f"{service.settings.SMOKE_TEST} test) in well "
            "under a minute, to check an install: one model of each kind, tuning (lr, random search) and "
            "augmentation (opencv on lr) unless you name others. Accuracy means nothing here (default: off).",
        ),
    ] = False,
    tune: Annotated[
        str | None, typer.Option("--tune", help="Also tune this model, saved as <name>-tuned (default: no tuning).")
    ] = None,
    search: Annotated[str, typer.Option("--search", help="grid, random or halving (default: halving).")] = "halving",
    augment: Annotated[
        str | None,
        typer.Option("--augment", help="Also measure this augmentation back end, e.g. opencv (default: none)."),
    ] = None,
    augment_model: Annotated[
        str, typer.Option("--augment-model", help="Model trained with and without augmentation (default: mlp).")
    ] = "mlp",
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """The whole pipeline: data → explore → preprocess → compare → evaluate (→ tune → augment) → report."""
    if smoke:  # every step, on tiny data: what is not named takes the smoke defaults
        models = models or ",".join(service.settings.SMOKE_MODELS)
        tune, search = tune or "lr", search if tune else "random"
        augment, augment_model = augment or "opencv", augment_model if augment else "lr"
    request = service.RunRequest(
        models=split_names(models or ",".join(service.settings.DEFAULT_MODELS)),
        data=service.DataRequest(dataset=dataset, data_dir=data_dir, seed=seed, quick=quick, smoke=smoke),
        out=out,
        tune=tune,
        search=search,
        augment=augment,
        augment_model=augment_model,
        mlflow=mlflow,
    )
    reporter = Reporter()
    with reporter.live():
        result = service.run(request, reporter).to_json()
    emit(
        result,
        as_json,
        lambda: [*data_tables(result["data"])[:2], compare_table(result["compare"])],
        footer=f"finished in {result['seconds']:.0f} s; everything in {result['run']}; "
        f"report: {result['report']['path']}",
    )
