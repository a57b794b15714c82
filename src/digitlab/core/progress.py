"""Progress as events: library code emits them, a face decides how to show them.

Nothing in the library prints. Long work calls ``emit(Event(...))``; whoever started the
work (the CLI, the dashboard, a test) receives the events through ``reporting(callback)``,
which holds the callback in a context variable, so no function needs a ``status`` argument
and a model deep inside a pipeline reports its epochs the same way as the pipeline itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from digitlab.core.errors import Interrupted, pending_stop

JOB = 0  # level of the steps of a whole job (data, explore, each model, report)
INNER = 1  # level of the work inside a step (epochs, downloads, folds)


@dataclass(frozen=True)
class Event:
    step: str  # what is running: "data", "explore", "train cnn", "epoch" …
    done: int = 0  # units finished within the step
    total: int = 0  # units in the step (0: unknown)
    message: str = ""  # one line for people
    metrics: Mapping[str, float] = field(default_factory=dict)  # e.g. epoch loss, val_accuracy
    level: int = JOB  # JOB: a step of the whole job; INNER: progress inside one step

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total > 0 else None


Progress = Callable[[Event], None]

_CURRENT: ContextVar[Progress | None] = ContextVar("digitlab_progress", default=None)


def emit(event: Event) -> None:
    """Send ``event`` to the callback of the enclosing ``reporting`` block (if any).

    Also a checkpoint: a stop signal whose exception was swallowed where it landed (a
    finaliser, a library's bare ``except``) is raised here, at the next step or epoch.
    """
    stop = pending_stop()
    if stop is not None:
        raise Interrupted(stop)
    callback = _CURRENT.get()
    if callback is not None:
        callback(event)


def say(step: str, message: str, done: int = 0, total: int = 0, level: int = JOB) -> None:
    emit(Event(step=step, done=done, total=total, message=message, level=level))


@contextmanager
def reporting(callback: Progress | None) -> Iterator[None]:
    """Deliver the events emitted inside the block to ``callback`` (None: drop them)."""
    token = _CURRENT.set(callback)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def log_lines(log: Callable[[str], None] | None) -> Callable[[str], None]:
    """A ``log(message)`` callable for code that reports in plain messages: the given one, or events."""
    if log is not None:
        return log
    return lambda message: say("data", message, level=INNER)


_JOB: ContextVar[list[int] | None] = ContextVar("digitlab_job", default=None)


@contextmanager
def job(total: int) -> Iterator[None]:
    """Count the steps of a whole job, so that each step's event says ``done`` of ``total``."""
    token = _JOB.set([0, total])
    try:
        yield
    finally:
        _JOB.reset(token)


def step(name: str, message: str) -> None:
    """A step of the job begins: one JOB-level event, numbered within the enclosing ``job``."""
    counter = _JOB.get()
    if counter is None:
        emit(Event(name, 0, 0, message))
        return
    emit(Event(name, min(counter[0], counter[1]), counter[1], message))
    counter[0] += 1


def finished(message: str = "done") -> None:
    """The job's last event: ``done == total``."""
    counter = _JOB.get()
    total = counter[1] if counter is not None else 1
    emit(Event("done", total, total, message))
