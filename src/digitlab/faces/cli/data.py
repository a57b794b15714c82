"""`digitlab data fetch|info`, `explore`, `preprocess`: the data and what it looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from digitlab import service
from digitlab.faces.cli.app import (
    DataDir,
    DatasetOpt,
    Json,
    Out,
    Quick,
    Reporter,
    Seed,
    app,
    data_request,
    emit,
    make_table,
)

data_app = typer.Typer(help="Fetch, verify and describe datasets.", no_args_is_help=True)


app.add_typer(data_app, name="data")


def data_tables(info: dict[str, Any]) -> list[Table]:
    splits = make_table(
        f"{info['dataset']}: splits",
        ["split", "X shape", "X dtype", "y shape", "classes"],
        [
            (name, str(tuple(s["x_shape"])), s["x_dtype"], str(tuple(s["y_shape"])), len(info["classes"]))
            for name, s in info["splits"].items()
        ],
    )
    counts = make_table(
        "examples per class",
        ["split", *info["classes"]],
        [(name, *s["per_class"]) for name, s in info["splits"].items()],
    )
    files = make_table(
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
        info = service.data_info(data_request(dataset, data_dir, 0), reporter).to_json()
    emit(
        info,
        as_json,
        lambda: data_tables(info)[2:],
        footer="tried: " + "; ".join(info["attempts"]) if info["attempts"] else None,
    )


@data_app.command("info")
def data_info(dataset: DatasetOpt = "mnist", data_dir: DataDir = None, as_json: Json = False) -> None:
    """Splits, shapes, dtypes, classes, examples per class and where each file came from."""
    info = service.data_info(data_request(dataset, data_dir, 0)).to_json()
    emit(info, as_json, lambda: data_tables(info))


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
        result = service.explore(data_request(dataset, data_dir, seed, quick), out, reporter).to_json()

    def tables() -> list[Table]:
        splits = result["splits"]
        pix = make_table(
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
        counts = make_table(
            f"{result['dataset']}: examples per class (images {tuple(result['image_shape'])})",
            ["split", *result["classes"]],
            [(name, *s["per_class"]) for name, s in splits.items()],
        )
        return [counts, pix]

    emit(result, as_json, tables, footer=f"figures and explore.json in {result['run']}")


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
        result = service.preprocess(data_request(dataset, data_dir, seed, quick), out, reporter).to_json()
    stats = result["stats"]
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                "pixel values before and after",
                ["step", "min", "max", "mean", "std"],
                [(name, s["min"], s["max"], s["mean"], s["std"]) for name, s in stats.items()],
            )
        ],
        footer=f"figures and preprocess.json in {result['run']}",
    )
