"""``digitlab`` and ``python -m digitlab``: signal handlers first, then the (slow) imports, then the CLI.

Ctrl-C (SIGINT) and SIGTERM both end the command cleanly: the run folder being written is
removed, ``runs/latest`` stays where it was, and one line says so (exit code 130 or 143),
also while the heavy libraries are still being imported.
"""

from __future__ import annotations

import signal
import sys
import warnings

from digitlab.errors import Interrupted

INTERRUPTED = "interrupted; nothing was saved from this run"


def _stop(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def entry() -> None:
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if not sys.warnoptions:  # library warnings (torch, scikit-learn) are noise before a table or an error line
        warnings.simplefilter("ignore")
    try:
        from digitlab.cli import main

        code = main()
    except (Interrupted, KeyboardInterrupt) as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the goodbye
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write(f"{INTERRUPTED}\n")
        sys.stderr.flush()
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
