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
import base64
import binascii
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from digitlab import service
from digitlab.core.errors import DigitlabError, NotAPicture, TooLarge
from digitlab.faces.server import guard, metrics, schemas

log = logging.getLogger("digitlab.faces.server")
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})


def _loads(data: bytes) -> Any:
    """orjson when installed (the serve extra): it parses a batch of 256 arrays in about half json's time."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the serve extra
        return json.loads(data)
    return orjson.loads(data)


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]], Any]
DATATYPES = {"UINT8": (0, 255), "FP32": (0.0, 255.0)}  # what /v2 infer accepts for "images"


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status(exc: DigitlabError) -> int:
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, NotAPicture):
        return 415
    return 422


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
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
                await _error(status, message, headers)(scope, receive, send)

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
        await _error(
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

        async def counted_receive() -> dict[str, Any]:
            nonlocal bytes_in
            message: dict[str, Any] = await receive()
            bytes_in += len(message.get("body", b""))
            return message

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = dict(message, headers=[*message.get("headers", []), (b"x-request-id", rid.encode())])
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            metrics.IN_FLIGHT.dec()
            route = self.routes(scope)
            elapsed = time.perf_counter() - started
            metrics.REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
            if status >= 400:
                metrics.ERRORS.labels(route, str(status)).inc()
            metrics.LATENCY.labels(route).observe(elapsed)
            if self.access.enabled:  # the entry is made only when there is a log to write it to
                self.access.write(metrics.access_entry(scope, route, status, elapsed, bytes_in, bytes_out, rid))


class Served:
    """The models being served now, each with its micro-batcher; ``reload`` swaps in a fresh set from disk."""

    def __init__(self, models: list[service.serving.ServedModel], request: service.serving.ServeRequest) -> None:
        self.request = request
        self.specs = list(request.models)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="digitlab-infer")
        self.batchers: dict[str, service.batching.Batcher] = {}
        self.lock = asyncio.Lock()
        self._use(models)

    @property
    def models(self) -> list[service.serving.ServedModel]:
        return [b.served for b in self.batchers.values()]

    @property
    def default(self) -> service.batching.Batcher:
        return next(iter(self.batchers.values()))

    def _use(self, models: list[service.serving.ServedModel]) -> None:
        before = [(m.name, m.version, m.runtime) for m in self.models]
        old = self.batchers
        new: dict[str, service.batching.Batcher] = {}
        for served in models:
            kept = old.get(served.name)  # an unchanged model keeps its batcher (and its queue)
            if kept is None or (kept.served.version, kept.served.runtime) != (served.version, served.runtime):
                kept = service.batching.Batcher(served, self.thread, on_batch=_count_batch)
            new[served.name] = kept
        self.batchers = new  # one assignment: a request sees the old set or the new one, never a mix
        for name, batcher in old.items():
            if new.get(name) is not batcher:
                batcher.retire()
        metrics.models_changed(before, [(m.name, m.version, m.runtime) for m in models])

    async def reload(self, specs: list[str] | None = None) -> list[service.serving.ServedModel]:
        """Load ``specs`` (default: what is served) again from disk, then serve them; on failure keep the old set."""
        async with self.lock:
            wanted = list(specs if specs is not None else self.specs)
            request = dataclasses.replace(self.request, models=tuple(wanted))
            try:
                models = await asyncio.to_thread(service.serving.load_served, request)
            except DigitlabError:
                metrics.RELOADS.labels("failed").inc()
                raise
            self.specs = wanted
            self._use(models)
            metrics.RELOADS.labels("ok").inc()
            return models

    async def reload_logged(self) -> None:
        """SIGHUP: reload, and say in one line what is served now (or why the old models stay)."""
        try:
            models = await self.reload()
        except DigitlabError as exc:
            log.error("reload failed, still serving the models loaded before: %s", exc)
            return
        log.warning("reloaded: %s", ", ".join(f"{m.name} ({m.version})" for m in models))


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
        for route in app.router.routes:
            matched, _ = route.matches(scope)
            if matched == Match.FULL:
                return str(getattr(route, "path", "other"))
        return "unmatched"

    app.add_middleware(
        Limits, max_bytes=request.max_bytes, timeout_s=request.timeout_s, max_in_flight=request.max_in_flight
    )
    app.add_middleware(Auth, token=request.token())
    app.add_middleware(Observe, routes=route_of, access=metrics.AccessLog(request.access_log))
    errors = {status: {"model": schemas.ErrorBody} for status in (400, 401, 404, 413, 415, 422, 503)}

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, exc: HTTPError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(_: Request, exc: DigitlabError) -> JSONResponse:
        return _error(_status(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def _starlette_error(http: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no endpoint {http.url.path}; the endpoints are listed at /docs.")
        if exc.status_code == 405:
            return _error(405, f"{http.method} is not allowed on {http.url.path}; see /docs.")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, "malformed JSON body; send a JSON object.")
        first = problems[0] if problems else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg', 'invalid')}.")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:  # a bug, never user input: no traceback out
        return _error(500, f"internal error ({type(exc).__name__}); the server is still running.")

    def pick(name: str | None) -> service.batching.Batcher:
        batchers = state.batchers
        if name is None:
            return state.default
        if name not in batchers:
            raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(batchers)}.")
        return batchers[name]

    # --- REST ------------------------------------------------------------------------------------
    @app.post(
        "/predict",
        response_model=schemas.PredictResponse,
        responses=errors,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                            "required": ["file"],
                        }
                    },
                    "application/json": {"schema": schemas.PredictJSON.model_json_schema()},
                },
            }
        },
        summary="Read the digit in each picture",
    )
    async def predict(
        http: Request,
        model: str | None = Query(None, description="A loaded model (default: the first)."),
        all: bool = Query(False, description="Every loaded model's answer."),
    ) -> schemas.PredictResponse:
        chosen = list(state.batchers.values()) if all else [pick(model)]
        images, names = await _read_body(http, request.max_batch, request.max_bytes)
        results = []
        for batcher in chosen:
            served = batcher.served
            answers = await batcher.answers(images, names)
            results.append(
                schemas.ModelResult(
                    model=served.name,
                    model_version=served.version,
                    predictions=[_row(a, served) for a in answers],
                )
            )
        return schemas.PredictResponse(results=results)

    @app.get("/models", response_model=schemas.ModelsResponse, summary="What is loaded")
    async def loaded() -> schemas.ModelsResponse:
        return schemas.ModelsResponse(
            default=state.default.served.name, models=[schemas.LoadedModel(**m.metadata()) for m in state.models]
        )

    # --- Open Inference Protocol v2 --------------------------------------------------------------
    @app.get("/v2", response_model=schemas.ServerMetadata, summary="Server metadata")
    async def server_metadata() -> schemas.ServerMetadata:
        return schemas.ServerMetadata(name="digitlab", version=version, extensions=[])

    @app.get("/v2/health/live", response_model=schemas.Live, summary="Server live")
    async def live() -> schemas.Live:
        return schemas.Live(live=True)

    @app.get("/v2/health/ready", response_model=schemas.Ready, summary="Server ready")
    async def ready() -> schemas.Ready:
        return schemas.Ready(ready=True)  # models are loaded before the port is bound

    def versioned(name: str, model_version: str | None) -> service.batching.Batcher:
        batcher = pick(name)
        if model_version is not None and model_version != batcher.served.version:
            raise HTTPError(404, f"model {name!r} has version {batcher.served.version}, not {model_version!r}.")
        return batcher

    def metadata(served: service.serving.ServedModel) -> schemas.ModelMetadata:
        return schemas.ModelMetadata(
            name=served.name,
            versions=[served.version],
            platform=served.platform,
            inputs=[schemas.TensorMetadata(name="images", datatype="UINT8", shape=[-1, 28, 28])],
            outputs=[
                schemas.TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, len(served.classes)]),
                schemas.TensorMetadata(name="labels", datatype="BYTES", shape=[-1]),
            ],
        )

    @app.get("/v2/models/{name}", response_model=schemas.ModelMetadata, responses=errors, summary="Model metadata")  # type: ignore[arg-type]
    async def model_metadata(name: str) -> schemas.ModelMetadata:
        return metadata(versioned(name, None).served)

    @app.get(
        "/v2/models/{name}/versions/{model_version}",
        response_model=schemas.ModelMetadata,
        responses=errors,  # type: ignore[arg-type]
        summary="Model metadata (one version)",
    )
    async def model_version_metadata(name: str, model_version: str) -> schemas.ModelMetadata:
        return metadata(versioned(name, model_version).served)

    @app.get("/v2/models/{name}/ready", response_model=schemas.ModelReady, responses=errors, summary="Model ready")  # type: ignore[arg-type]
    async def model_ready(name: str) -> schemas.ModelReady:
        return schemas.ModelReady(name=versioned(name, None).served.name, ready=True)

    async def run_infer(batcher: service.batching.Batcher, http: Request) -> Response:
        served = batcher.served
        body, binary = await _v2_body(http)
        images = _v2_images(body, binary, request.max_batch)
        asked = {o.name: o.parameters or {} for o in body.outputs} if body.outputs else {}
        wanted = list(asked) or ["probabilities", "labels"]
        unknown = [n for n in wanted if n not in ("probabilities", "labels")]
        if unknown:
            raise HTTPError(400, f"outputs: unknown output {unknown[0]!r}; this model has probabilities and labels.")
        proba = await batcher.probabilities(images)
        outputs, blobs = [], []
        for name in wanted:
            if name == "probabilities":
                output = schemas.ResponseOutput(name=name, shape=list(proba.shape), datatype="FP32")
                if asked.get(name, {}).get("binary_data"):
                    raw = np.ascontiguousarray(proba, dtype="<f4").tobytes()
                    output.parameters = {"binary_data_size": len(raw)}
                    blobs.append(raw)
                else:
                    output.data = proba.ravel().tolist()
            else:
                labels = served.predictor.labels(proba)
                output = schemas.ResponseOutput(name=name, shape=[len(labels)], datatype="BYTES", data=labels)
            outputs.append(output)
        reply = schemas.InferenceResponse(
            model_name=served.name, model_version=served.version, id=body.id, outputs=outputs
        )
        header = reply.model_dump_json(exclude_none=True).encode()
        if not blobs:
            return Response(header, media_type="application/json")
        return Response(  # the binary tensor extension: the JSON, then the raw outputs in order
            header + b"".join(blobs),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(header))},
        )

    infer_docs: dict[str, Any] = {
        "response_model": schemas.InferenceResponse,
        "responses": errors,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": schemas.InferenceRequest.model_json_schema()},
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": "Binary tensor extension: the JSON request (its length in the "
                        "Inference-Header-Content-Length header), then each input's raw bytes.",
                    },
                },
            }
        },
    }

    @app.post("/v2/models/{name}/infer", summary="Inference", **infer_docs)
    async def model_infer(name: str, http: Request) -> Response:
        return await run_infer(versioned(name, None), http)

    @app.post("/v2/models/{name}/versions/{model_version}/infer", summary="Inference (one version)", **infer_docs)
    async def model_version_infer(name: str, model_version: str, http: Request) -> Response:
        return await run_infer(versioned(name, model_version), http)

    # --- model repository (Open Inference Protocol's repository extension) -----------------------
    @app.post("/v2/repository/index", response_model=list[schemas.RepositoryModel], summary="Models served")
    async def repository_index() -> list[schemas.RepositoryModel]:
        return [schemas.RepositoryModel(name=m.name, version=m.version, state="READY") for m in state.models]

    @app.post(
        "/v2/repository/models/{name}/load",
        response_model=schemas.Loaded,
        responses=errors,  # type: ignore[arg-type]
        summary="Load a model from disk again (or add one): the newest saved file of that name is served",
    )
    async def repository_load(name: str) -> schemas.Loaded:
        served_names = [m.name for m in state.models]
        if name not in served_names and not service.runs.is_model_name(name):
            raise HTTPError(404, f"unknown model {name!r}; load a registry name such as cnn or cnn-personal.")
        specs = list(state.specs) if name in served_names else [*state.specs, name]
        try:
            models = await state.reload(specs)
        except DigitlabError as exc:  # nothing saved under that name, or a damaged file: the old set stays
            raise HTTPError(404 if "no saved" in str(exc) else 422, str(exc)) from None
        loaded = next((m for m in models if m.name == name), None)
        if loaded is None:
            raise HTTPError(
                404, f"model {name!r} is not served after loading; served: {', '.join(m.name for m in models)}."
            )
        return schemas.Loaded(name=loaded.name, version=loaded.version, models=[m.name for m in models])

    @app.post(
        "/v2/repository/models/{name}/unload",
        response_model=schemas.Loaded,
        responses=errors,  # type: ignore[arg-type]
        summary="Stop serving a model",
    )
    async def repository_unload(name: str) -> schemas.Loaded:
        names = [m.name for m in state.models]
        if name not in names:
            raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(names)}.")
        if len(names) == 1:
            raise HTTPError(409, f"{name} is the only model served; load another before unloading it.")
        k = names.index(name)
        models = await state.reload([s for i, s in enumerate(state.specs) if i != k])
        return schemas.Loaded(name=name, version=None, models=[m.name for m in models])

    # --- operations -------------------------------------------------------------------------------
    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post(
        "/feedback",
        response_model=schemas.FeedbackResponse,
        responses=errors,  # type: ignore[arg-type]
        summary="Store a picture with its right label in the personal digit store (for `digitlab personalise`)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "label": {"type": "integer", "minimum": 0, "maximum": 9},
                                "writer": {"type": "string"},
                            },
                            "required": ["file", "label", "writer"],
                        }
                    },
                    "application/json": {"schema": schemas.FeedbackJSON.model_json_schema()},
                },
            }
        },
    )
    async def feedback(http: Request) -> schemas.FeedbackResponse:
        blob, label, writer = await _feedback_body(http, request.max_bytes)
        added = await run_in_threadpool(_store_feedback, blob, label, writer)
        return schemas.FeedbackResponse(
            id=added.id,
            new=added.new,
            label=added.label,
            writer=added.writer,
            conflict=f"this picture is already stored with label {added.label}" if added.conflict else None,
        )

    return app


def _count_batch(model: str, images: int) -> None:
    metrics.BATCH.labels(model).observe(images)


def _row(answer: service.Prediction, served: service.serving.ServedModel) -> schemas.ImagePrediction:
    doc = answer.to_json()
    return schemas.ImagePrediction(
        **doc,
        blank=answer.status == "blank",
        uncertain=answer.status == "uncertain",
        model=served.name,
        model_version=served.version,
    )


async def _read_body(http: Request, max_batch: int, max_bytes: int) -> tuple[np.ndarray, list[str]]:
    """The pictures of a /predict request: multipart ``file`` fields, or JSON ``images`` / ``arrays``."""
    kind = http.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await http.form(max_files=max_batch + 1, max_fields=max_batch + 1, max_part_size=max_bytes)
        except HTTPException as exc:
            raise HTTPError(400, f"malformed multipart body: {exc.detail}") from None
        files = [f for f in form.getlist("file") if not isinstance(f, str)]
        if not files:
            raise HTTPError(422, "multipart body without `file` fields; send pictures as `file`.")
        service.serving.check_batch(len(files), max_batch)
        blobs = [await f.read() for f in files]
        names = [f.filename or f"file[{k}]" for k, f in enumerate(files)]
        await form.close()
        return await _decoded(blobs, names), names
    if kind != "application/json":
        raise HTTPError(415, f"content type {kind or 'none'!r}; send multipart/form-data or application/json.")
    try:
        body = _loads(await http.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "malformed JSON body; send a JSON object.") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "the JSON body must be an object with `images` or `arrays`.")
    try:
        parsed = schemas.PredictJSON.model_validate(body)
    except ValueError:
        raise HTTPError(422, "the JSON body takes `images` (base64 pictures) or `arrays` (28×28 pixels).") from None
    if (parsed.images is None) == (parsed.arrays is None):
        raise HTTPError(422, "send either `images` (base64 pictures) or `arrays` (28×28 pixels), not both or none.")
    if parsed.arrays is not None:
        service.serving.check_batch(len(parsed.arrays), max_batch)
        names = [f"arrays[{k}]" for k in range(len(parsed.arrays))]
        images = service.serving.check_images(parsed.arrays)
        return np.rint(images).astype(np.uint8), names
    assert parsed.images is not None
    service.serving.check_batch(len(parsed.images), max_batch)
    names = [f"images[{k}]" for k in range(len(parsed.images))]
    blobs = []
    for name, text in zip(names, parsed.images, strict=True):
        if text.startswith("data:") and "," in text:  # a data URL, as a browser's canvas gives
            text = text.split(",", 1)[1]
        try:
            blobs.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise HTTPError(400, f"{name}: not valid base64.") from None
    return await _decoded(blobs, names), names


async def _decoded(blobs: list[bytes], names: list[str]) -> np.ndarray:
    """Pictures are decoded on a worker thread, never on the event loop: a small file may hold 40 megapixels."""
    return await run_in_threadpool(_decode, blobs, names)


def _decode(blobs: list[bytes], names: list[str]) -> np.ndarray:
    return np.stack([service.predictor.read_picture(blob, name) for blob, name in zip(blobs, names, strict=True)])


async def _v2_body(http: Request) -> tuple[schemas.InferenceRequest, bytes]:
    """The JSON of an infer request and the binary data after it (the binary tensor extension), if any."""
    length = http.headers.get("inference-header-content-length")
    kind = http.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = ("application/json", "application/octet-stream") if length is not None else ("application/json",)
    if kind not in allowed:
        raise HTTPError(
            415,
            f"content type {kind or 'none'!r}; send application/json (or application/octet-stream with "
            "Inference-Header-Content-Length for binary data).",
        )
    raw = await http.body()
    binary = b""
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise HTTPError(400, f"Inference-Header-Content-Length {length!r} is not a number.") from None
        if not 0 < size <= len(raw):
            raise HTTPError(400, f"Inference-Header-Content-Length {size} does not fit a body of {len(raw)} bytes.")
        raw, binary = raw[:size], raw[size:]
    try:
        doc = _loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "malformed JSON body; send a JSON object.") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "the JSON body must be an object with `inputs`.")
    try:
        return schemas.InferenceRequest.model_validate(doc), binary
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise HTTPError(422, f"{where or 'body'}: {first.get('msg', 'invalid')}.") from None


def _v2_images(body: schemas.InferenceRequest, binary: bytes, max_batch: int) -> np.ndarray:
    if len(body.inputs) != 1:
        raise HTTPError(422, f"inputs: {len(body.inputs)} tensors; send one, `images`.")
    tensor = body.inputs[0]
    if tensor.name != "images":
        raise HTTPError(422, f"inputs[0].name {tensor.name!r}: this model's input is `images`.")
    if tensor.datatype not in DATATYPES:
        raise HTTPError(422, f"inputs[0].datatype {tensor.datatype!r}: send UINT8 or FP32.")
    shape = tensor.shape
    if len(shape) != 3 or shape[1:] != [28, 28] or shape[0] < 1:
        raise HTTPError(422, f"inputs[0].shape {shape}: send [n, 28, 28] with n >= 1.")
    service.serving.check_batch(shape[0], max_batch)
    expected = shape[0] * 28 * 28
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise HTTPError(422, f"inputs[0].parameters.binary_data_size {size!r}: send a whole number of bytes.")
    if size is not None:
        dtype = np.dtype("<f4") if tensor.datatype == "FP32" else np.dtype(np.uint8)
        if size != expected * dtype.itemsize or len(binary) != size:
            raise HTTPError(
                422,
                f"inputs[0]: {len(binary):,} binary bytes (binary_data_size {size}) for shape {shape}; "
                f"expected {expected * dtype.itemsize:,}.",
            )
        values = np.frombuffer(binary, dtype=dtype).astype(np.float64)
    else:
        if tensor.data is None:
            raise HTTPError(422, "inputs[0].data: missing; send the pixels, or binary_data_size and the bytes.")
        if binary:
            raise HTTPError(422, "binary data after the JSON, but no input has binary_data_size.")
        flat = _flatten(tensor.data)
        if len(flat) != expected:
            raise HTTPError(422, f"inputs[0].data: {len(flat):,} values for shape {shape}; expected {expected:,}.")
        wrong = next((v for v in flat if isinstance(v, bool) or not isinstance(v, int | float)), _NOTHING)
        if wrong is not _NOTHING:
            what = (
                "null"
                if wrong is None
                else type(wrong).__name__.replace("str", "a string").replace("bool", "a boolean")
            )
            raise HTTPError(422, f"inputs[0].data: values must be numbers, not {what} ({wrong!r}).")
        try:
            values = np.asarray(flat, dtype=np.float64)
        except (TypeError, ValueError):
            raise HTTPError(422, "inputs[0].data: values must be numbers.") from None
    low, high = DATATYPES[tensor.datatype]
    if not np.isfinite(values).all() or values.min() < low or values.max() > high:
        raise HTTPError(422, f"inputs[0].data: {tensor.datatype} pixel values must lie in {low}..{high}.")
    if tensor.datatype == "UINT8" and not np.array_equal(values, np.rint(values)):
        raise HTTPError(422, "inputs[0].data: UINT8 values must be whole numbers.")
    return values.reshape(shape).astype(np.float32)


_NOTHING = object()


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


async def _feedback_body(http: Request, max_bytes: int) -> tuple[bytes, int, str]:
    """The picture, its right label and the writer of a /feedback request (multipart or JSON)."""
    kind = http.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await http.form(max_files=2, max_fields=4, max_part_size=max_bytes)
        except HTTPException as exc:
            raise HTTPError(400, f"malformed multipart body: {exc.detail}") from None
        files = [f for f in form.getlist("file") if not isinstance(f, str)]
        if len(files) != 1:
            raise HTTPError(422, "send one picture as `file`, with `label` and `writer` fields.")
        blob = await files[0].read()
        label: Any = form.get("label")
        writer: Any = form.get("writer")
        await form.close()
    elif kind == "application/json":
        try:
            body = schemas.FeedbackJSON.model_validate(_loads(await http.body()))
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(
                422, "the JSON body takes `image` (a base64 picture), `label` (0-9) and `writer`."
            ) from None
        text = body.image.split(",", 1)[1] if body.image.startswith("data:") and "," in body.image else body.image
        try:
            blob = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(400, "image: not valid base64.") from None
        label, writer = body.label, body.writer
    else:
        raise HTTPError(415, f"content type {kind or 'none'!r}; send multipart/form-data or application/json.")
    if label is None or writer is None or isinstance(label, bool):
        raise HTTPError(422, "send the picture's right `label` (0-9) and the `writer` it belongs to.")
    return blob, service.mine.check_label(label), service.mine.check_writer(str(writer))


def _store_feedback(blob: bytes, label: int, writer: str) -> service.mine.Added:
    return service.mine.add_pictures([blob], label, writer, source="correction", names=["file"])[0]


def from_environment() -> FastAPI:
    """The app for each uvicorn worker: the request from ``DIGITLAB_SERVE``, the models loaded once.

    A worker of ``serve --workers N`` asks to be stopped when its supervisor dies (``kill -9``), so no
    orphan keeps the port."""
    parent = os.environ.get(guard.PARENT_ENV)
    if parent and parent.isdigit():
        guard.die_with_parent(int(parent))
    request = service.serving.ServeRequest.from_env()
    return create_app(service.serving.load_served(request), request)
