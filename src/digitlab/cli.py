"""The ``digitlab`` command line: each command calls one pipeline step, prints a table
(or, with ``--json``, one JSON object on stdout) and saves its files in a run folder."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from digitlab import pipeline
from digitlab.artifacts import Run, mark_latest, new_run, resolve_run, to_jsonable
from digitlab.errors import DigitlabError
from digitlab.models import registry

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
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (default: table).")]
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
        help=f"Stratified subset: {pipeline.QUICK_TRAIN:,} train / {pipeline.QUICK_TEST:,} test (default: off).",
    ),
]

ModelsOpt = Annotated[
    str, typer.Option("--models", help="Comma-separated registry names (default: lr,knn,svm,mlp,cnn).")
]


class Reporter:
    """Progress on stderr: a live spinner with elapsed time on a terminal, plain lines elsewhere."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._status: Any = None

    def __call__(self, message: str) -> None:
        elapsed = f"[{time.perf_counter() - self.start:6.1f}s]"
        if self._status is not None:
            self._status.update(Text(f"{elapsed} {message}"))
        else:
            err_console.print(f"{elapsed} {message}", highlight=False, markup=False)

    @contextmanager
    def live(self) -> Iterator[Reporter]:
        if err_console.is_terminal:
            with err_console.status("starting") as status:
                self._status = status
                try:
                    yield self
                finally:
                    self._status = None
        else:
            yield self


def _settings(dataset: str, data_dir: Path | None, seed: int, quick: bool = False) -> pipeline.Settings:
    return pipeline.Settings(dataset=dataset, data_dir=data_dir, seed=seed, quick=quick)


@contextmanager
def _run_folder(out: Path, command: str) -> Iterator[Run]:
    """A new run folder; ``runs/latest`` moves to it only when the command completes."""
    run = new_run(out, command)
    try:
        yield run
    except BaseException:
        if not any(p.is_file() for p in run.path.rglob("*")):
            shutil.rmtree(run.path, ignore_errors=True)  # nothing was produced: leave no empty folder
        raise
    mark_latest(run)


def _emit(
    result: dict[str, Any], as_json: bool, tables: Callable[[], Sequence[Table]], footer: str | None = None
) -> None:
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(result)) + "\n")
        return
    for table in tables():
        out_console.print(table)
    if footer:
        out_console.print(footer, highlight=False)


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
        ds = pipeline.load(_settings(dataset, data_dir, 0), reporter)
    info = pipeline.data_info(ds)
    _emit(
        info,
        as_json,
        lambda: _data_tables(info)[2:],
        footer="tried: " + "; ".join(info["attempts"]) if info["attempts"] else None,
    )


@data_app.command("info")
def data_info(dataset: DatasetOpt = "mnist", data_dir: DataDir = None, as_json: Json = False) -> None:
    """Splits, shapes, dtypes, classes, examples per class and where each file came from."""
    ds = pipeline.load(_settings(dataset, data_dir, 0))
    info = pipeline.data_info(ds)
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
    ds = pipeline.load(_settings(dataset, data_dir, seed, quick))
    with _run_folder(out, "explore") as run:
        result = pipeline.explore(ds, run, seed)
    result["run"] = str(run.path)

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
            f"{ds.name}: examples per class (images {tuple(ds.image_shape)})",
            ["split", *ds.class_names],
            [(name, *s["per_class"]) for name, s in splits.items()],
        )
        return [counts, pix]

    _emit(result, as_json, tables, footer=f"figures and explore.json in {run.path}")


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
    ds = pipeline.load(_settings(dataset, data_dir, seed, quick))
    with _run_folder(out, "preprocess") as run:
        result = pipeline.preprocess(ds, run, seed)
    result["run"] = str(run.path)
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
        footer=f"figures and preprocess.json in {run.path}",
    )


# --- models ---------------------------------------------------------------------------------


@app.command()
def models(as_json: Json = False) -> None:
    """List the models in the registry, with when to choose and when to avoid each."""
    specs = [registry.get(n) for n in registry.names()]
    result = {
        "models": [
            {
                "name": s.name,
                "family": s.family,
                "description": s.description,
                "pros": s.pros,
                "cons": s.cons,
                "search_space": {k: [repr(v) for v in vs] for k, vs in s.search_space.items()},
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
    as_json: Json = False,
) -> None:
    """Fit one model, save it with its metadata and print its accuracy and times."""
    registry.get(model)
    reporter = Reporter()
    with reporter.live():
        ds = pipeline.load(_settings(dataset, data_dir, seed, quick), reporter)
        with _run_folder(out, f"train-{model}") as run:
            row = pipeline.train(ds, model, run, seed, reporter)
    result = dict(row, dataset=ds.name, n_train=len(ds.y_train), n_test=len(ds.y_test), seed=seed, run=str(run.path))
    _emit(result, as_json, lambda: [_compare_table(dict(result, models=[row]))], footer=f"model saved to {row['path']}")


@app.command()
def compare(
    models: ModelsOpt = ",".join(pipeline.DEFAULT_MODELS),
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
    as_json: Json = False,
) -> None:
    """Train several models on the same data and seed; table, chart and evaluations."""
    names = registry.parse_names(models)
    reporter = Reporter()
    with reporter.live():
        ds = pipeline.load(_settings(dataset, data_dir, seed, quick), reporter)
        with _run_folder(out, "compare") as run:
            result = pipeline.compare(ds, names, run, seed, reporter)
    result["run"] = str(run.path)
    _emit(result, as_json, lambda: [_compare_table(result)], footer=f"best: {result['best']}; files in {run.path}")


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
    path = pipeline.resolve_model(model, out)
    if path is None:
        raise DigitlabError(
            f"no saved {model!r} model under {out}; run `digitlab train --model {model}` first or pass a model file."
        )
    ds = pipeline.load(_settings(dataset, data_dir, seed, quick))
    with _run_folder(out, f"evaluate-{path.stem}") as run:
        result = pipeline.evaluate_saved(ds, path, run)
        if robust:
            result["robustness"] = pipeline.robustness_of(ds, path)
    result["run"] = str(run.path)

    def tables() -> list[Table]:
        report = result["report"]
        per_class = _table(
            f"{result['model']} on {ds.name}: accuracy {result['accuracy']:.2%}, "
            f"{result['n_errors']} errors of {result['n_test']:,}",
            ["class", "precision", "recall", "f1-score", "support"],
            [
                (c, report[c]["precision"], report[c]["recall"], report[c]["f1-score"], int(report[c]["support"]))
                for c in ds.class_names
            ],
        )
        cm = _table(
            "confusion matrix (rows: true, columns: predicted)",
            ["true", *ds.class_names],
            [(name, *counts) for name, counts in zip(ds.class_names, result["confusion_matrix"], strict=True)],
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

    _emit(result, as_json, tables, footer=f"figures and evaluate-{result['model']}.json in {run.path}")


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(help="Pictures of digits: PNG, JPEG, BMP, GIF, TIFF or WebP.")],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="A model file, or a registry name for the newest saved one under --out (default: cnn)."
        ),
    ] = "cnn",
    out: Out = Path("runs"),
    as_json: Json = False,
) -> None:
    """Read the digit in each picture: label, confidence and top 3."""
    path = pipeline.resolve_model(model, out)
    if path is None:
        raise DigitlabError(
            f"no saved {model!r} model under {out}; run `digitlab train --model {model}` first or pass a model file."
        )
    result = pipeline.predict_files(files, path)
    rows = []
    for r in result["predictions"]:
        if r["status"] in ("ok", "uncertain"):
            top = ", ".join(f"{t['label']} {t['probability']:.0%}" for t in r["top3"])
            rows.append((r["file"], r["label"], f"{r['confidence']:.1%}", r["status"], top))
        else:
            rows.append((r["file"], "", "", r["status"], r.get("error", "no ink found")))
    _emit(
        result,
        as_json,
        lambda: [
            _table(f"predictions by {result['model']}", ["file", "digit", "confidence", "status", "top 3 / note"], rows)
        ],
    )
    if any(r["status"] == "error" for r in result["predictions"]):
        raise typer.Exit(1)


def _check_augmenter(library: str) -> None:
    """Unknown back end, or its library missing: fail before loading or training anything."""
    from digitlab.augment import get_augmenter

    get_augmenter(library).augment(np.zeros((1, 28, 28), np.uint8), np.random.default_rng(0))


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
    as_json: Json = False,
) -> None:
    """Train a model with and without augmentation of its training data; report the gain."""
    from digitlab.augment import names

    registry.get(model)
    libraries = names() if compare_all else [library]
    for lib in libraries:
        _check_augmenter(lib)
    if factor < 1:
        raise DigitlabError(f"--factor {factor}: use 1 or more augmented copies per image.")
    reporter = Reporter()
    with reporter.live():
        ds = pipeline.load(_settings(dataset, data_dir, seed, quick), reporter)
        with _run_folder(out, "augment") as run:
            result = pipeline.augment_compare(ds, libraries, model, run, seed, factor, reporter)
    result["run"] = str(run.path)
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
                f"{model} on {ds.name} ({len(ds.y_train):,} train / {len(ds.y_test):,} test, seed {seed}); "
                "only training images are augmented",
                ["library", "test acc without", "with", "gain pp", "robustness without", "with", "gain pp", "how"],
                rows,
            )
        ],
        footer=f"test split unchanged (SHA-256 {result['results'][0]['test_sha256'][:16]}…); files in {run.path}",
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
    specs = [part.strip() for part in models.split(",") if part.strip()]
    paths = []
    for spec in specs:
        path = pipeline.resolve_model(spec, out)
        if path is None:
            raise DigitlabError(f"no saved {spec!r} model under {out}; run `digitlab train --model {spec}` first.")
        paths.append(path)
    try:
        w = [float(v) for v in weights.split(",")] if weights else None
    except ValueError:
        raise DigitlabError(f"--weights {weights!r}: expected numbers such as 2,1,1.") from None
    ds = pipeline.load(_settings(dataset, data_dir, seed, quick))
    with _run_folder(out, "ensemble") as run:
        result = pipeline.ensemble_saved(ds, paths, run, w, seed)
    result["run"] = str(run.path)
    rows = [(m["model"], f"{m['accuracy']:.2%}", m["path"]) for m in result["members"]]
    rows.append(("ensemble", f"{result['accuracy']:.2%}", result["model_path"]))
    _emit(
        result,
        as_json,
        lambda: [
            _table(f"soft voting on {ds.name} ({len(ds.y_test):,} test images)", ["model", "accuracy", "file"], rows)
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
    as_json: Json = False,
) -> None:
    """Cross-validated search on the training set; the test set scores the refitted best once."""
    from digitlab.tune import check_search, parse_overrides, space_for

    check_search(search)
    space = parse_overrides(param or [])
    space_for(model, space)  # unknown model or parameter: fail before loading anything
    reporter = Reporter()
    with reporter.live():
        ds = pipeline.load(_settings(dataset, data_dir, seed, quick), reporter)
        with _run_folder(out, f"tune-{model}") as run:
            result = pipeline.tune(
                ds,
                model,
                run,
                seed,
                search=search,
                cv=cv,
                n_iter=n_iter,
                train_size=train_size,
                space=space,
                n_jobs=n_jobs,
                scheduler=scheduler,
                dask_local=dask_local,
                status=reporter,
            )
    result["run"] = str(run.path)

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
        f"{result['test']['accuracy']:.2%}; files in {run.path}",
    )


RunArg = Annotated[
    str | None,
    typer.Argument(help="Run folder, or its name under --out (default: the latest run).", show_default=False),
]


def _existing_run(run: str | None, out: Path) -> Path:
    path = resolve_run(out, run)
    if path is None:
        where = f"{run!r} (also looked in {out})" if run else f"no latest run under {out}"
        raise DigitlabError(f"run folder not found: {where}; run `digitlab run` first or pass a run folder.")
    return path


@app.command()
def report(
    run: RunArg = None,
    out: Out = Path("runs"),
    output: Annotated[
        Path | None, typer.Option("--output", help="Where to write the HTML (default: <run>/report.html).")
    ] = None,
    as_json: Json = False,
) -> None:
    """One self-contained HTML report of a run: data, examples, models, evaluation, tuning, augmentation."""
    from digitlab import report as report_lib

    result = report_lib.build(_existing_run(run, out), output)
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


@app.command()
def dashboard(
    run: RunArg = None,
    out: Out = Path("runs"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on (default: 8501).")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on (default: localhost).")] = "localhost",
    browser: Annotated[bool, typer.Option("--browser", help="Open a browser tab (default: off).")] = False,
) -> None:
    """Start the Streamlit dashboard on a run (default: the latest); it loads saved models, never retrains."""
    import os
    import subprocess

    from digitlab.dashboard import APP

    path = _existing_run(run, out) if run else resolve_run(out, None)
    if not 0 < port < 65536:
        raise DigitlabError(f"--port {port}: choose a port between 1 and 65535.")
    env = dict(os.environ, DIGITLAB_RUNS=str(path.parent if path is not None else out.resolve()))
    if path is not None:
        env["DIGITLAB_RUN"] = str(path)
    err_console.print(f"digitlab dashboard on http://{address}:{port} (run: {path or 'none yet'}); Ctrl-C stops it")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    cmd += ["--server.address", address, "--server.headless", str(not browser).lower()]
    cmd += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    cmd += ["--client.toolbarMode", "minimal"]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # the server takes this process's place, so a stop signal reaches it directly
        os.execve(sys.executable, cmd, env)
    try:
        code = subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        code = 0
    if code not in (0, -2, 130):
        raise typer.Exit(code)


@app.command("run")
def run_command(
    models: ModelsOpt = ",".join(pipeline.DEFAULT_MODELS),
    dataset: DatasetOpt = "mnist",
    data_dir: DataDir = None,
    seed: Seed = 0,
    out: Out = Path("runs"),
    quick: Quick = False,
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
    as_json: Json = False,
) -> None:
    """The whole pipeline: data → explore → preprocess → compare → evaluate (→ tune → augment) → report."""
    names = registry.parse_names(models)
    if tune is not None:
        from digitlab.tune import check_search

        registry.get(tune)
        check_search(search)
    if augment is not None:
        _check_augmenter(augment)
        registry.get(augment_model)
    reporter = Reporter()
    with reporter.live(), _run_folder(out, "run") as run:
        result = pipeline.run_all(
            _settings(dataset, data_dir, seed, quick),
            run,
            names,
            reporter,
            tune_model=tune,
            search=search,
            augment_library=augment,
            augment_model=augment_model,
        )
    result["run"] = str(run.path)
    result["seconds"] = time.perf_counter() - reporter.start
    _emit(
        result,
        as_json,
        lambda: [*_data_tables(result["data"])[:2], _compare_table(result["compare"])],
        footer=f"finished in {result['seconds']:.0f} s; everything in {run.path}; report: {result['report']['path']}",
    )


# --- entry points ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; user errors become one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=args, prog_name="digitlab", standalone_mode=False)
    except DigitlabError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing half-written was kept", highlight=False)
        return 130
    except Exception as exc:
        format_message = getattr(exc, "format_message", None)
        if format_message is None:  # a bug, not a usage error: keep the traceback
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"error: {format_message()}{where}", highlight=False, markup=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2))
    return rv if isinstance(rv, int) else 0


def entry() -> None:
    sys.exit(main())
