"""Request and response bodies of ``digitlab serve``: what ``/openapi.json`` describes.

The ``/v2`` bodies follow the Open Inference Protocol (KServe's V2 REST API) field for field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong with the request, in one line.")


class TopClass(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    file: str = Field(description="The picture's field name or file name, or images[k] / arrays[k].")
    status: str = Field(description="ok, uncertain (top probability below 0.5) or blank (no ink).")
    label: str | None = None
    confidence: float | None = None
    top3: list[TopClass] = []
    blank: bool
    uncertain: bool
    model: str
    model_version: str


class ModelResult(BaseModel):
    model: str
    model_version: str
    predictions: list[ImagePrediction]


class PredictResponse(BaseModel):
    results: list[ModelResult] = Field(description="One entry, or one per loaded model with ?all=true.")


class PredictJSON(BaseModel):
    """Either base64 pictures or arrays of pixels."""

    model_config = ConfigDict(extra="forbid")
    images: list[str] | None = Field(None, description="Pictures (PNG, JPEG, BMP, GIF, TIFF, WebP), base64.")
    arrays: list[Any] | None = Field(None, description="28×28 arrays of pixel values 0..255 (ink bright).")


class ReadJSON(BaseModel):
    """Base64 pictures of numbers, one line of writing each."""

    model_config = ConfigDict(extra="forbid")
    images: list[str] = Field(description="Pictures (PNG, JPEG, BMP, GIF, TIFF, WebP), base64 (data URLs too).")


class ReadCharacter(BaseModel):
    label: str = Field(description="0–9, . (a decimal point or comma) or - (a leading minus).")
    box: list[int] = Field(description="x0, y0, x1, y1 in the picture's pixels (x1, y1 exclusive).")
    confidence: float
    top3: list[TopClass] = []
    written: str | None = Field(None, description="What was written when it differs from the label: ',' for a comma.")


class NumberRow(BaseModel):
    file: str
    status: str = Field(description="ok, uncertain (see reasons), blank (no ink) or error (unreadable).")
    text: str | None = Field(None, description="The number as text, e.g. 4817, 12.50, -3.")
    confidence: float | None = None
    uncertain: bool | None = None
    characters: list[ReadCharacter] = []
    reasons: list[str] = []
    error: str | None = None


class ReadResponse(BaseModel):
    model: str
    model_version: str
    method: str = Field(description="lines (the line reader read each line) or segments (cut, then the model).")
    numbers: list[NumberRow]


class LoadedModel(BaseModel):
    name: str
    version: str
    kind: str
    runtime: str
    description: str
    file: str
    test_accuracy: float | None
    dataset: str | None
    dataset_checksums: dict[str, str | None]
    classes: list[str]
    input_shape: list[int]


class ModelsResponse(BaseModel):
    default: str
    models: list[LoadedModel]


# --- Open Inference Protocol v2 -------------------------------------------------------------


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(
        None, description='{"binary_data_size": N}: the data follows the JSON as N raw bytes (binary extension).'
    )
    data: list[Any] | None = Field(None, description="Row-major; flattened or nested (absent when binary).")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description='{"binary_data": true}: raw little-endian bytes.')


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


# --- model repository and feedback ---------------------------------------------------------------


class RepositoryModel(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY: loaded and served.")


class Loaded(BaseModel):
    name: str
    version: str | None = Field(None, description="The version now served (none after unload).")
    models: list[str] = Field(description="Every model served after the change, the default first.")


class FeedbackJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="The picture (PNG, JPEG …), base64 or a data URL.")
    label: int = Field(description="The digit it really shows, 0-9.")
    writer: str = Field(description="Whose digit it is: `digitlab personalise --writer NAME` learns from it.")


class FeedbackResponse(BaseModel):
    id: int = Field(description="The digit's id in the store (`digitlab mine list`).")
    new: bool = Field(description="False when this writer had already stored the same picture.")
    label: int = Field(description="The label stored.")
    writer: str
    conflict: str | None = Field(None, description="Set when the picture was already stored with another label.")
