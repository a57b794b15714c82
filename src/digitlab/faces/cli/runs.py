"""`digitlab runs` (list, show, diff, rm, prune, mlflow) and `report`: the run folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.cli.app import (
    Force,
    Json,
    Out,
    Overwrite,
    Reporter,
    RunArg,
    Yes,
    app,
    emit,
    err_console,
    fmt_value,
    make_table,
)


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
    emit(result, as_json, lambda: [make_table("report", ["", "value"], rows)])


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
    emit(
        result,
        as_json,
        lambda: [
            make_table(
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
    emit(
        {"run": str(path), "facts": facts},
        as_json,
        lambda: [make_table(path.name, ["", "value"], [(k, fmt_value(v)) for k, v in facts.items()])],
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
    emit(
        {"a": a, "b": b, "rows": rows},
        as_json,
        lambda: [
            make_table(
                f"{a} vs {b}",
                ["", "a", "b", "b - a"],
                [
                    (
                        r["key"],
                        fmt_value(r["a"]),
                        fmt_value(r["b"]),
                        "" if r["difference"] is None else f"{r['difference']:+.4g}",
                    )
                    for r in rows
                ],
            )
        ],
        footer=f"{sum(not r['same'] for r in rows)} of {len(rows)} values differ",
    )


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
    emit(
        result,
        as_json,
        lambda: [make_table(f"MLflow: {result['tracking_uri']}", ["run", "MLflow run", "model runs", ""], rows)],
        footer=f"see them with `mlflow ui --backend-store-uri {result['tracking_uri']}`",
    )
