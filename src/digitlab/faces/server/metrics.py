"""Prometheus metrics of ``digitlab serve`` (``GET /metrics``) and the JSON-lines access log.

Requests and errors by route and status, latency histograms by route, images per model call,
requests in flight, and the loaded models with their versions. With ``--workers N`` every
worker writes its numbers under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``digitlab serve``) and
``/metrics`` adds them up, so a scrape of any worker sees the whole server.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

disable_created_metrics()  # no *_created series: a scrape reads counts, not when each label first appeared
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter(
    "digitlab_requests", "HTTP requests answered, by route, method and status.", ["route", "method", "status"]
)
ERRORS = Counter("digitlab_request_errors", "HTTP requests answered with a 4xx or 5xx status.", ["route", "status"])
LATENCY = Histogram(
    "digitlab_request_duration_seconds",
    "Seconds from request to response, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
BATCH = Histogram(
    "digitlab_batch_images", "Images in one model call (micro-batches).", ["model"], buckets=BATCH_BUCKETS
)
IN_FLIGHT = Gauge("digitlab_requests_in_flight", "Requests being answered now.", multiprocess_mode="livesum")
MODELS = Gauge(
    "digitlab_model_loaded",
    "1 for each model name and version served now (0 once replaced by a reload).",
    ["model", "version", "runtime"],
    multiprocess_mode="liveall",
)
RELOADS = Counter(
    "digitlab_model_reloads", "Model reloads (SIGHUP or the v2 repository load route), by outcome.", ["outcome"]
)


def exposition() -> tuple[bytes, str]:
    """The text a Prometheus scrape reads: this process's metrics, or every worker's added up."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        prometheus_multiprocess.mark_process_dead(pid)


def models_changed(before: list[tuple[str, str, str]], after: list[tuple[str, str, str]]) -> None:
    for labels in before:
        if labels not in after:
            MODELS.labels(*labels).set(0)
    for labels in after:
        MODELS.labels(*labels).set(1)


class AccessLog:
    """One JSON object per request, a line each, appended to a file (or written to standard error)."""

    def __init__(self, path: Path | None) -> None:
        self.stream: IO[str] | None = None
        if path is None:
            return
        if str(path) == "-":
            self.stream = sys.stderr
        else:
            self.stream = open(Path(path).expanduser(), "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        return self.stream is not None

    def write(self, entry: dict[str, Any]) -> None:
        if self.stream is None:
            return
        with contextlib.suppress(OSError, ValueError):  # a full disk or a closed stream must not stop serving
            self.stream.write(json.dumps(entry, separators=(",", ":")) + "\n")


def access_entry(
    scope: dict[str, Any], route: str, status: int, seconds: float, bytes_in: int, bytes_out: int, request_id: str
) -> dict[str, Any]:
    client = scope.get("client")
    headers = dict(scope.get("headers") or [])
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "client": f"{client[0]}:{client[1]}" if client else None,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "route": route,
        "status": status,
        "ms": round(seconds * 1000, 2),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:200] or None,
    }


def request_id(scope: dict[str, Any]) -> str:
    """The caller's X-Request-ID when it is a sane one, else a new one."""
    given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex
