"""``digitlab`` and ``python -m digitlab``: signal handlers first, then the (slow) imports, then the CLI.

Ctrl-C (SIGINT) and SIGTERM both end the command cleanly: the run folder being written is
removed, ``runs/latest`` stays where it was, and one line says so (exit code 130 or 143),
also while the heavy libraries are still being imported.
"""

from __future__ import annotations

import signal
import sys
import warnings
from typing import Any

from digitlab.core.errors import Interrupted, pending_stop, request_stop, shielding

INTERRUPTED = "interrupted; nothing was saved from this run"


def _stop(signum: int, frame: object) -> None:
    request_stop(signum)
    if not shielding():  # inside `shielded()` the block's end raises it
        raise Interrupted(signum)


def _again(signum: int, frame: object) -> None:
    stop = pending_stop()
    if stop is not None:
        raise Interrupted(stop)


def _swallowed(unraisable: Any) -> None:
    """A stop raised inside a finaliser is swallowed by Python: deliver it again a moment later."""
    if isinstance(unraisable.exc_value, Interrupted):
        signal.setitimer(signal.ITIMER_REAL, 0.01)  # SIGALRM -> _again, in ordinary code
        return
    sys.__unraisablehook__(unraisable)


def entry() -> None:
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGALRM, _again)
    sys.unraisablehook = _swallowed
    if not sys.warnoptions:  # library warnings (torch, scikit-learn) are noise before a table or an error line
        warnings.simplefilter("ignore")
    try:
        from digitlab.faces.cli.main import main

        code = main()
    except (Interrupted, KeyboardInterrupt) as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):  # nothing may interrupt the goodbye
            signal.signal(signum, signal.SIG_IGN)
        sys.stderr.write(f"{INTERRUPTED}\n")
        sys.stderr.flush()
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
    sys.exit(code)


if __name__ == "__main__":
    entry()
