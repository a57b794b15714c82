"""``digitlab serve``: the recogniser over HTTP, as REST (``/predict``) and the Open Inference Protocol v2.

A face: it parses requests, calls the service layer (``ServedModel``, ``read_picture``,
``check_images``) and writes JSON. Every bad request is a 4xx with ``{"error": "..."}``
naming the problem (400 malformed JSON or base64, 404 unknown model, 413 too large, 415 not
a picture, 422 wrong shape, datatype or length); never a 500 for user input.

Models run on one inference thread per process (one batch at a time: two cores are not
shared by competing thread teams); pictures are decoded on worker threads, never on the event
loop. In front of the routes (outermost first): ``Observe`` (Prometheus metrics, the JSON-lines
access log, ``X-Request-ID``), ``Auth`` (the optional bearer token; health routes stay open),
``Limits`` (body size, request time, requests in flight: 503 with ``Retry-After`` past it).
Connections themselves are capped and timed in ``guard.GuardedH11``.

The models can be reloaded from disk without a restart (SIGHUP, or the v2 repository ``load``
route): the new set is loaded beside the old one and swapped in; requests in flight finish
on the models they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.server import guard, metrics, rest, v2
from digitlab.faces.server.middleware import Auth, HTTPError, Limits, Observe, error_response, status_of
from digitlab.faces.server.state import Served


def create_app(models: list[service.serving.ServedModel], request: service.serving.ServeRequest) -> FastAPI:
    """The FastAPI app serving ``models`` (the first is the default)."""
    state = Served(models, request)
    version = service.catalogue.library_version()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        guard.quiet_logs()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(state.reload_logged()))
        yield
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.remove_signal_handler(signal.SIGHUP)

    app = FastAPI(
        title="digitlab",
        version=version,
        description="Handwritten-digit recognition: REST (`/predict`) and the Open Inference Protocol v2 (`/v2`).",
        lifespan=lifespan,
    )
    app.state.served = state

    def route_of(scope: dict[str, Any]) -> str:
        return _template(app.router.routes, scope) or "unmatched"

    app.add_middleware(
        Limits, max_bytes=request.max_bytes, timeout_s=request.timeout_s, max_in_flight=request.max_in_flight
    )
    app.add_middleware(Auth, token=request.token())
    app.add_middleware(Observe, routes=route_of, access=metrics.AccessLog(request.access_log))

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, exc: HTTPError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(_: Request, exc: DigitlabError) -> JSONResponse:
        return error_response(status_of(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def _starlette_error(http: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, f"no endpoint {http.url.path}; the endpoints are listed at /docs.")
        if exc.status_code == 405:
            return error_response(405, f"{http.method} is not allowed on {http.url.path}; see /docs.")
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "malformed JSON body; send a JSON object.")
        first = problems[0] if problems else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error_response(422, f"{where or 'body'}: {first.get('msg', 'invalid')}.")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:  # a bug, never user input: no traceback out
        return error_response(500, f"internal error ({type(exc).__name__}); the server is still running.")

    # operations; the REST and v2 routes are in rest.py and v2.py
    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.include_router(rest.router)
    app.include_router(v2.router)
    return app


def from_environment() -> FastAPI:
    """The app for each uvicorn worker: the request from ``DIGITLAB_SERVE``, the models loaded once.

    A worker of ``serve --workers N`` asks to be stopped when its supervisor dies (``kill -9``), so no
    orphan keeps the port."""
    parent = os.environ.get(guard.PARENT_ENV)
    if parent and parent.isdigit():
        guard.die_with_parent(int(parent))
    request = service.serving.ServeRequest.from_env()
    return create_app(service.serving.load_served(request), request)


def _template(routes: Any, scope: dict[str, Any]) -> str | None:
    """The path template of the route that answers ``scope`` (``/v2/models/{name}/infer``), looking inside the
    routers that FastAPI includes as one entry; None when no route matches."""
    for route in routes:
        matched, _ = route.matches(scope)
        if matched != Match.FULL:
            continue
        path = getattr(route, "path", None)
        if path:
            return str(path)
        inner = getattr(route, "original_router", None) or route
        found = _template(getattr(inner, "routes", ()), scope)
        return found or "other"
    return None
