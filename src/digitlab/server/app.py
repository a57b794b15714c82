"""``digitlab serve``: the recogniser over HTTP, as REST (``/predict``) and the Open Inference Protocol v2.

A face: it parses requests, calls the service layer (``ServedModel``, ``read_picture``,
``check_images``) and writes JSON. Every bad request is a 4xx with ``{"error": "..."}``
naming the problem (400 malformed JSON or base64, 404 unknown model, 413 too large, 415 not
a picture, 422 wrong shape, datatype or length); never a 500 for user input.

Models run on one inference thread per process (one batch at a time: two cores are not
shared by competing thread teams); pictures are decoded on the request threads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from digitlab import service
from digitlab.errors import DigitlabError, NotAPicture, TooLarge
from digitlab.server import schemas


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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


class Batcher:
    """Micro-batching: images of requests that arrive together go through the model as one batch.

    Requests put their images on a queue; one task takes whatever is waiting (up to ``max_images``),
    runs the model once on the inference thread, and hands each request its rows. One image per request
    under load costs one model call per batch, not per request.
    """

    def __init__(self, served: service.ServedModel, thread: ThreadPoolExecutor, max_images: int = 256) -> None:
        self.served, self.thread, self.max_images = served, thread, max_images
        self.queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def probabilities(self, images: np.ndarray) -> np.ndarray:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            size = len(waiting[0][0])
            while not self.queue.empty() and size < self.max_images:
                waiting.append(self.queue.get_nowait())
                size += len(waiting[-1][0])
            live = [(images, future) for images, future in waiting if not future.cancelled()]
            if not live:
                continue
            batch = np.concatenate([images for images, _ in live]) if len(live) > 1 else live[0][0]
            try:
                proba = await loop.run_in_executor(self.thread, self.served.probabilities, batch)
            except Exception as exc:  # handed to each waiting request
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for images, future in live:
                if not future.done():
                    future.set_result(proba[start : start + len(images)])
                start += len(images)


class Limits:
    """ASGI middleware: a cap on the body (413 before the app reads past it) and on each request's time."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def reply(status: int, message: str) -> None:
            if not started:
                await _error(status, message)(scope, receive, send)

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

        try:
            await asyncio.wait_for(self.app(scope, limited_receive, tracked_send), self.timeout_s)
        except HTTPError as exc:
            await reply(exc.status, str(exc))
        except TimeoutError:
            await reply(503, f"the request took longer than {self.timeout_s:g} s; send fewer images at once.")


def create_app(models: list[service.ServedModel], request: service.ServeRequest) -> FastAPI:
    """The FastAPI app serving ``models`` (the first is the default)."""
    by_name = {m.name: m for m in models}
    default = models[0]
    infer_thread = ThreadPoolExecutor(1, thread_name_prefix="digitlab-infer")
    batchers = {m.name: Batcher(m, infer_thread) for m in models}
    version = service.library_version()

    app = FastAPI(
        title="digitlab",
        version=version,
        description="Handwritten-digit recognition: REST (`/predict`) and the Open Inference Protocol v2 (`/v2`).",
    )
    app.add_middleware(Limits, max_bytes=request.max_bytes, timeout_s=request.timeout_s)
    errors = {status: {"model": schemas.ErrorBody} for status in (400, 404, 413, 415, 422)}

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

    def pick(name: str | None) -> service.ServedModel:
        if name is None:
            return default
        if name not in by_name:
            raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(by_name)}.")
        return by_name[name]

    async def probabilities(served: service.ServedModel, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, len(served.classes)), np.float32)
        return await batchers[served.name].probabilities(images)

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
        chosen = list(models) if all else [pick(model)]
        images, names = await _read_body(http, request.max_batch, request.max_bytes)
        results = []
        inked = service.inked_rows(images)
        for served in chosen:
            proba = await probabilities(served, images[inked])
            answers = served.answers(proba, inked, names)
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
            default=default.name, models=[schemas.LoadedModel(**m.metadata()) for m in models]
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

    def versioned(name: str, model_version: str | None) -> service.ServedModel:
        served = pick(name)
        if model_version is not None and model_version != served.version:
            raise HTTPError(404, f"model {name!r} has version {served.version}, not {model_version!r}.")
        return served

    def metadata(served: service.ServedModel) -> schemas.ModelMetadata:
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
        return metadata(versioned(name, None))

    @app.get(
        "/v2/models/{name}/versions/{model_version}",
        response_model=schemas.ModelMetadata,
        responses=errors,  # type: ignore[arg-type]
        summary="Model metadata (one version)",
    )
    async def model_version_metadata(name: str, model_version: str) -> schemas.ModelMetadata:
        return metadata(versioned(name, model_version))

    @app.get("/v2/models/{name}/ready", response_model=schemas.ModelReady, responses=errors, summary="Model ready")  # type: ignore[arg-type]
    async def model_ready(name: str) -> schemas.ModelReady:
        return schemas.ModelReady(name=versioned(name, None).name, ready=True)

    async def run_infer(served: service.ServedModel, http: Request) -> Response:
        body, binary = await _v2_body(http)
        images = _v2_images(body, binary, request.max_batch)
        asked = {o.name: o.parameters or {} for o in body.outputs} if body.outputs else {}
        wanted = list(asked) or ["probabilities", "labels"]
        unknown = [n for n in wanted if n not in ("probabilities", "labels")]
        if unknown:
            raise HTTPError(400, f"outputs: unknown output {unknown[0]!r}; this model has probabilities and labels.")
        proba = await probabilities(served, images)
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
                labels = [served.classes[int(i)] for i in proba.argmax(axis=1)]
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

    return app


def _row(answer: service.Prediction, served: service.ServedModel) -> schemas.ImagePrediction:
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
        service.check_batch(len(files), max_batch)
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
        service.check_batch(len(parsed.arrays), max_batch)
        names = [f"arrays[{k}]" for k in range(len(parsed.arrays))]
        images = service.check_images(parsed.arrays)
        return np.rint(images).astype(np.uint8), names
    assert parsed.images is not None
    service.check_batch(len(parsed.images), max_batch)
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
    """A few small pictures are decoded on the event loop (a thread hop costs more); the rest on a thread."""
    if len(blobs) <= 4 and sum(map(len, blobs)) <= 64 * 1024:
        return _decode(blobs, names)
    return await run_in_threadpool(_decode, blobs, names)


def _decode(blobs: list[bytes], names: list[str]) -> np.ndarray:
    return np.stack([service.read_picture(blob, name) for blob, name in zip(blobs, names, strict=True)])


async def _v2_body(http: Request) -> tuple[schemas.InferenceRequest, bytes]:
    """The JSON of an infer request and the binary data after it (the binary tensor extension), if any."""
    raw = await http.body()
    length = http.headers.get("inference-header-content-length")
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
    service.check_batch(shape[0], max_batch)
    expected = shape[0] * 28 * 28
    size = (tensor.parameters or {}).get("binary_data_size")
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
        if any(isinstance(v, bool) for v in flat):
            raise HTTPError(422, "inputs[0].data: values must be numbers, not booleans.")
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


def from_environment() -> FastAPI:
    """The app for each uvicorn worker: the request from ``DIGITLAB_SERVE``, the models loaded once."""
    request = service.ServeRequest.from_env()
    return create_app(service.load_served(request), request)
