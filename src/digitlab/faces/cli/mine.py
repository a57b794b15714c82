"""`digitlab mine` (add, import, relabel, list, export, rm, clear) and `personalise`: your own digits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.cli.app import (
    LIST_ROWS,
    DataDir,
    Json,
    Mlflow,
    Out,
    Reporter,
    Seed,
    Writer,
    WriterFilter,
    Yes,
    app,
    emit,
    err_console,
    make_table,
)

mine_app = typer.Typer(
    help="Your own digits: add, import, list, export and delete them (a local store; $DIGITLAB_HOME).",
    no_args_is_help=True,
)


app.add_typer(mine_app, name="mine")


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
    emit(
        result,
        as_json,
        lambda: [_counts_table(f"{writer}'s digits", counts)],
        footer=_added_line(added, writer),
    )


def _counts_table(title: str, counts: dict[int, int]) -> Table:
    return make_table(
        title, ["digit", *map(str, range(10)), "all"], [("count", *counts.values(), sum(counts.values()))]
    )


@mine_app.command("import")
def mine_import(
    folder: Annotated[Path, typer.Argument(help="A folder with sub-folders 0 to 9, or files named …label<D>….")],
    writer: Writer = "me",
    as_json: Json = False,
) -> None:
    """Save every labelled picture under a folder; unlabelled or unreadable ones are reported."""
    result = service.mine.import_folder(folder, writer).to_json()
    counts = service.mine.counts(writer)
    emit(
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
    result = service.mine.relabel(digit_id, label).to_json()
    emit(result, as_json, lambda: [], footer=f"id {digit_id}: from {result['old']} to {result['label']}")


@mine_app.command("list")
def mine_list(writer: WriterFilter = None, as_json: Json = False) -> None:
    """How many digits of each kind, per writer, and every digit's id."""
    result = service.mine.listing(writer).to_json()
    shown = result["digits"][-LIST_ROWS:][::-1]  # the newest first; --json has them all
    rows = [(d["id"], d["writer"], d["label"], d["source"], d["created"]) for d in shown]

    def tables() -> list[Table]:
        tables = [_counts_table(f"{writer or 'all writers'}: {result['n_digits']} digits", result["counts"])]
        if result["writers"]:
            tables.append(make_table("writers", ["writer", "digits"], list(result["writers"].items())))
        if rows:
            more = (
                f" (the newest {len(rows)} of {result['n_digits']}; --json lists all)"
                if len(rows) < result["n_digits"]
                else ""
            )
            tables.append(make_table(f"digits{more}", ["id", "writer", "label", "source", "saved (UTC)"], rows))
        return tables

    emit(result, as_json, tables, footer=f"store: {result['store']}")


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
    result = service.mine.export(folder, fmt, writer, force).to_json()
    emit(result, as_json, lambda: [], footer=f"wrote {result['n_digits']} digits as {fmt} to {result['folder']}")


@mine_app.command("rm")
def mine_rm(
    ids: Annotated[list[int], typer.Argument(help="Ids of digits to delete (see `digitlab mine list`).")],
    as_json: Json = False,
) -> None:
    """Delete digits by id."""
    result = service.mine.remove(ids).to_json()
    if result["missing"] and not result["removed"]:
        raise DigitlabError(f"no digit with id {', '.join(map(str, result['missing']))}; see `digitlab mine list`.")
    footer = f"removed {len(result['removed'])} digit(s)"
    if result["missing"]:
        footer += f"; no digit with id {', '.join(map(str, result['missing']))}"
    emit(result, as_json, lambda: [], footer=footer)


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
    result = service.mine.clear(writer).to_json()
    emit(result, as_json, lambda: [], footer=f"removed {result['removed']} digit(s) of {writer}")


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
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"{result['model']} for {result['writer']}: {result['n_digits']} digits ({result['scheme']})",
                ["scored on", "digits", "before", "after"],
                [(a, b, f"{c:.2%}", f"{d:.2%}") for a, b, c, d in rows],
            )
        ],
        footer=f"model saved to {result['model_path']} (adapting took {result['adapt_s']:.1f} s); "
        f"use it with --model {result['model']}",
    )
