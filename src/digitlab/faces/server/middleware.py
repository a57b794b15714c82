"""In front of the routes (outermost first): ``Observe`` (metrics, access log, request id), ``Auth`` (the bearer
token) and ``Limits`` (body size, request time, requests in flight); the one JSON error shape of every 4xx/5xx."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from digitlab.core.errors import DigitlabError, NotAPicture, TooLarge
from digitlab.faces.server import guard, metrics, schemas

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json"})


HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
ERRORS: dict[int | str, dict[str, Any]] = {  # what the routes' docs list as their error answers
    status: {"model": schemas.ErrorBody} for status in (400, 401, 404, 413, 415, 422, 503)
}


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]], Any]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: DigitlabError) -> int:
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, NotAPicture):
        return 415
    return 422


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class Limits:
    """ASGI middleware: a cap on the body (413 before the app reads past it), on each request's time, and on
    the requests answered at once (503 with ``Retry-After`` past ``max_in_flight``; health and metrics exempt)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float, max_in_flight: int) -> None:
        self.app, self.max_bytes, self.timeout_s, self.max_in_flight = app, max_bytes, timeout_s, max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def reply(status: int, message: str, headers: dict[str, str] | None = None) -> None:
            if not started:
                await error_response(status, message, headers)(scope, receive, send)

        if self.in_flight >= self.max_in_flight and scope.get("path") not in HEALTH_PATHS:
            await reply(
                503,
                f"the server is answering {self.in_flight} requests; try again in a moment.",
                {"Retry-After": str(guard.RETRY_AFTER_S)},
            )
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await reply(400, f"Content-Length {length.decode(errors='replace')!r} is not a number.")
                return
            if declared > self.max_bytes:
                await reply(413, f"request body of {declared:,} bytes; the limit is {self.max_bytes:,}.")
                return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPError(413, f"request body over the limit of {self.max_bytes:,} bytes.")
            return message

        self.in_flight += 1
        try:
            await asyncio.wait_for(self.app(scope, limited_receive, tracked_send), self.timeout_s)
        except HTTPError as exc:
            await reply(exc.status, str(exc))
        except TimeoutError:
            await reply(503, f"the request took longer than {self.timeout_s:g} s; send fewer images at once.")
        finally:
            self.in_flight -= 1


class Auth:
    """ASGI middleware: with a token, every route but health and docs wants ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.token is None or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = given.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
            await self.app(scope, receive, send)
            return
        why = "a wrong token" if given else "no token"
        await error_response(
            401,
            f"{why}; send the header `Authorization: Bearer <token>` (the token of `digitlab serve --token-file`).",
            {"WWW-Authenticate": "Bearer"},
        )(scope, receive, send)


class Observe:
    """ASGI middleware, outermost: every request counted (route, method, status), timed, and written to the
    access log, with its ``X-Request-ID`` (the caller's, or a new one) sent back."""

    def __init__(self, app: ASGIApp, routes: Callable[[dict[str, Any]], str], access: metrics.AccessLog) -> None:
        self.app, self.routes, self.access = app, routes, access

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = metrics.request_id(scope)
        status, bytes_in, bytes_out = 500, 0, 0
        route: str | None = None

        def count(answered: int) -> str:
            """The request counted once, as its answer starts: a client that has the answer sees it counted."""
            found = self.routes(scope)
            metrics.REQUESTS.labels(found, scope.get("method", ""), str(answered)).inc()
            if answered >= 400:
                metrics.ERRORS.labels(found, str(answered)).inc()
            return found

        async def counted_receive() -> dict[str, Any]:
            nonlocal bytes_in
            message: dict[str, Any] = await receive()
            bytes_in += len(message.get("body", b""))
            return message

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status, bytes_out, route
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = count(status)
                message = dict(message, headers=[*message.get("headers", []), (b"x-request-id", rid.encode())])
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            metrics.IN_FLIGHT.dec()
            if route is None:  # no answer was started (the connection went, or a bug): counted as a 500
                route = count(status)
            elapsed = time.perf_counter() - started
            metrics.LATENCY.labels(route).observe(elapsed)
            if self.access.enabled:  # the entry is made only when there is a log to write it to
                self.access.write(metrics.access_entry(scope, route, status, elapsed, bytes_in, bytes_out, rid))


def loads_json(data: bytes) -> Any:
    """orjson when installed (the serve extra): it parses a batch of 256 arrays in about half json's time."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the serve extra
        return json.loads(data)
    return orjson.loads(data)
