"""What keeps ``digitlab serve`` up against hostile clients: connections, slow headers, log floods, orphans.

- ``GuardedH11``: uvicorn's h11 protocol with a cap on open connections and a header timeout.
  A connection must send complete request headers within ``header_timeout_s`` of opening or of
  its last response (slowloris: a byte a second keeps uvicorn's own keep-alive timer from ever
  firing). Past ``max_connections`` the oldest idle connection is closed to make room: first
  one that never sent a request, then one idling between requests; when every connection is
  busy with a request, the newcomer gets ``503`` with ``Retry-After`` and is closed. So the
  process never runs out of file descriptors, whatever clients do.
- ``RateLimitedLog``: a logging filter that lets one record of each kind through per interval
  and adds how many like it were held back ("… (417 more like this in the last 10 s)").
- ``die_with_parent``: a worker process gets SIGTERM when its supervisor dies (``kill -9``), so
  no orphan keeps serving the port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from digitlab.core.settings import HEADER_TIMEOUT_S, MAX_CONNECTIONS

PARENT_ENV = "DIGITLAB_SERVE_PARENT"  # the supervisor's pid, in each worker of `serve --workers N`
RETRY_AFTER_S = 1


def busy_reply(message: str, retry_after: int = RETRY_AFTER_S) -> bytes:
    """A whole HTTP/1.1 503 response with ``Retry-After``, written straight to a socket."""
    body = json.dumps({"error": message}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"retry-after: {retry_after}\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Table:
    """The connections of this process: the idle ones in the order they became idle, and how many are open."""

    def __init__(self) -> None:
        self.fresh: OrderedDict[GuardedH11, None] = OrderedDict()  # never sent a whole request yet
        self.kept: OrderedDict[GuardedH11, None] = OrderedDict()  # idle between requests (keep-alive)
        self.open = 0

    def idle(self, conn: GuardedH11, fresh: bool) -> None:
        (self.fresh if fresh else self.kept)[conn] = None

    def busy(self, conn: GuardedH11) -> None:
        self.fresh.pop(conn, None)
        self.kept.pop(conn, None)

    def oldest_idle(self, besides: GuardedH11) -> GuardedH11 | None:
        for queue in (self.fresh, self.kept):
            for conn in queue:
                if conn is not besides:
                    return conn
        return None


TABLE = _Table()


def limits() -> tuple[int, float]:
    """(max connections, header timeout) for this process: from the ServeRequest that ``digitlab serve`` set."""
    from digitlab.service.serving import SERVE_ENV, ServeRequest

    if os.environ.get(SERVE_ENV):
        request = ServeRequest.from_env()
        return request.max_connections, request.header_timeout_s
    return MAX_CONNECTIONS, HEADER_TIMEOUT_S


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a connection cap (evicting idle connections first) and a header timeout."""

    settings: tuple[int, float] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedH11.settings is None:
            GuardedH11.settings = limits()
        self.max_connections, self.header_timeout_s = GuardedH11.settings
        self.header_timer: asyncio.TimerHandle | None = None
        self.in_request = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        TABLE.open += 1
        if TABLE.open > self.max_connections:
            victim = TABLE.oldest_idle(besides=self)
            if victim is None:  # every other connection is in the middle of a request
                transport.write(busy_reply(f"the server has {self.max_connections} connections busy; try again."))
                transport.close()
                return
            victim.close_now()
        self._idle(fresh=True)

    def _idle(self, fresh: bool) -> None:
        self.in_request = False
        TABLE.idle(self, fresh)
        self._cancel_header_timer()
        self.header_timer = self.loop.call_later(self.header_timeout_s, self.close_now)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def close_now(self) -> None:
        """Drop the connection (no request in progress: nothing to answer)."""
        TABLE.busy(self)
        self._cancel_header_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if not self.in_request and self.cycle is not None and not self.cycle.response_complete:
            self.in_request = True  # whole request headers came: the app has it now, and its own timeout
            self._cancel_header_timer()
            TABLE.busy(self)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._idle(fresh=False)

    def connection_lost(self, exc: Exception | None) -> None:
        TABLE.open -= 1
        TABLE.busy(self)
        self._cancel_header_timer()
        super().connection_lost(exc)


class RateLimitedLog(logging.Filter):
    """One record per kind (logger, message template, exception type) per ``interval_s``, with a count of the rest."""

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (
            record.name,
            str(record.msg),
            record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "",
        )
        now = time.monotonic()
        last, held = self.seen.get(kind, (float("-inf"), 0))
        if now - last < self.interval_s:
            self.seen[kind] = (last, held + 1)
            return False
        if len(self.seen) > 1000:  # a flood of distinct messages: forget the old kinds
            self.seen.clear()
        self.seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval_s:g} s)"
        return True


def quiet_logs(interval_s: float = 10.0) -> None:
    """Put the rate limit on every handler the server logs through (uvicorn's, asyncio's, ours)."""
    limit = RateLimitedLog(interval_s)
    for name in ("uvicorn.error", "uvicorn", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(limit)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RateLimitedLog) for f in handler.filters):
            handler.addFilter(limit)


def die_with_parent(parent: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies; if it is already gone, stop now."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to ask
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
