"""The REST routes: ``POST /predict`` (multipart or base64 JSON, one model or all), ``POST /read`` (whole
numbers: one line of handwriting a picture), ``GET /models`` and ``POST /feedback`` (a picture with its right
label, into the personal digit store)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from digitlab import service
from digitlab.faces.server import schemas
from digitlab.faces.server.middleware import ERRORS, HTTPError, loads_json
from digitlab.faces.server.state import Served, pick, served_models

router = APIRouter()


def _pictures_body(json_body: Any) -> dict[str, Any]:
    """The OpenAPI request body of a route that takes pictures: multipart ``file`` fields, or ``json_body``."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": files}, "required": ["file"]}
                },
                "application/json": {"schema": json_body.model_json_schema()},
            },
        }
    }


@router.post(
    "/predict",
    response_model=schemas.PredictResponse,
    responses=ERRORS,
    openapi_extra=_pictures_body(schemas.PredictJSON),
    summary="Read the digit in each picture",
)
async def predict(
    http: Request,
    model: str | None = Query(None, description="A loaded model (default: the first)."),
    all: bool = Query(False, description="Every loaded model's answer."),
    state: Served = Depends(served_models),
) -> schemas.PredictResponse:
    chosen = list(state.batchers.values()) if all else [pick(state, model)]
    images, names = await _read_body(http, state.request.max_batch, state.request.max_bytes)
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


@router.get("/models", response_model=schemas.ModelsResponse, summary="What is loaded")
async def loaded(state: Served = Depends(served_models)) -> schemas.ModelsResponse:
    return schemas.ModelsResponse(
        default=state.default.served.name, models=[schemas.LoadedModel(**m.metadata()) for m in state.models]
    )


@router.post(
    "/feedback",
    response_model=schemas.FeedbackResponse,
    responses=ERRORS,
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
async def feedback(http: Request, state: Served = Depends(served_models)) -> schemas.FeedbackResponse:
    blob, label, writer = await _feedback_body(http, state.request.max_bytes)
    added = await run_in_threadpool(_store_feedback, blob, label, writer)
    return schemas.FeedbackResponse(
        id=added.id,
        new=added.new,
        label=added.label,
        writer=added.writer,
        conflict=f"this picture is already stored with label {added.label}" if added.conflict else None,
    )


def _row(answer: service.Prediction, served: service.serving.ServedModel) -> schemas.ImagePrediction:
    doc = answer.to_json()
    return schemas.ImagePrediction(
        **doc,
        blank=answer.status == "blank",
        uncertain=answer.status == "uncertain",
        model=served.name,
        model_version=served.version,
    )


@router.post(
    "/read",
    response_model=schemas.ReadResponse,
    responses=ERRORS,
    openapi_extra=_pictures_body(schemas.ReadJSON),
    summary="Read the whole number written in each picture (one line: digits, a decimal point, a leading minus)",
)
async def read(
    http: Request,
    model: str | None = Query(None, description="The digit reader of method segments (default: the first)."),
    method: str = Query("auto", description="lines (the line reader), segments (cut, then --model) or auto."),
    state: Served = Depends(served_models),
) -> schemas.ReadResponse:
    served = pick(state, model).served
    try:
        method = service.numbers.method_for(method)
    except service.DigitlabError as exc:
        raise HTTPError(422, str(exc).replace("--method", "method")) from None
    blobs, names = await _pictures(http, state.request.max_batch, state.request.max_bytes, arrays=False)
    readings = await run_in_threadpool(service.numbers.read_numbers, served.predictor, blobs, names, method)
    lines = method == "lines"
    return schemas.ReadResponse(
        model=service.numbers.LINE_READER if lines else served.name,
        model_version=service.numbers.line_version() if lines else served.version,
        method=method,
        numbers=[schemas.NumberRow(**r.to_json()) for r in readings],
    )


async def _read_body(http: Request, max_batch: int, max_bytes: int) -> tuple[np.ndarray, list[str]]:
    """The pictures of a /predict request: multipart ``file`` fields, or JSON ``images`` / ``arrays``."""
    blobs, names = await _pictures(http, max_batch, max_bytes)
    if isinstance(blobs, np.ndarray):
        return blobs, names
    return await _decoded(blobs, names), names


async def _pictures(http: Request, max_batch: int, max_bytes: int, arrays: bool = True) -> tuple[Any, list[str]]:
    """The body's pictures as bytes (multipart ``file`` fields or JSON ``images``), or, where ``arrays`` are
    taken, JSON ``arrays`` as (n, 28, 28) uint8 images; and their names."""
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
        return blobs, names
    if kind != "application/json":
        raise HTTPError(415, f"content type {kind or 'none'!r}; send multipart/form-data or application/json.")
    try:
        body = loads_json(await http.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "malformed JSON body; send a JSON object.") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "the JSON body must be an object with `images` or `arrays`.")
    if not arrays:  # /read: base64 pictures only
        try:
            texts = schemas.ReadJSON.model_validate(body).images
        except ValueError:
            raise HTTPError(422, "the JSON body takes `images`: base64 pictures of numbers.") from None
    else:
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
        texts = parsed.images
    service.serving.check_batch(len(texts), max_batch)
    names = [f"images[{k}]" for k in range(len(texts))]
    blobs = []
    for name, text in zip(names, texts, strict=True):
        if text.startswith("data:") and "," in text:  # a data URL, as a browser's canvas gives
            text = text.split(",", 1)[1]
        try:
            blobs.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise HTTPError(400, f"{name}: not valid base64.") from None
    return blobs, names


INLINE_PICTURES = 4  # a request of at most this many small pictures is read on the event loop


async def _decoded(blobs: list[bytes], names: list[str]) -> np.ndarray:
    """Pictures are decoded on a worker thread, never on the event loop (a small file may hold 40 megapixels),
    except a few small ones (≤ 1 megapixel by their headers: a canvas, a phone's thumbnail; about 2 ms each),
    for which the hand-off to a thread and back costs more than the reading, and under load the threads'
    turns at the GIL make the slowest answers slower (benchmarks/serve.py)."""
    if len(blobs) <= INLINE_PICTURES and all(service.predictor.small_picture(blob) for blob in blobs):
        return _decode(blobs, names)
    return await run_in_threadpool(_decode, blobs, names)


def _decode(blobs: list[bytes], names: list[str]) -> np.ndarray:
    return np.stack([service.predictor.read_picture(blob, name) for blob, name in zip(blobs, names, strict=True)])


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
            body = schemas.FeedbackJSON.model_validate(loads_json(await http.body()))
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
