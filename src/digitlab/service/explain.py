"""Look inside: explanations of single predictions and the map of all digits.

``explain`` writes a figure and a JSON file per picture into ``explanations/`` of the model's run;
``digit_map`` writes ``map-<features>-<method>.json`` / ``.npz`` and a figure into the run it maps;
the dashboard reads maps with ``read_map`` and places a drawing with ``place_on_map``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.data.datasets import Dataset
from digitlab.data.pictures import is_blank
from digitlab.runs.folders import Run
from digitlab.runs.lookup import find_run, run_models
from digitlab.service import steps as pipeline
from digitlab.service.batch import picture_files
from digitlab.service.jobs import StepResult, run_dataset, trained_on
from digitlab.service.predictor import Predictor, read_picture

MAP_FEATURES = ("cnn", "pca")
MAP_METHODS = ("umap", "tsne")
MAP_SPLITS = ("test", "all")
NEEDS_TRAINING = ("knn", "svm")  # kinds whose explanations show training digits


@dataclass(frozen=True)
class ExplainRequest:
    files: tuple[Path, ...]
    model: str = "cnn"
    out: Path = Path("runs")
    data_dir: Path | None = None  # where the model's training data is, for k-NN and SVM pictures

    def check(self) -> None:
        if not self.files:
            raise DigitlabError("explain needs at least one picture: digitlab explain digit.png --model cnn")


@dataclass(frozen=True)
class MapRequest:
    run: str | None = None  # a run folder's name or path; default: the latest
    out: Path = Path("runs")
    features: str = "cnn"  # the cnn's penultimate layer, or PCA-50 of pixels
    method: str = "umap"
    split: str = "test"  # "all": training and test digits (70,000 on MNIST)
    seed: int = 0
    data_dir: Path | None = None

    def check(self) -> None:
        from digitlab.service.requests import check_seed

        for value, allowed, option in (
            (self.features, MAP_FEATURES, "--model"),
            (self.method, MAP_METHODS, "--method"),
            (self.split, MAP_SPLITS, "--split"),
        ):
            if value not in allowed:
                raise DigitlabError(f"{option} {value!r}: unknown; use one of {', '.join(allowed)}.")
        check_seed(self.seed)


# --- explanations ---------------------------------------------------------------------------------


def explanation_kind(predictor: Predictor) -> str:
    from digitlab.analysis import explain

    return explain.kind(predictor.model)


def training_digits(metadata: dict[str, Any], data_dir: Path | None = None) -> Dataset | None:
    """The training set a model's metadata names (dataset, quick subset and seed), or None when it cannot be read."""
    try:
        return pipeline.load(trained_on(metadata, data_dir))
    except DigitlabError:
        return None


def explain_image(predictor: Predictor, image: np.ndarray, training: Dataset | None = None) -> Any:
    """The ``explain.Explanation`` of one (28, 28) uint8 image by a loaded predictor."""
    from digitlab.analysis import explain

    pairs = (training.x_train, training.y_train) if training is not None else None
    return explain.explain(predictor.model, image, predictor.name, predictor.classes, pairs)


def explanations_folder(model_path: Path) -> Path:
    """``<run>/explanations`` for a model saved in a run's ``models/``, else ``explanations`` beside the file."""
    parent = model_path.resolve().parent
    return (parent.parent if parent.name == "models" else parent) / "explanations"


def explain(request: ExplainRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Explain each picture with one model: ``explanations/<picture>-<model>.png`` and ``.json``."""
    request.check()
    files = list(picture_files(request.files))
    predictor = Predictor.for_model(request.model, request.out)
    images = []
    for path in files:  # every picture read before anything is written: one bad file, nothing saved
        image = read_picture(path, str(path))
        if is_blank(image):
            raise DigitlabError(f"{path}: no ink found (a blank picture); there is nothing to explain.")
        images.append((str(path), image))
    with progress.reporting(on_progress):
        training = None
        if explanation_kind(predictor) in NEEDS_TRAINING:
            progress.say("explain", "loading the training digits the model compared with")
            training = training_digits(predictor.metadata, request.data_dir)
        folder = explanations_folder(predictor.path)
        folder.mkdir(parents=True, exist_ok=True)
        rows = pipeline.explain_digits(predictor.model, predictor.metadata, images, training, folder)
    return StepResult(
        "explain",
        folder,
        {"model": predictor.name, "model_path": str(predictor.path), "folder": str(folder), "explanations": rows},
    )


# --- the map ----------------------------------------------------------------------------------------


def run_cnn(run: Path) -> Predictor | None:
    """The run's cnn (or, failing that, its most accurate CNNClassifier), loaded; None without one."""
    from digitlab.analysis import explain

    models = sorted(run_models(run), key=lambda m: m.name != "cnn")
    for saved in models:
        if saved.path.name.endswith(".pt"):
            try:
                predictor = Predictor(saved.path)
            except DigitlabError:
                continue
            if explain.kind(predictor.model) == "cnn":
                return predictor
    return None


def digit_map(request: MapRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Map the run's test digits (or all its digits) in 2-D; files go into that run folder."""
    request.check()
    run = find_run(request.run, request.out)
    cnn = run_cnn(run)
    if request.features == "cnn" and cnn is None:
        raise DigitlabError(f"{run.name} has no saved cnn for the map's features; train one or use --model pca.")
    reader = cnn
    if reader is None:
        best = run_models(run)
        reader = Predictor(best[0].path) if best else None
    with progress.reporting(on_progress):
        progress.say("map", f"map: loading the digits of {run.name}")
        ds = run_dataset(run, request.data_dir)
        if request.split == "all":
            images, labels = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
        else:
            images, labels = ds.x_test, ds.y_test
        result = pipeline.digit_map(
            images,
            labels,
            ds.class_names,
            request.features,
            request.method,
            Run(run),
            request.split,
            cnn.model if cnn is not None else None,
            (reader.name, reader.model) if reader is not None else None,
            request.seed,
        )
    summary = {k: v for k, v in result.items() if k != "points"}
    return StepResult(
        "map", run, dict(summary, run=str(run), json=str(run / f"map-{request.features}-{request.method}.json"))
    )


@dataclass
class DigitMap:
    """A map read back from a run folder: points (JSON) and arrays (features, images, PCA)."""

    name: str  # "cnn-umap"
    facts: dict[str, Any]
    xy: np.ndarray
    features: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray | None:
        p = self.facts["points"].get("predicted")
        return None if p is None else np.asarray(p)

    @property
    def confidence(self) -> np.ndarray | None:
        c = self.facts["points"].get("confidence")
        return None if c is None else np.asarray(c)


def run_maps(run: Path) -> list[str]:
    """The maps saved in a run folder, e.g. ["cnn-umap", "pca-tsne"]."""
    return sorted(p.stem[len("map-") :] for p in run.glob("map-*.json") if (run / f"{p.stem}.npz").is_file())


def read_map(run: Path, name: str) -> DigitMap:
    try:
        facts = json.loads((run / f"map-{name}.json").read_text())
        with np.load(run / f"map-{name}.npz") as arrays:
            data = {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError, KeyError) as exc:
        raise DigitlabError(f"{run / f'map-{name}.json'}: unreadable ({exc}); run `digitlab map` again.") from None
    extra = {k: v for k, v in data.items() if k.startswith("pca_")}
    return DigitMap(name, facts, data["xy"], data["features"], data["images"], data["labels"], extra)


def place_on_map(found: DigitMap, image: np.ndarray, cnn: Predictor | None = None) -> np.ndarray:
    """Where one (28, 28) image goes on the map: (2,)."""
    from digitlab.analysis import digitmap

    if found.facts["features"] == "cnn":
        if cnn is None:
            raise DigitlabError("placing a drawing on a cnn map needs the run's cnn.")
        features = digitmap.cnn_features(cnn.model, image[None])
    else:
        x = image.reshape(1, -1).astype(np.float32) / 255.0
        features = ((x - found.extra["pca_mean"]) @ found.extra["pca_components"].T).astype(np.float32)
    return digitmap.place(found.features, found.xy, features)[0]


# --- the evaluation, clickable ----------------------------------------------------------------------


def evaluation_answers(run: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every test digit's answer by model ``name`` of the run: class index (n,) and confidence (n,).

    Read from ``evaluate-<name>.npz``; a run made before that file existed gets them from the model itself.
    """
    found = pipeline.read_answers(Run(run), name)
    if found is not None:
        return found
    saved = [m for m in run_models(run) if m.name == name]
    if not saved:
        raise DigitlabError(f"{run.name} has no saved model {name} to read the test digits with.")
    from digitlab.models.store import load_model

    model, _ = load_model(saved[0].path)
    proba = np.asarray(model.predict_proba(run_dataset(run).x_test))
    return proba.argmax(axis=1), proba.max(axis=1)


def training_curves(predictors: list[Predictor]) -> list[dict[str, Any]]:
    """Per-epoch figures the models kept (cnn and scratch ``history_``, the MLP's loss): one row per point."""
    from digitlab.service.tracking import epoch_history

    rows = []
    for predictor in predictors:
        model = getattr(predictor.model, "model_", predictor.model)
        for metric, values in epoch_history(model).items():
            rows += [
                {"model": predictor.name, "metric": metric, "epoch": k + 1, "value": v} for k, v in enumerate(values)
            ]
    return rows
