"""The CLI's kit: the Typer app, the options every command shares, progress on stderr, tables and JSON out."""

from __future__ import annotations

import json
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

app = typer.Typer(
    help="digitlab: handwritten-digit recognition from the raw MNIST files to evaluated models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


out_console = Console(width=None if sys.stdout.isatty() else 200)


err_console = Console(stderr=True, soft_wrap=True)


Overwrite = Annotated[
    bool, typer.Option("--force", help="Write over an --output file that is already there (default: refuse).")
]


Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (default: table).")]

# where `predict` and `read` write a row a picture, and the Dask cluster that reads them
Rows = Annotated[
    Path | None,
    typer.Option(
        "--output",
        help="Write one row per picture to a .csv, .jsonl or .parquet file instead of printing a table (folders of "
        "any size; the file is written whole or not at all).",
    ),
]
DaskLocal = Annotated[
    int | None, typer.Option("--dask-local", help="With --output: read on a fresh Dask LocalCluster of N workers.")
]
Scheduler = Annotated[
    str | None,
    typer.Option("--scheduler", help="With --output: read on a running Dask cluster, e.g. tcp://HOST:8786."),
]


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


def data_request(dataset: str, data_dir: Path | None, seed: int, quick: bool = False) -> service.DataRequest:
    return service.DataRequest(dataset=dataset, data_dir=data_dir, seed=seed, quick=quick)


def emit(
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


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for k, col in enumerate(columns):
        numeric = bool(rows) and all(isinstance(row[k], int | float) for row in rows)
        table.add_column(col, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(fmt_value(v) for v in row))
    return table


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


RunArg = Annotated[
    str | None,
    typer.Argument(help="Run folder, or its name under --out (default: the latest run).", show_default=False),
]


EVIDENCE = {
    "cnn": "Integrated Gradients + occlusion",
    "lr": "weights × input",
    "mlp": "most active units",
    "occlusion": "occlusion",
}


Yes = Annotated[bool, typer.Option("--yes", help="Do not ask before deleting (default: ask on a terminal).")]


Force = Annotated[bool, typer.Option("--force", help="Also remove the latest run (default: never).")]


def split_names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


Writer = Annotated[str, typer.Option("--writer", help="Whose digits (default: me).")]


LIST_ROWS = 100  # digits listed in `mine list`'s table


WriterFilter = Annotated[str | None, typer.Option("--writer", help="Only this writer's digits (default: everyone's).")]
