"""The one exception a user sees: a one-line message that names the culprit and the fix."""

from __future__ import annotations


class DigitlabError(Exception):
    """An error caused by input or environment, reported to the user as one line.

    The message must name the file or value at fault and say what to do about it.
    Faces (CLI, dashboard) print it without a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line
