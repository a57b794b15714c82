"""Prediction through one ``Predictor``: the CLI's ``predict``, the dashboard's Try it and the server.

A ``Predictor`` loads one saved model once and reads any picture (path, bytes, PIL image or
array) through ``images.to_mnist``; each answer is a ``Prediction``: label, confidence, top 3,
and whether the picture was blank, the answer uncertain or the file unreadable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.images import is_blank, to_mnist
from digitlab.models.store import load_model, model_name
from digitlab.service.lookup import by_reading, find_model, run_models

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


class Predictor:
    """One saved model, loaded once, that reads pictures of digits."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.model, self.metadata = load_model(self.path)
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

    @classmethod
    def for_model(cls, spec: str, out: Path) -> Predictor:
        """A model file, or the newest saved model of that name that reads 28×28 pictures."""
        return cls(find_model(spec, out, PICTURE_SHAPE))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for (n, 28, 28) uint8 images: (n, k)."""
        return np.asarray(self.model.predict_proba(images), dtype=np.float64)

    def predict_image(self, image: np.ndarray, name: str = "image") -> Prediction:
        """One (28, 28) uint8 image (from ``read_picture``)."""
        if is_blank(image):
            return Prediction(name, "blank", model=self.name)
        return self.answer(name, self.probabilities(image[None])[0])

    def predict(self, sources: Sequence[Any], names: Sequence[str] | None = None) -> list[Prediction]:
        """One prediction per picture; an unreadable one is an error row and the others are still read."""
        rows: list[Prediction | None] = []
        images: list[np.ndarray] = []
        labels = [str(names[k] if names else source) for k, source in enumerate(sources)]
        for source, name in zip(sources, labels, strict=True):
            try:
                image = read_picture(source, name)
            except DigitlabError as exc:
                rows.append(Prediction(name, "error", error=str(exc), model=self.name))
                continue
            if is_blank(image):
                rows.append(Prediction(name, "blank", model=self.name))
                continue
            rows.append(None)
            images.append(image)
        proba = self.probabilities(np.stack(images)) if images else np.zeros((0, len(self.classes)))
        pending = [name for name, row in zip(labels, rows, strict=True) if row is None]
        answers = iter([self.answer(name, p) for name, p in zip(pending, proba, strict=True)])
        return [row if row is not None else next(answers) for row in rows]

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


def run_predictors(run: Path) -> tuple[list[Predictor], list[str]]:
    """Every model of a run that reads 28×28 pictures, the best reader of real pictures first (``by_reading``);
    problems as one line each."""
    predictors: list[Predictor] = []
    problems: list[str] = []
    for saved in by_reading(run_models(run)):
        try:
            predictors.append(Predictor(saved.path))
        except DigitlabError as exc:
            problems.append(str(exc))
    return predictors, problems


def _one_openmp_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")  # OpenMP's setting is per thread: this thread only


# One image needs no thread team, and a team waiting at its barriers on a busy machine (a browser
# drawing on the same cores) turns a 1 ms CNN call into 100 ms. Single pictures are read on this thread.
_ONE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="digitlab-predict", initializer=_one_openmp_thread)


def predict_each(predictors: Sequence[Predictor], image: np.ndarray, name: str = "image") -> list[Prediction]:
    """Every predictor's answer for one (28, 28) image, in order, computed on one thread."""
    return _ONE_THREAD.submit(lambda: [p.predict_image(image, name) for p in predictors]).result()
