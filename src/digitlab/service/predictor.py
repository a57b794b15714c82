"""The one reading path: pictures -> answers, for the CLI's ``predict`` (files, folders, batch, Dask),
the dashboard (Try it, Your digits), the server (REST, v2, micro-batching) and explain.

A ``Predictor`` loads one saved model once. ``read`` takes any pictures (paths, bytes, PIL
images, arrays) through ``images.to_mnist`` (intake: an unreadable one is an error row) and
hands the 28×28 images to ``answers``, the one place that decides: a blank picture
(``images.is_blank``) is answered without the model, the others go through the model in one
call, and each answer is uncertain below ``UNCERTAIN``. The server's micro-batching
(``batching.Batcher``) ends in the same ``answers``, with the model call made for many
requests at once.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.data.pictures import inked_rows, to_mnist
from digitlab.data.pictures import is_blank as is_blank  # the one blank check (service.is_blank of earlier names)
from digitlab.models import shipped
from digitlab.models.store import load_model, model_name
from digitlab.runs.lookup import by_reading, find_model, run_models

UNCERTAIN = 0.5  # below this top probability a prediction is reported as uncertain
PICTURE_SHAPE = (28, 28)  # what to_mnist makes, so what a model must read


@dataclass(frozen=True)
class Prediction:
    file: str  # the picture's name as given
    status: str  # "ok", "uncertain", "blank" (no ink) or "error" (unreadable)
    label: str | None = None
    confidence: float | None = None
    top3: tuple[tuple[str, float], ...] = ()
    probabilities: Mapping[str, float] = field(default_factory=dict)  # class name -> probability
    error: str | None = None
    model: str = ""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"file": self.file, "status": self.status}
        if self.label is not None:
            row.update(
                label=self.label,
                confidence=self.confidence,
                top3=[{"label": lab, "probability": p} for lab, p in self.top3],
            )
        if self.error is not None:
            row["error"] = self.error
        return row


def read_picture(source: Any, name: str = "image") -> np.ndarray:
    """Any picture -> the MNIST-style (28, 28) uint8 image the models see (all zeros: blank)."""
    return to_mnist(source, name)


SMALL_PIXELS = 1_000_000  # a picture up to this many pixels is read in about 2 ms


def small_picture(blob: bytes) -> bool:
    """Whether ``blob`` is a picture of at most ``SMALL_PIXELS`` pixels, by its header alone (a few µs; an
    unreadable one counts as small: reading it fails at once)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as img:  # the header only: nothing is decoded
            return int(img.width) * int(img.height) <= SMALL_PIXELS
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return True


class Predictor:
    """One saved model, loaded once, that reads pictures of digits."""

    def __init__(
        self, path: str | Path, reading: bool = False, loaded: tuple[Any, dict[str, Any]] | None = None
    ) -> None:
        """``reading``: the model is only asked for answers (no explanations, no export): a cnn loads without
        scikit-learn (``nets.CNNReader``), so `digitlab predict` starts faster. ``loaded``: the model and its
        metadata, already loaded (the reading cache's ONNX export of a cnn)."""
        self.path = Path(path)
        self.model, self.metadata = loaded if loaded is not None else load_model(self.path, reading=reading)
        shape = list(self.metadata.get("image_shape", PICTURE_SHAPE))
        self.name = str(self.metadata.get("model", model_name(self.path)))
        if shape != list(PICTURE_SHAPE):
            raise DigitlabError(
                f"{self.path}: model {self.name} was trained on {'×'.join(map(str, shape))} images; use one trained "
                "on 28×28 digits (mnist) to read pictures."
            )
        self.classes = [str(c) for c in self.metadata.get("class_names", [str(c) for c in self.model.classes_])]
        accuracy = self.metadata.get("metrics", {}).get("accuracy")
        self.accuracy = float(accuracy) if isinstance(accuracy, int | float) else None
        self.runtime = "torch"  # or "onnx" once exporting.use_onnx has swapped the model
        self.why = ""  # why this model answers (exporting.load_predictor says: shipped, best saved, named)

    @classmethod
    def for_model(cls, spec: str, out: Path, reading: bool = False) -> Predictor:
        """A model file, or the newest saved model of that name that reads 28×28 pictures."""
        return cls(find_model(spec, out, PICTURE_SHAPE), reading=reading)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for (n, 28, 28) uint8 images: (n, k)."""
        return np.asarray(self.model.predict_proba(images), dtype=np.float64)

    def predict_image(self, image: np.ndarray, name: str = "image") -> Prediction:
        """One (28, 28) uint8 image (from ``read_picture``)."""
        return self.answers(image[None], [name])[0]

    def predict(self, sources: Sequence[Any], names: Sequence[str] | None = None) -> list[Prediction]:
        """One prediction per picture; an unreadable one is an error row and the others are still read."""
        return self.read(sources, names)

    def read(self, sources: Sequence[Any], names: Sequence[str] | None = None) -> list[Prediction]:
        """Pictures -> answers: each read through ``to_mnist`` (an unreadable one is an error row, the others
        are still read), then ``answers`` for all of them at once."""
        labels = [str(names[k] if names else source) for k, source in enumerate(sources)]
        errors: dict[int, Prediction] = {}
        images: list[np.ndarray] = []
        for k, (source, name) in enumerate(zip(sources, labels, strict=True)):
            try:
                images.append(read_picture(source, name))
            except DigitlabError as exc:
                errors[k] = Prediction(name, "error", error=str(exc), model=self.name)
        readable = [name for k, name in enumerate(labels) if k not in errors]
        stack = np.stack(images) if images else np.zeros((0, *PICTURE_SHAPE), np.uint8)
        answered = iter(self.answers(stack, readable))
        return [errors[k] if k in errors else next(answered) for k in range(len(labels))]

    def answers(
        self,
        images: np.ndarray,
        names: Sequence[str],
        probabilities: np.ndarray | None = None,
        inked: Sequence[int] | None = None,
    ) -> list[Prediction]:
        """The answer for each (28, 28) image: blank ones (``is_blank``) without the model, the rest from one
        model call (or from ``probabilities``, the rows of the ``inked`` images when a batcher made that call)."""
        inked = inked_rows(images) if inked is None else list(inked)
        if probabilities is None:
            probabilities = self.probabilities(images[inked]) if inked else np.zeros((0, len(self.classes)))
        rows = [Prediction(name, "blank", model=self.name) for name in names]
        for k, p in zip(inked, probabilities, strict=True):
            rows[k] = self.answer(names[k], np.asarray(p, dtype=np.float64))
        return rows

    def read_one(self, image: np.ndarray, name: str = "image") -> tuple[Prediction, np.ndarray | None]:
        """One (28, 28) image's answer and its class probabilities (None for a blank one): what an explanation
        of the answer starts from, with the one blank decision and the one model call of ``answers``."""
        images = image[None]
        if not inked_rows(images):
            return self.answers(images, [name])[0], None
        probabilities = self.probabilities(images)
        return self.answers(images, [name], probabilities=probabilities, inked=[0])[0], probabilities[0]

    def labels(self, probabilities: np.ndarray) -> list[str]:
        """The most probable class of each row (what v2's ``labels`` output holds)."""
        return [self.classes[int(i)] for i in np.asarray(probabilities).argmax(axis=1)]

    def answer(self, name: str, p: np.ndarray) -> Prediction:
        """The Prediction for class probabilities ``p`` (k,) of the picture called ``name``."""
        order = np.argsort(-p)[:3]
        best = int(order[0])
        return Prediction(
            file=name,
            status="ok" if p[best] >= UNCERTAIN else "uncertain",
            label=self.classes[best],
            confidence=float(p[best]),
            top3=tuple((self.classes[int(i)], float(p[i])) for i in order),
            probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
            model=self.name,
        )


def load_predictors(paths: Sequence[Path]) -> tuple[list[Predictor], list[str]]:
    """A Predictor for each model file that reads 28×28 pictures, in order; the others' problems as one line each."""
    predictors: list[Predictor] = []
    problems: list[str] = []
    for path in paths:
        try:
            predictors.append(Predictor(path))
        except DigitlabError as exc:
            problems.append(str(exc))
    return predictors, problems


def run_predictors(run: Path | None, extra: Sequence[Path] = ()) -> tuple[list[Predictor], list[str]]:
    """The reader digitlab ships (when installed), then every model of a run that reads 28×28 pictures, the best
    reader of real pictures first (``by_reading``), then ``extra`` (your personal models); problems as one line
    each."""
    saved = [m.path for m in by_reading(run_models(run))] if run is not None else []
    return load_predictors([*shipped_reader(), *saved, *extra])


def shipped_reader() -> list[Path]:
    """The shipped reader's file, when this copy of digitlab has it (``models.shipped``)."""
    return [shipped.model_path()] if shipped.available() else []


def _one_openmp_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")  # OpenMP's setting is per thread: this thread only


# One image needs no thread team, and a team waiting at its barriers on a busy machine (a browser
# drawing on the same cores) turns a 1 ms CNN call into 100 ms. Single pictures are read on this thread.
_ONE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="digitlab-predict", initializer=_one_openmp_thread)


def predict_each(predictors: Sequence[Predictor], image: np.ndarray, name: str = "image") -> list[Prediction]:
    """Every predictor's answer for one (28, 28) image, in order, computed on one thread."""
    return _ONE_THREAD.submit(lambda: [p.predict_image(image, name) for p in predictors]).result()
