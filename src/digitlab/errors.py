"""The one exception a user sees: a one-line message that names the culprit and the fix."""

from __future__ import annotations


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
