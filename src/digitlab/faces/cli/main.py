"""The ``digitlab`` command line: options in, one service call, tables (or one JSON object) out.

Each command builds a typed request, hands it to ``digitlab.service`` (which checks it,
does the work in a run folder and reports progress as events) and renders the result: a
table on stdout, or with ``--json`` one JSON object; progress and errors go to stderr.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from digitlab import service
from digitlab.core.errors import DigitlabError, Interrupted, pending_stop

app = typer.Typer(
    help="digitlab: handwritten-digit recognition from the raw MNIST files to evaluated models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Fetch, verify and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out_console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)

# --- options shared by the commands (help text states each default) ---------------------
Overwrite = Annotated[
    bool, typer.Option("--force", help="Write over an --output file that is already there (default: refuse).")
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (default: table).")]
Mlflow = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        help="Also log the run to MLflow: MLFLOW_TRACKING_URI, or sqlite:///<out>/mlflow.db "
        "(default: off; DIGITLAB_MLFLOW=1 turns it on).",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed for subsets, models and picks (default: 0).")]
Out = Annotated[Path, typer.Option("--out", help="Folder that holds the run folders (default: runs).")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="mnist, fashion-mnist, digits or idx:DIR (default: mnist).")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Folder holding the four IDX files (raw or .gz), tried after the cache (default: none)."
    ),
]
Quick = Annotated[
    bool,
    typer.Option(
        "--quick",
        help=f"Stratified subset: {service.settings.QUICK_TRAIN:,} train / "
        f"{service.settings.QUICK_TEST:,} test (default: off).",
    ),
]

ModelsOpt = Annotated[
    str, typer.Option("--models", help="Comma-separated registry names (default: lr,knn,svm,mlp,cnn).")
]


class Reporter:
    """Progress events on stderr: rich bars on a terminal, plain lines (one per step or epoch) elsewhere."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._bars: RichProgress | None = None
        self._job: Any = None
        self._inner: Any = None

    def __call__(self, event: service.Event) -> None:
        finished_unit = event.total > 0 and event.done >= event.total
        if event.level == service.progress.JOB or event.total == 0 or finished_unit:  # a line worth keeping
            elapsed = f"[{time.perf_counter() - self.start:6.1f}s]"
            console = self._bars.console if self._bars is not None else err_console  # above the live bars
            console.print(f"{elapsed} {event.message or event.step}", highlight=False, markup=False)
        if self._bars is not None:
            self._live(event)

    def _live(self, event: service.Event) -> None:
        bars = self._bars
        assert bars is not None
        if event.level == service.progress.JOB:
            if self._job is None:
                self._job = bars.add_task(event.message, total=event.total or None)
            bars.update(self._job, completed=event.done, total=event.total or None, description=event.message)
            return
        if self._inner is None:
            self._inner = bars.add_task(event.message, total=event.total or None)
        bars.update(self._inner, completed=event.done, total=event.total or None, description=event.message)

    @contextmanager
    def live(self) -> Iterator[Reporter]:
        if not err_console.is_terminal:
            yield self
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with RichProgress(*columns, console=err_console, transient=True) as bars:
            self._bars = bars
            try:
                yield self
            finally:
                self._bars = None


def _data(dataset: str, data_dir: Path | None, seed: int, quick: bool = False) -> service.DataRequest:
    return service.DataRequest(dataset=dataset, data_dir=data_dir, seed=seed, quick=quick)


def _emit(
    result: dict[str, Any], as_json: bool, tables: Callable[[], Sequence[Table]], footer: str | None = None
) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
        return
    for table in tables():
        out_console.print(table)
    if footer:
        out_console.print(footer, highlight=False)
    if isinstance(result.get("mlflow"), dict):
        logged = result["mlflow"]
        n = len(logged["children"])
        out_console.print(
            f"MLflow: run {logged['run_id']} ({n} model run{'' if n == 1 else 's'}), experiment "
            f"{logged['experiment_id']} in {logged['tracking_uri']}; see it with "
            f"`mlflow ui --backend-store-uri {logged['tracking_uri']}`",
            highlight=False,
            soft_wrap=True,
        )


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for k, col in enumerate(columns):
        numeric = bool(rows) and all(isinstance(row[k], int | float) for row in rows)
        table.add_column(col, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- data ---------------------------------------------------------------------------------


def _data_tables(info: dict[str, Any]) -> list[Table]:
    splits = _table(
        f"{info['dataset']}: splits",
        ["split", "X shape", "X dtype", "y shape", "classes"],
        [
            (name, str(tuple(s["x_shape"])), s["x_dtype"], str(tuple(s["y_shape"])), len(info["classes"]))
            for name, s in info["splits"].items()
        ],
    )
    counts = _table(
        "examples per class",
        ["split", *info["classes"]],
        [(name, *s["per_class"]) for name, s in info["splits"].items()],
    )
    files = _table(
        "files",
        ["file", "SHA-256", "verified", "source"],
        [
            (
                name,
                (f.get("sha256") or "")[:16] + "…",
                "yes" if f.get("verified") else "no (no pinned hash)",
                f.get("source", ""),
            )
            for name, f in info["files"].items()
        ],
    )
    return [splits, counts, files]


@data_app.command("fetch")
def data_fetch(dataset: DatasetOpt = "mnist", data_dir: DataDir = None, as_json: Json = False) -> None:
    """Fetch a dataset into the cache and verify every file's SHA-256."""
    reporter = Reporter()
    with reporter.live():
        info = service.data_info(_data(dataset, data_dir, 0), reporter).to_json()
    _emit(
        info,
        as_json,
        lambda: _data_tables(info)[2:],
        footer="tried: " + "; ".join(info["attempts"]) if info["attempts"] else None,
    )


@data_app.command("info")
def data_info(dataset: DatasetOpt = "mnist", data_dir: DataDir = None, as_json: Json = False) -> None:
    """Splits, shapes, dtypes, classes, examples per class and where each file came from."""
    info = service.data_info(_data(dataset, data_dir, 0)).to_json()
    _emit(info, as_json, lambda: _data_tables(info))


# --- explore / preprocess --------------------------------------------------------------------


@app.command()
def explore(
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    as_json: Json = False,
) -> None:
    """Dimensions, classes, counts per class, pixel statistics and figures."""
    reporter = Reporter()
    with reporter.live():
        result = service.explore(_data(dataset, data_dir, seed, quick), out, reporter).to_json()

    def tables() -> list[Table]:
        splits = result["splits"]
        pix = _table(
            "pixel statistics",
            ["split", "min", "max", "mean", "std", "fraction_zero"],
            [
                (
                    name,
                    s["pixels"]["min"],
                    s["pixels"]["max"],
                    s["pixels"]["mean"],
                    s["pixels"]["std"],
                    s["pixels"]["fraction_zero"],
                )
                for name, s in splits.items()
            ],
        )
        counts = _table(
            f"{result['dataset']}: examples per class (images {tuple(result['image_shape'])})",
            ["split", *result["classes"]],
            [(name, *s["per_class"]) for name, s in splits.items()],
        )
        return [counts, pix]

    _emit(result, as_json, tables, footer=f"figures and explore.json in {result['run']}")


@app.command()
def preprocess(
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    as_json: Json = False,
) -> None:
    """Raw vs normalised images and value statistics before and after."""
    reporter = Reporter()
    with reporter.live():
        result = service.preprocess(_data(dataset, data_dir, seed, quick), out, reporter).to_json()
    stats = result["stats"]
    _emit(
        result,
        as_json,
        lambda: [
            _table(
                "pixel values before and after",
                ["step", "min", "max", "mean", "std"],
                [(name, s["min"], s["max"], s["mean"], s["std"]) for name, s in stats.items()],
            )
        ],
        footer=f"figures and preprocess.json in {result['run']}",
    )


# --- models ---------------------------------------------------------------------------------


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
        ]
    }
    _emit(
        result,
        as_json,
        lambda: [
            _table(
                "models",
                ["model", "family", "description", "choose it for", "avoid it when"],
                [(s.name, s.family, s.description, s.pros, s.cons) for s in specs],
            )
        ],
    )


def _compare_table(result: dict[str, Any]) -> Table:
    return _table(
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
    request = service.TrainRequest(model=model, data=_data(dataset, data_dir, seed, quick), out=out, mlflow=mlflow)
    with reporter.live():
        result = service.train(request, reporter).to_json()
    _emit(
        result,
        as_json,
        lambda: [_compare_table(dict(result, models=[result]))],
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
        models=_names(models), data=_data(dataset, data_dir, seed, quick), out=out, mlflow=mlflow
    )
    reporter = Reporter()
    with reporter.live():
        result = service.compare(request, reporter).to_json()
    _emit(result, as_json, lambda: [_compare_table(result)], footer=f"best: {result['best']}; files in {result['run']}")


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
    request = service.EvaluateRequest(model, _data(dataset, data_dir, seed, quick), out, robustness=robust)
    reporter = Reporter()
    with reporter.live():
        result = service.evaluate(request, reporter).to_json()
    classes = list(result["report"])[: len(result["confusion_matrix"])]

    def tables() -> list[Table]:
        report = result["report"]
        per_class = _table(
            f"{result['model']} on {result['dataset']}: accuracy {result['accuracy']:.2%}, "
            f"{result['n_errors']} errors of {result['n_test']:,}",
            ["class", "precision", "recall", "f1-score", "support"],
            [
                (c, report[c]["precision"], report[c]["recall"], report[c]["f1-score"], int(report[c]["support"]))
                for c in classes
            ],
        )
        cm = _table(
            "confusion matrix (rows: true, columns: predicted)",
            ["true", *classes],
            [(name, *counts) for name, counts in zip(classes, result["confusion_matrix"], strict=True)],
        )
        pairs = _table(
            "most-confused pairs",
            ["true", "predicted", "count", "share of true"],
            [(p["true"], p["predicted"], p["count"], f"{p['share_of_true']:.1%}") for p in result["confused_pairs"]],
        )
        tables = [per_class, cm, pairs]
        if robust:
            scores = result["robustness"]["accuracy"]
            tables.append(
                _table(
                    "robustness: accuracy on transformed test copies",
                    ["test images", "accuracy"],
                    [(k, f"{v:.2%}") for k, v in scores.items()],
                )
            )
        return tables

    _emit(
        result,
        as_json,
        tables,
        footer=f"model: {result['model_path']}; figures and evaluate-{result['model']}.json in {result['run']}",
    )


@app.command()
def predict(
    files: Annotated[
        list[Path],
        typer.Argument(help="Pictures of digits (PNG, JPEG, BMP, GIF, TIFF or WebP), or folders of them (recursive)."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A model file, a registry name for the newest saved one under --out, or best: the saved model "
            f"that reads real pictures best ({', '.join(service.settings.READERS)}, then the others) (default: best).",
        ),
    ] = "best",
    out: Out = Path("runs"),
    runtime: Annotated[
        str,
        typer.Option("--runtime", help="torch (the saved model) or onnx (the cnn in onnxruntime) (default: torch)."),
    ] = "torch",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Stream one row per picture to results.csv, .jsonl or .parquet instead of printing a table "
            "(default: a table).",
        ),
    ] = None,
    dask_local: Annotated[
        int | None,
        typer.Option("--dask-local", help="With --output: score on a fresh Dask LocalCluster of N workers."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="With --output: score on a running Dask cluster, e.g. tcp://HOST:8786."),
    ] = None,
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Read the digit in each picture: label, confidence and top 3."""
    if output is not None:
        request = service.batch.BatchRequest(
            tuple(files), output, model, out, runtime, dask_local, scheduler, force=force
        )
        reporter = Reporter()
        with reporter.live():
            summary = service.batch.batch_predict(request, reporter)
        counts = [(k, summary[k]) for k in ("files", "ok", "uncertain", "blank", "error")]
        _emit(
            summary,
            as_json,
            lambda: [_table(f"{summary['files']:,} pictures read by {summary['model']}", ["", "pictures"], counts)],
            footer=f"{summary['images_per_s']:,.0f} pictures/s ({summary['backend']}); rows in {summary['output']}",
        )
        return
    if dask_local is not None or scheduler is not None:
        raise DigitlabError("--dask-local and --scheduler score into a file; add --output results.csv.")
    predictor = service.exporting.load_predictor(model, out, runtime, reading=True)
    predictions = predictor.predict(list(service.batch.picture_files(files)))
    result = {
        "model": predictor.name,
        "model_path": str(predictor.path),
        "predictions": [p.to_json() for p in predictions],
    }
    rows = []
    for p in predictions:
        if p.status in ("ok", "uncertain"):
            top = ", ".join(f"{label} {prob:.0%}" for label, prob in p.top3)
            rows.append((p.file, p.label, f"{p.confidence or 0.0:.1%}", p.status, top))
        else:
            rows.append((p.file, "", "", p.status, p.error or "no ink found"))
    _emit(
        result,
        as_json,
        lambda: [
            _table(f"predictions by {result['model']}", ["file", "digit", "confidence", "status", "top 3 / note"], rows)
        ],
        footer=f"model: {predictor.path}",
    )
    failed = [p for p in predictions if p.status == "error"]
    if len(failed) == 1:
        others = " The other pictures were read." if len(predictions) > 1 else ""
        raise DigitlabError(f"{failed[0].error}{others}")
    if failed:
        raise DigitlabError(
            f"{len(failed)} of {len(predictions)} pictures could not be read (first: {failed[0].error}); "
            "the table says why for each."
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
    request = service.AugmentRequest(libraries, model, factor, _data(dataset, data_dir, seed, quick), out, mlflow)
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
    _emit(
        result,
        as_json,
        lambda: [
            _table(
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
    request = service.EnsembleRequest(_names(models), weights, _data(dataset, data_dir, seed, quick), out)
    reporter = Reporter()
    with reporter.live():
        result = service.ensemble(request, reporter).to_json()
    rows = [(m["model"], f"{m['accuracy']:.2%}", m["path"]) for m in result["members"]]
    rows.append(("ensemble", f"{result['accuracy']:.2%}", result["model_path"]))
    _emit(
        result,
        as_json,
        lambda: [
            _table(
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
        data=_data(dataset, data_dir, seed, quick),
        out=out,
        mlflow=mlflow,
    )
    reporter = Reporter()
    with reporter.live():
        result = service.tune(request, reporter).to_json()

    def tables() -> list[Table]:
        ranked = _table(
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
    _emit(
        result,
        as_json,
        tables,
        footer=f"best: {best} (CV {result['best_cv_accuracy']:.2%}); refitted and scored once on the test split: "
        f"{result['test']['accuracy']:.2%}; files in {result['run']}",
    )


RunArg = Annotated[
    str | None,
    typer.Argument(help="Run folder, or its name under --out (default: the latest run).", show_default=False),
]


@app.command()
def report(
    run: RunArg = None,
    out: Out = Path("runs"),
    output: Annotated[
        Path | None, typer.Option("--output", help="Where to write the HTML (default: <run>/report.html).")
    ] = None,
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """One self-contained HTML report of a run: data, examples, models, evaluation, tuning, augmentation."""
    reporter = Reporter()
    with reporter.live():
        result = service.report(run, out, output, reporter, force).to_json()
    rows = [
        ("file", result["path"]),
        ("size", f"{result['bytes'] / 1e6:.2f} MB"),
        ("sections", ", ".join(result["sections"])),
        ("models", ", ".join(result["models"]) or "none"),
        ("figures embedded", result["figures"]),
        ("tuning", "yes" if result["has_tuning"] else "no"),
        ("augmentation", "yes" if result["has_augmentation"] else "no"),
        ("seconds", result["seconds"]),
    ]
    if result["missing_figures"]:
        rows.append(("missing figures", ", ".join(result["missing_figures"])))
    _emit(result, as_json, lambda: [_table("report", ["", "value"], rows)])


_EVIDENCE = {
    "cnn": "Integrated Gradients + occlusion",
    "lr": "weights × input",
    "mlp": "most active units",
    "occlusion": "occlusion",
}


@app.command()
def explain(
    files: Annotated[
        list[Path], typer.Argument(help="Pictures of digits (PNG, JPEG, BMP, GIF, TIFF or WebP), or folders of them.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="A model file, or a registry name for the newest saved one under --out (default: cnn)."
        ),
    ] = "cnn",
    out: Out = Path("runs"),
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Why a model read each picture as it did: a figure and JSON per picture in <run>/explanations/.

    cnn: Integrated Gradients and occlusion (Captum) for the answer and the runner-up; lr: weight images and
    input × weights; mlp: the most active first-layer units; knn: the k training digits it compared with;
    svm: the nearest support vectors; any other model: occlusion.
    """
    reporter = Reporter()
    with reporter.live():
        result = service.explain(service.ExplainRequest(tuple(files), model, out, data_dir), reporter).to_json()
    for row in result["explanations"]:  # the maps stay in the JSON files; stdout gets the figures
        row.pop("image", None)
        row["panels"] = [{k: v for k, v in p.items() if k != "values"} for p in row["panels"]]
    rows = []
    for row in result["explanations"]:
        evidence = ", ".join(f"{n['label']} ({n['distance']:.2f})" for n in row["neighbours"])
        rows.append(
            (
                Path(row["file"]).name,
                row["label"],
                f"{row['confidence']:.1%}",
                f"{row['runner_up']} {row['runner_up_probability']:.1%}",
                evidence or _EVIDENCE.get(row["kind"], row["kind"]),
                f"{row['seconds'] * 1000:.0f}",
            )
        )
    notes = sorted({note for row in result["explanations"] for note in row["notes"]})
    _emit(
        result,
        as_json,
        lambda: [
            _table(
                f"why {result['model']} answered",
                ["file", "digit", "confidence", "runner-up", "evidence", "ms"],
                rows,
            )
        ],
        footer="\n".join([*(f"note: {n}" for n in notes), f"figures and JSON in {result['folder']}"]),
    )


@app.command("map")
def map_(
    run: RunArg = None,
    out: Out = Path("runs"),
    features: Annotated[
        str,
        typer.Option(
            "--model", help="Features to map: cnn (its penultimate layer) or pca (PCA-50 of pixels) (default: cnn)."
        ),
    ] = "cnn",
    method: Annotated[str, typer.Option("--method", help="umap or tsne (default: umap).")] = "umap",
    split: Annotated[
        str, typer.Option("--split", help="test (the run's test digits) or all (training and test) (default: test).")
    ] = "test",
    seed: Seed = 0,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """A 2-D map of the test digits (UMAP or t-SNE): coloured by label, misread ones ringed; saved in the run."""
    request = service.MapRequest(run, out, features, method, split, seed, data_dir)
    reporter = Reporter()
    with reporter.live():
        result = service.digit_map(request, reporter).to_json()
    rows = [
        ("digits", f"{result['n']:,} ({result['split']})"),
        ("features", result["features"]),
        ("method", result["method"]),
        ("misread by " + str(result["reader"]), f"{result['n_misread']:,}"),
        ("features (s)", f"{result['seconds_features']:.1f}"),
        ("embedding (s)", f"{result['seconds_embedding']:.1f}"),
        ("figure", result["figure"]),
    ]
    _emit(
        result,
        as_json,
        lambda: [_table(f"map of {Path(result['run']).name}", ["", "value"], rows)],
        footer=f"points in {result['json']}; `digitlab report` adds the figure, `digitlab dashboard` shows the map",
    )


@app.command()
def dashboard(
    run: RunArg = None,
    out: Out = Path("runs"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on (default: 8501).")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on (default: localhost).")] = "localhost",
    browser: Annotated[bool, typer.Option("--browser", help="Open a browser tab (default: off).")] = False,
) -> None:
    """Start the Streamlit dashboard on a run (default: the latest); it loads saved models, never retrains."""
    import subprocess

    launch = service.dashboard.dashboard_launch(service.dashboard.DashboardRequest(run, out, port, address, browser))
    err_console.print(
        f"digitlab dashboard on http://{address}:{port} (run: {launch.run or 'none yet'}); Ctrl-C stops it"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # the server takes this process's place, so a stop signal reaches it directly
        os.execve(sys.executable, launch.command, launch.env)
    try:
        code = subprocess.call(launch.command, env=launch.env)
    except KeyboardInterrupt:
        code = 0
    if code not in (0, -2, 130):
        raise typer.Exit(code)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="A model file, or a registry name for the newest saved one (cnn).")],
    format: Annotated[str, typer.Option("--format", help="onnx (default: onnx).")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", help="File to write (default: <model>.onnx beside the model).")
    ] = None,
    out: Out = Path("runs"),
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Export the cnn to ONNX (BatchNorm folded), checked against PyTorch before it is written."""
    result = service.export_model(service.ExportRequest(model, format, output, out, force))
    rows = [
        ("file", result["path"]),
        ("opset", result["opset"]),
        ("size MB", f"{result['bytes'] / 1e6:.2f}"),
        ("input", f"{result['input']['name']} {result['input']['datatype']} {result['input']['shape']}"),
        ("output", f"{result['output']['name']} {result['output']['datatype']} {result['output']['shape']}"),
        ("max |Δp| vs PyTorch", f"{result['max_abs_diff_vs_torch']:.1e}"),
    ]
    _emit(result, as_json, lambda: [_table(f"{result['model']} as ONNX", ["", "value"], rows)])


@app.command()
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A model file or registry name to serve; repeat for several, the first is the default "
            "(default: best, as predict).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every network (default: 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (default: 8000).")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes, each with the models; at most 2 a core (default: 1).")
    ] = 1,
    runtime: Annotated[
        str, typer.Option("--runtime", help="torch (the saved model) or onnx (its ONNX export) (default: torch).")
    ] = "torch",
    out: Out = Path("runs"),
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most images in one request (default: 1024).")
    ] = service.settings.MAX_BATCH,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Largest request body in bytes (default: 20 MiB).")
    ] = service.settings.MAX_PICTURE_BYTES,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take (default: 30).")] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            help="Open connections per worker; past it idle ones are closed first, then 503 (default: 1000).",
        ),
    ] = service.settings.MAX_CONNECTIONS,
    header_timeout: Annotated[
        float,
        typer.Option("--header-timeout", help="Seconds a connection has to send whole request headers (default: 10)."),
    ] = service.settings.HEADER_TIMEOUT_S,
    max_in_flight: Annotated[
        int,
        typer.Option("--max-in-flight", help="Requests answered at once per worker; past it 503 (default: 64)."),
    ] = service.settings.MAX_IN_FLIGHT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Require `Authorization: Bearer <token>`, the file's first line (or set "
            f"{service.settings.TOKEN_ENV}); health routes stay open (default: no token).",
        ),
    ] = None,
    access_log: Annotated[
        Path | None,
        typer.Option(
            "--access-log", help="Append one JSON line per request to this file; - for stderr (default: none)."
        ),
    ] = None,
) -> None:
    """Serve the recogniser over HTTP: REST /predict and the Open Inference Protocol v2 (/v2).

    SIGHUP (or POST /v2/repository/models/NAME/load) reloads the models from disk without a restart;
    SIGINT and SIGTERM finish the requests in flight, then stop."""
    import signal
    import socket

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server handles it: a reload, never a stop
    request = service.serving.ServeRequest(
        tuple(model or ("best",)),
        host,
        port,
        workers,
        runtime,
        out,
        max_bytes,
        max_batch,
        timeout,
        max_connections,
        header_timeout,
        max_in_flight,
        token_file,
        access_log,
    )
    served = service.serving.load_served(request)  # missing, corrupt, tampered: one line, before the port is bound
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise DigitlabError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror}); pass another --port."
        ) from None
    os.environ[service.settings.SERVE_ENV] = request.to_env()
    names = ", ".join(f"{m.name} ({m.version})" for m in served)
    del served  # each worker (or the server below) loads its own; the supervisor keeps no copy
    gc.collect()
    err_console.print(
        f"digitlab serve: {names} on http://{host}:{port} (docs: http://{host}:{port}/docs); Ctrl-C stops it",
        highlight=False,
        soft_wrap=True,
    )

    def drain(signum: int, frame: Any) -> None:  # uvicorn drains in-flight requests, then hands the signal back
        del signum, frame

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, drain)
    from digitlab.faces.server import supervisor

    supervisor.run(request)
    err_console.print("digitlab serve: stopped", highlight=False)


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
        models=_names(models or ",".join(service.settings.DEFAULT_MODELS)),
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
    _emit(
        result,
        as_json,
        lambda: [*_data_tables(result["data"])[:2], _compare_table(result["compare"])],
        footer=f"finished in {result['seconds']:.0f} s; everything in {result['run']}; "
        f"report: {result['report']['path']}",
    )


# --- run history ------------------------------------------------------------------------------

runs_app = typer.Typer(
    help="Every run folder: list, show, diff, remove, prune, log to MLflow.", invoke_without_command=True
)
app.add_typer(runs_app, name="runs")


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, int | float) else "?"


@runs_app.callback()
def runs_list(ctx: typer.Context, out: Out = Path("runs"), as_json: Json = False) -> None:
    """Every run folder, newest first: time, command, dataset, seed, models and accuracy, duration, size."""
    if ctx.invoked_subcommand is not None:
        return
    rows = service.runs.run_history(out)
    result = {"out": str(out), "runs": [r.to_json() for r in rows]}
    table = [
        (
            r.id + (" (latest)" if r.latest else ""),
            r.command,
            r.dataset or "",
            "" if r.seed is None else str(r.seed),
            ", ".join(f"{m} {_pct(a)}" for m, a in r.models.items()) or "—",
            "" if r.seconds is None else f"{r.seconds:.0f}",
            f"{r.size_bytes / 2**20:.1f}",
            r.problem or ("complete" if r.complete else "incomplete"),
        )
        for r in rows
    ]
    _emit(
        result,
        as_json,
        lambda: [
            _table(
                f"runs in {out}",
                ["run", "command", "dataset", "seed", "models (test accuracy)", "s", "MiB", "state"],
                table,
            )
        ],
        footer=None if rows else f"no runs under {out}; `digitlab run --quick` makes one",
    )


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run folder or its name under --out.")],
    out: Out = Path("runs"),
    as_json: Json = False,
) -> None:
    """One run: every parameter and metric it recorded."""
    path = service.runs.find_run(run, out)
    facts = service.runs.run_facts(path)
    _emit(
        {"run": str(path), "facts": facts},
        as_json,
        lambda: [_table(path.name, ["", "value"], [(k, _fmt(v)) for k, v in facts.items()])],
    )


@runs_app.command("diff")
def runs_diff(
    a: Annotated[str, typer.Argument(help="First run (folder or name).")],
    b: Annotated[str, typer.Argument(help="Second run (folder or name).")],
    out: Out = Path("runs"),
    as_json: Json = False,
) -> None:
    """Two runs side by side: parameters and metrics, with the difference (b - a)."""
    rows = service.runs.diff_runs(a, b, out)
    _emit(
        {"a": a, "b": b, "rows": rows},
        as_json,
        lambda: [
            _table(
                f"{a} vs {b}",
                ["", "a", "b", "b - a"],
                [
                    (r["key"], _fmt(r["a"]), _fmt(r["b"]), "" if r["difference"] is None else f"{r['difference']:+.4g}")
                    for r in rows
                ],
            )
        ],
        footer=f"{sum(not r['same'] for r in rows)} of {len(rows)} values differ",
    )


Yes = Annotated[bool, typer.Option("--yes", help="Do not ask before deleting (default: ask on a terminal).")]
Force = Annotated[bool, typer.Option("--force", help="Also remove the latest run (default: never).")]


def _confirm(paths: list[Path], yes: bool) -> None:
    if yes or not paths:
        return
    if not sys.stdin.isatty():
        raise DigitlabError(f"would delete {len(paths)} run folder(s); add --yes to confirm without a terminal.")
    names = ", ".join(p.name for p in paths[:5]) + (" …" if len(paths) > 5 else "")
    if not typer.confirm(f"Delete {len(paths)} run folder(s): {names}?"):
        raise DigitlabError("nothing deleted.")


@runs_app.command("rm")
def runs_rm(
    runs: Annotated[list[str], typer.Argument(help="Run folders or names under --out.")],
    out: Out = Path("runs"),
    yes: Yes = False,
    force: Force = False,
) -> None:
    """Delete run folders digitlab made inside --out (the latest one only with --force; never a symlink)."""
    paths = service.runs.removable_runs(runs, out)
    _confirm(paths, yes)
    removed = service.runs.remove_runs([str(p) for p in paths], out, force)
    err_console.print(f"removed {len(removed)} run folder(s)", highlight=False)


@runs_app.command("prune")
def runs_prune(
    keep: Annotated[int, typer.Option("--keep", help="How many of the newest runs to keep (default: 10).")] = 10,
    out: Out = Path("runs"),
    yes: Yes = False,
    force: Force = False,
) -> None:
    """Delete all but the newest N run folders (never the latest without --force)."""
    paths = service.runs.prune_candidates(out, keep, force)
    _confirm(paths, yes)
    removed = service.runs.remove_runs([str(p) for p in paths], out, force) if paths else []
    err_console.print(f"removed {len(removed)} run folder(s)", highlight=False)


# --- entry points ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=args, prog_name="digitlab", standalone_mode=False)
    except Exception as exc:
        stop = pending_stop()
        if stop is not None:  # a stop that a library turned into an error of its own (matplotlib's Agg
            raise Interrupted(stop) from exc  # renderer: "Invalid bounding box") still ends as a stop
        if isinstance(exc, DigitlabError):
            err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
            return 1
        format_message = getattr(exc, "format_message", None)
        if format_message is None:  # a bug, not a usage error: keep the traceback
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(str(format_message()).split())
        err_console.print(f"error: {message}{where}", highlight=False, markup=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2))
    return rv if isinstance(rv, int) else 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@runs_app.command("mlflow")
def runs_mlflow(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run folders or names under --out (default: the latest run).")
    ] = None,
    out: Out = Path("runs"),
    again: Annotated[
        bool, typer.Option("--again", help="Log a run that is already in MLflow once more (default: skip it).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Log finished runs to MLflow (MLFLOW_TRACKING_URI, or sqlite:///<out>/mlflow.db)."""
    result = service.tracking.mlflow_log(list(runs or []), out, again).to_json()
    rows = [
        (Path(e["run"]).name, e["run_id"], len(e["children"]), "already logged" if e["already"] else "logged")
        for e in result["logged"]
    ]
    _emit(
        result,
        as_json,
        lambda: [_table(f"MLflow: {result['tracking_uri']}", ["run", "MLflow run", "model runs", ""], rows)],
        footer=f"see them with `mlflow ui --backend-store-uri {result['tracking_uri']}`",
    )


# --- your digits ---------------------------------------------------------------------------------

mine_app = typer.Typer(
    help="Your own digits: add, import, list, export and delete them (a local store; $DIGITLAB_HOME).",
    no_args_is_help=True,
)
app.add_typer(mine_app, name="mine")
Writer = Annotated[str, typer.Option("--writer", help="Whose digits (default: me).")]
LIST_ROWS = 100  # digits listed in `mine list`'s table
WriterFilter = Annotated[str | None, typer.Option("--writer", help="Only this writer's digits (default: everyone's).")]


def _added_line(added: list[Any], writer: str) -> str:
    new = sum(a.new for a in added)
    already = [a for a in added if not a.new]
    line = f"saved {new} digit{'s' if new != 1 else ''} for {writer}"
    if already:
        line += f"; {len(already)} already stored (id {', '.join(str(a.id) for a in already[:5])})"
    for a in [a for a in added if a.conflict][:5]:
        line += (
            f"\nnote: id {a.id} is already stored as a {a.label}, not a {a.asked}; "
            f"`digitlab mine relabel {a.id} {a.asked}` changes it"
        )
    return line


@mine_app.command("add")
def mine_add(
    files: Annotated[list[Path], typer.Argument(help="Pictures of one digit each (PNG, JPEG, BMP, GIF, TIFF, WebP).")],
    label: Annotated[str, typer.Option("--label", help="The digit they show, 0 to 9 (required).")],
    writer: Writer = "me",
    as_json: Json = False,
) -> None:
    """Save pictures of one digit (all of them, or none if one cannot be read)."""
    added = service.mine.add_pictures([Path(f) for f in files], label, writer, "upload", [str(f) for f in files])
    result = {
        "writer": writer,
        "added": [{"id": a.id, "new": a.new, "label": a.label, "asked": a.asked} for a in added],
    }
    counts = service.mine.counts(writer)
    _emit(
        result,
        as_json,
        lambda: [_counts_table(f"{writer}'s digits", counts)],
        footer=_added_line(added, writer),
    )


def _counts_table(title: str, counts: dict[int, int]) -> Table:
    return _table(title, ["digit", *map(str, range(10)), "all"], [("count", *counts.values(), sum(counts.values()))])


@mine_app.command("import")
def mine_import(
    folder: Annotated[Path, typer.Argument(help="A folder with sub-folders 0 to 9, or files named …label<D>….")],
    writer: Writer = "me",
    as_json: Json = False,
) -> None:
    """Save every labelled picture under a folder; unlabelled or unreadable ones are reported."""
    result = service.mine.import_folder(folder, writer)
    counts = service.mine.counts(writer)
    _emit(
        result,
        as_json,
        lambda: [_counts_table(f"{writer}'s digits", counts)],
        footer=f"imported {result['added']} of {result['files']} pictures for {writer}"
        + (f"; {result['already']} already stored" if result["already"] else ""),
    )
    for path in result["unlabelled"]:
        err_console.print(
            f"skipped: {path}: no label (put it in a sub-folder 0 to 9 or name it …label<D>…)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for path in result["ambiguous"]:
        err_console.print(
            f"skipped: {path}: two labels (its folder and name, or its name twice, say different digits); "
            "rename it so one label remains",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for item in result["unreadable"]:
        err_console.print(f"skipped: {item['error']}", highlight=False, markup=False, soft_wrap=True)
    for c in result["conflicts"]:
        err_console.print(
            f"note: id {c['id']} is already stored as a {c['stored']}, not a {c['asked']}; "
            f"`digitlab mine relabel {c['id']} {c['asked']}` changes it",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@mine_app.command("relabel")
def mine_relabel(
    digit_id: Annotated[int, typer.Argument(metavar="ID", help="The digit's id (see `digitlab mine list`).")],
    label: Annotated[str, typer.Argument(metavar="LABEL", help="Its right label, 0 to 9.")],
    as_json: Json = False,
) -> None:
    """Give a stored digit another label."""
    result = service.mine.relabel(digit_id, label)
    _emit(result, as_json, lambda: [], footer=f"id {digit_id}: from {result['old']} to {result['label']}")


@mine_app.command("list")
def mine_list(writer: WriterFilter = None, as_json: Json = False) -> None:
    """How many digits of each kind, per writer, and every digit's id."""
    result = service.mine.listing(writer)
    shown = result["digits"][-LIST_ROWS:][::-1]  # the newest first; --json has them all
    rows = [(d["id"], d["writer"], d["label"], d["source"], d["created"]) for d in shown]

    def tables() -> list[Table]:
        tables = [_counts_table(f"{writer or 'all writers'}: {result['n_digits']} digits", result["counts"])]
        if result["writers"]:
            tables.append(_table("writers", ["writer", "digits"], list(result["writers"].items())))
        if rows:
            more = (
                f" (the newest {len(rows)} of {result['n_digits']}; --json lists all)"
                if len(rows) < result["n_digits"]
                else ""
            )
            tables.append(_table(f"digits{more}", ["id", "writer", "label", "source", "saved (UTC)"], rows))
        return tables

    _emit(result, as_json, tables, footer=f"store: {result['store']}")


@mine_app.command("export")
def mine_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write into (created if missing).")],
    fmt: Annotated[
        str, typer.Option("--format", help="idx (t10k-images/labels, 28×28) or png (pictures in 0–9 sub-folders).")
    ] = "idx",
    writer: WriterFilter = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files already in the folder (default: refuse).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Write your digits out as IDX files or PNG pictures (never over existing files without --force)."""
    result = service.mine.export(folder, fmt, writer, force)
    _emit(result, as_json, lambda: [], footer=f"wrote {result['n_digits']} digits as {fmt} to {result['folder']}")


@mine_app.command("rm")
def mine_rm(
    ids: Annotated[list[int], typer.Argument(help="Ids of digits to delete (see `digitlab mine list`).")],
    as_json: Json = False,
) -> None:
    """Delete digits by id."""
    result = service.mine.remove(ids)
    if result["missing"] and not result["removed"]:
        raise DigitlabError(f"no digit with id {', '.join(map(str, result['missing']))}; see `digitlab mine list`.")
    footer = f"removed {len(result['removed'])} digit(s)"
    if result["missing"]:
        footer += f"; no digit with id {', '.join(map(str, result['missing']))}"
    _emit(result, as_json, lambda: [], footer=footer)


@mine_app.command("clear")
def mine_clear(
    writer: Annotated[str, typer.Option("--writer", help="Whose digits to delete (required).")],
    yes: Yes = False,
    as_json: Json = False,
) -> None:
    """Delete every digit of one writer (asks first, unless --yes)."""
    n = sum(service.mine.counts(writer).values())
    if n and not yes:
        if not sys.stdin.isatty():
            raise DigitlabError(f"would delete {n} digits of {writer}; add --yes to confirm without a terminal.")
        if not typer.confirm(f"Delete all {n} digits of {writer}?"):
            raise DigitlabError("nothing deleted.")
    result = service.mine.clear(writer)
    _emit(result, as_json, lambda: [], footer=f"removed {result['removed']} digit(s) of {writer}")


@app.command()
def personalise(
    model: Annotated[
        str, typer.Option("--model", help="cnn (fine-tuned), knn or svm (refitted), or a model file (default: cnn).")
    ] = "cnn",
    writer: Writer = "me",
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            help="Passes over your digits when fine-tuning (default: 40 for a few hundred digits, fewer for more, "
            "so 10,000 take about 3 minutes on 2 cores).",
        ),
    ] = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    data_dir: DataDir = None,
    mlflow: Mlflow = False,
    as_json: Json = False,
) -> None:
    """Adapt a saved model to your digits; saves <model>-personal with before/after scores."""
    request = service.PersonaliseRequest(model, writer, epochs, seed, out, data_dir, mlflow)
    reporter = Reporter()
    with reporter.live():
        result = service.personalise(request, reporter).to_json()
    rows = [
        ("your held-out digits", result["held_out"], result["held_out_before"], result["held_out_after"]),
        (f"{result['test_dataset']} test", "", result["test_before"], result["test_after"]),
    ]
    _emit(
        result,
        as_json,
        lambda: [
            _table(
                f"{result['model']} for {result['writer']}: {result['n_digits']} digits ({result['scheme']})",
                ["scored on", "digits", "before", "after"],
                [(a, b, f"{c:.2%}", f"{d:.2%}") for a, b, c, d in rows],
            )
        ],
        footer=f"model saved to {result['model_path']} (adapting took {result['adapt_s']:.1f} s); "
        f"use it with --model {result['model']}",
    )
