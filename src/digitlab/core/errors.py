"""The one exception a user sees: a one-line message that names the culprit and the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class DigitlabError(Exception):
    """An error caused by input or environment, reported to the user as one line.

    The message must name the file or value at fault and say what to do about it.
    Faces (CLI, dashboard) print it without a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line


class TooLarge(DigitlabError):
    """Input over a size limit (bytes, pixels, images in a batch): HTTP 413 in the server."""


class NotAPicture(DigitlabError):
    """Bytes that do not decode as a picture: HTTP 415 in the server."""


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM: raised by the signal handlers of ``digitlab``.

    A ``BaseException``, so that nothing catching ``Exception`` swallows it and command-line
    libraries do not turn it into their own abort; every run folder being written is removed.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them


_STOPS: list[int] = []  # signals received by the `digitlab` command, newest last


def request_stop(signum: int) -> None:
    """Remember that a stop signal arrived (the signal handler calls this before raising)."""
    _STOPS.append(signum)


def pending_stop() -> int | None:
    """The stop signal received, if any: long work checks it so that a stop is never lost."""
    return _STOPS[-1] if _STOPS else None


_SHIELDS: list[int] = []  # open `shielded()` blocks


def shielding() -> bool:
    """True inside `shielded()`: the signal handler then only remembers the stop."""
    return bool(_SHIELDS)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold a stop back until the block ends, then raise it.

    For work that must not be cut in the middle: importing PyTorch runs Python code from inside
    its C++ initialisation, and an exception raised there by a signal handler ends the process
    with an abort instead of the one-line goodbye.
    """
    before = len(_STOPS)
    _SHIELDS.append(1)
    try:
        yield
    finally:
        _SHIELDS.pop()
    if not _SHIELDS and len(_STOPS) > before:
        raise Interrupted(_STOPS[-1])
