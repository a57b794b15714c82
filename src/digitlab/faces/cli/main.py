"""The ``digitlab`` command line: options in, one service call, tables (or one JSON object) out.

Each command builds a typed request, hands it to ``digitlab.service`` (which checks it,
does the work in a run folder and reports progress as events) and renders the result: a
table on stdout, or with ``--json`` one JSON object; progress and errors go to stderr.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from digitlab.core.errors import DigitlabError, Interrupted, pending_stop
from digitlab.faces.cli.app import app, err_console

GROUPS = ("data", "models", "reading", "runs", "mine")  # each registers its commands, in the order --help lists them
for _group in GROUPS:
    importlib.import_module(f"digitlab.faces.cli.{_group}")


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
