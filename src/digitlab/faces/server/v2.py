"""The Open Inference Protocol v2 routes: server and model metadata, health, ``infer`` (JSON or the binary
tensor extension) and the model repository extension (index, load, unload)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.server import schemas
from digitlab.faces.server.middleware import ERRORS, HTTPError, loads_json
from digitlab.faces.server.state import Served, pick, served_models

router = APIRouter()
DATATYPES = {"UINT8": (0, 255), "FP32": (0.0, 255.0)}  # what /v2 infer accepts for "images"


@router.get("/v2", response_model=schemas.ServerMetadata, summary="Server metadata")
async def server_metadata(http: Request) -> schemas.ServerMetadata:
    return schemas.ServerMetadata(name="digitlab", version=http.app.version, extensions=[])


@router.get("/v2/health/live", response_model=schemas.Live, summary="Server live")
async def live() -> schemas.Live:
    return schemas.Live(live=True)


@router.get("/v2/health/ready", response_model=schemas.Ready, summary="Server ready")
async def ready() -> schemas.Ready:
    return schemas.Ready(ready=True)  # models are loaded before the port is bound


def versioned(state: Served, name: str, model_version: str | None) -> service.batching.Batcher:
    """Model ``name`` (at ``model_version`` when one is asked for), or 404."""
    batcher = pick(state, name)
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


@router.get("/v2/models/{name}", response_model=schemas.ModelMetadata, responses=ERRORS, summary="Model metadata")
async def model_metadata(name: str, state: Served = Depends(served_models)) -> schemas.ModelMetadata:
    return metadata(versioned(state, name, None).served)


@router.get(
    "/v2/models/{name}/versions/{model_version}",
    response_model=schemas.ModelMetadata,
    responses=ERRORS,
    summary="Model metadata (one version)",
)
async def model_version_metadata(
    name: str, model_version: str, state: Served = Depends(served_models)
) -> schemas.ModelMetadata:
    return metadata(versioned(state, name, model_version).served)


@router.get("/v2/models/{name}/ready", response_model=schemas.ModelReady, responses=ERRORS, summary="Model ready")
async def model_ready(name: str, state: Served = Depends(served_models)) -> schemas.ModelReady:
    return schemas.ModelReady(name=versioned(state, name, None).served.name, ready=True)


async def run_infer(batcher: service.batching.Batcher, http: Request, max_batch: int) -> Response:
    served = batcher.served
    body, binary = await _v2_body(http)
    images = _v2_images(body, binary, max_batch)
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
    reply = schemas.InferenceResponse(model_name=served.name, model_version=served.version, id=body.id, outputs=outputs)
    header = reply.model_dump_json(exclude_none=True).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(  # the binary tensor extension: the JSON, then the raw outputs in order
        header + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


INFER_DOCS: dict[str, Any] = {
    "response_model": schemas.InferenceResponse,
    "responses": ERRORS,
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


@router.post("/v2/models/{name}/infer", summary="Inference", **INFER_DOCS)
async def model_infer(name: str, http: Request, state: Served = Depends(served_models)) -> Response:
    return await run_infer(versioned(state, name, None), http, state.request.max_batch)


@router.post("/v2/models/{name}/versions/{model_version}/infer", summary="Inference (one version)", **INFER_DOCS)
async def model_version_infer(
    name: str, model_version: str, http: Request, state: Served = Depends(served_models)
) -> Response:
    return await run_infer(versioned(state, name, model_version), http, state.request.max_batch)


# --- the model repository extension ---------------------------------------------------------------------
@router.post("/v2/repository/index", response_model=list[schemas.RepositoryModel], summary="Models served")
async def repository_index(state: Served = Depends(served_models)) -> list[schemas.RepositoryModel]:
    return [schemas.RepositoryModel(name=m.name, version=m.version, state="READY") for m in state.models]


@router.post(
    "/v2/repository/models/{name}/load",
    response_model=schemas.Loaded,
    responses=ERRORS,
    summary="Load a model from disk again (or add one): the newest saved file of that name is served",
)
async def repository_load(name: str, state: Served = Depends(served_models)) -> schemas.Loaded:
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


@router.post(
    "/v2/repository/models/{name}/unload",
    response_model=schemas.Loaded,
    responses=ERRORS,
    summary="Stop serving a model",
)
async def repository_unload(name: str, state: Served = Depends(served_models)) -> schemas.Loaded:
    names = [m.name for m in state.models]
    if name not in names:
        raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(names)}.")
    if len(names) == 1:
        raise HTTPError(409, f"{name} is the only model served; load another before unloading it.")
    k = names.index(name)
    models = await state.reload([s for i, s in enumerate(state.specs) if i != k])
    return schemas.Loaded(name=name, version=None, models=[m.name for m in models])


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
        doc = loads_json(raw)
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
