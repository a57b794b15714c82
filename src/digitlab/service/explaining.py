"""Look inside: explanations of single predictions and the map of all digits.

``explain`` writes a figure and a JSON file per picture into ``explanations/`` of the model's run;
``digit_map`` writes ``map-<features>-<method>.json`` / ``.npz`` and a figure into the run it maps;
the dashboard reads maps with ``read_map`` and places a drawing with ``place_on_map``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import save_figure, write_arrays, write_json
from digitlab.data.datasets import Dataset
from digitlab.data.pictures import is_blank
from digitlab.models.store import load_model
from digitlab.runs.folders import Run, model_index
from digitlab.runs.lookup import find_run, run_models
from digitlab.runs.records import Explained, Look, MapPoints
from digitlab.service.base import StepResult, load, run_dataset, trained_on
from digitlab.service.batch import picture_files
from digitlab.service.evaluating import read_answers
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
        return load(trained_on(metadata, data_dir))
    except DigitlabError:
        return None


def explain_image(predictor: Predictor, image: np.ndarray, training: Dataset | None = None) -> Any:
    """The ``explain.Explanation`` of one (28, 28) uint8 image by a loaded predictor."""
    from digitlab.analysis import explain

    pairs = (training.x_train, training.y_train) if training is not None else None
    answer, proba = predictor.read_one(image)  # the reading path decides blank and answers; explain says why
    if proba is None:
        raise DigitlabError("the picture is blank (no ink): there is nothing to explain; draw or pick a digit.")
    found = explain.explain(predictor.model, image, predictor.name, predictor.classes, pairs, proba=proba)
    found.status = answer.status
    return found


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
        rows = explain_digits(predictor, images, training, folder)
    return StepResult(
        "explain",
        folder,
        Explained.of(
            {"model": predictor.name, "model_path": str(predictor.path), "folder": str(folder), "explanations": rows}
        ),
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
        result = map_into(
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
    summary = {k: v for k, v in result.to_json().items() if k != "points"}
    return StepResult(
        "map", run, MapPoints.of(dict(summary, json=str(run / f"map-{request.features}-{request.method}.json")))
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
    found = read_answers(Run(run), name)
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


def explain_digits(
    predictor: Predictor, images: Sequence[tuple[str, np.ndarray]], training: Dataset | None, folder: Path
) -> list[dict[str, Any]]:
    """Explain each (name, 28×28 image) with one model: a figure and a JSON file per picture in ``folder``."""
    name = predictor.name
    rows = []
    for k, (label, image) in enumerate(images):
        progress.say("explain", f"explaining {label} with {name}", done=k, total=len(images), level=progress.INNER)
        found = explain_image(predictor, image, training)
        stem = f"{Path(label).stem}-{name}"
        figure = save_figure(
            _explanation_figure(found, f"{Path(label).name}: {found.headline}"), folder / f"{stem}.png"
        )
        data = dict(found.to_json(), file=label, figure=str(figure))
        write_json(folder / f"{stem}.json", data)
        rows.append(dict(data, json=str(folder / f"{stem}.json")))
    return rows


def _explanation_figure(found: Any, title: str) -> Any:
    panels = [(p.title, p.values, p.style, p.caption) for p in found.panels]
    neighbours = [
        (n.image, f"{n.label}  d={n.distance:.2f}" + (f"  K={n.kernel:.2f}" if n.kernel is not None else ""))
        for n in found.neighbours
    ]
    return plots.explanation(found.image, panels, title, neighbours)


def look_inside(ds: Dataset, run: Run, n_digits: int = 4, n_mistakes: int = 4, n_units: int = 16) -> Look:
    """What the models look at (``look.json``): LR weight images, MLP first-layer units, cnn saliency.

    Saliency (Integrated Gradients) is drawn for the first ``n_digits`` test digits and the cnn's
    ``n_mistakes`` most confident mistakes, for the answer and for the true digit.
    """
    from digitlab.analysis import explain

    index = model_index(run.models)
    result: dict[str, Any] = {"figures": {}, "notes": []}
    saved = {name: run.models / str(info["file"]) for name, info in index.items() if "file" in info}
    for name in ("lr", "mlp", "cnn"):
        if name not in saved:
            continue
        model, _ = load_model(saved[name])
        kind = explain.kind(model)
        est = explain.inner(model)
        shape = ds.image_shape
        if kind == "lr" and est[-1].coef_.shape[1] == shape[0] * shape[1]:
            coef = np.asarray(est[-1].coef_)
            grid = coef.reshape(1, len(coef), *shape)
            fig = plots.weight_grid(
                grid, [f"{c}" for c in ds.class_names], "lr: the weights of each class (red: ink here votes for it)"
            )
            result["figures"]["lr_weights"] = str(
                save_figure(fig, run.figures / "look-lr-weights.png").relative_to(run.path)
            )
        elif kind == "mlp" and est[-1].coefs_[0].shape[0] == shape[0] * shape[1]:
            w1 = np.asarray(est[-1].coefs_[0])  # (pixels, units)
            strongest = np.argsort(-np.linalg.norm(w1, axis=0))[:n_units]
            grid = w1[:, strongest].T.reshape(2, -1, *shape)
            fig = plots.weight_grid(
                grid,
                [f"unit {j}" for j in strongest],
                f"mlp: {n_units} of its {w1.shape[1]} first-layer units (largest weights)",
            )
            result["figures"]["mlp_units"] = str(
                save_figure(fig, run.figures / "look-mlp-units.png").relative_to(run.path)
            )
        elif kind == "cnn":
            try:
                result["cnn_saliency"], figure = _cnn_saliency(model, ds, run, n_digits, n_mistakes)
                result["figures"]["cnn_saliency"] = figure
            except DigitlabError as exc:  # Captum not installed: the rest of the section still shows
                result["notes"].append(str(exc))
    return Look.of(result).saved(run.path)


def _cnn_saliency(
    model: Any, ds: Dataset, run: Run, n_digits: int, n_mistakes: int
) -> tuple[list[dict[str, Any]], str]:
    from digitlab.analysis import explain

    answers = read_answers(run, "cnn", len(ds.y_test))  # written when the run evaluated its cnn
    if answers is None:
        proba = np.asarray(model.predict_proba(ds.x_test))
        answers = proba.argmax(axis=1), proba.max(axis=1)
    pred, confidence = answers
    wrong = np.flatnonzero(pred != ds.y_test)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:n_mistakes]
    chosen = [*range(min(n_digits, len(ds.y_test))), *worst.tolist()]
    rows, captions, shown = [], [], []
    for i in chosen:
        p_name, t_name = ds.class_names[pred[i]], ds.class_names[ds.y_test[i]]
        mistake = bool(pred[i] != ds.y_test[i])
        if mistake:
            other = int(ds.y_test[i])
        else:  # the runner-up
            other = int(np.argsort(-np.asarray(model.predict_proba(ds.x_test[i : i + 1]))[0])[1])
        ig_pred, ig_other = explain.integrated_gradients(model, ds.x_test[i], [int(pred[i]), other])
        rows.append((ds.x_test[i], ig_pred, ig_other))
        captions.append(
            (
                f"#{i}: true {t_name}, read {p_name} {confidence[i]:.0%}" + (" (mistake)" if mistake else ""),
                p_name,
                ds.class_names[other],
            )
        )
        shown.append(
            {
                "index": int(i),
                "true": t_name,
                "predicted": p_name,
                "confidence": float(confidence[i]),
                "mistake": mistake,
            }
        )
    fig = plots.saliency_rows(rows, captions, "cnn: what it looked at (Integrated Gradients; red raises the score)")
    path = save_figure(fig, run.figures / "look-cnn-saliency.png")
    return shown, str(path.relative_to(run.path))


def map_into(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    source: str,
    method: str,
    run: Run,
    split: str,
    feature_model: Any | None = None,
    reader: tuple[str, Any] | None = None,
    seed: int = 0,
) -> MapPoints:
    """The 2-D map of ``images``: ``map-<source>-<method>.json`` (points), ``.npz`` (features, images) and a figure.

    ``reader`` (name, model) answers for every digit so that misread ones are ringed.
    """
    from digitlab.analysis import digitmap

    progress.step("map", f"{source} features of {len(images):,} digits, then {method}")
    embedding, pca = digitmap.build(images, source, method, feature_model, seed)
    predicted = confidence = None
    if reader is not None:
        progress.say("map", f"reading the {len(images):,} digits with {reader[0]}", level=progress.INNER)
        proba = np.asarray(reader[1].predict_proba(images))
        predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    wrong = predicted != labels if predicted is not None else np.zeros(len(labels), bool)
    stem = f"map-{source}-{method}"
    title = f"{len(images):,} digits ({split}), {source} features, {method.upper() if method == 'umap' else 't-SNE'}"
    fig = save_figure(plots.digit_map(embedding.xy, labels, wrong, class_names, title), run.figures / f"{stem}.png")
    extra = {"pca_components": pca.pca_.components_, "pca_mean": pca.pca_.mean_} if pca is not None else {}
    write_arrays(
        run.file(f"{stem}.npz"), xy=embedding.xy, features=embedding.features, images=images, labels=labels, **extra
    )
    result = {
        "features": source,
        "method": method,
        "split": split,
        "n": len(images),
        "seed": seed,
        "parameters": embedding.parameters,
        "seconds_features": embedding.seconds_features,
        "seconds_embedding": embedding.seconds_embedding,
        "seconds": embedding.seconds_features + embedding.seconds_embedding,
        "reader": reader[0] if reader is not None else None,
        "n_misread": int(wrong.sum()),
        "class_names": list(class_names),
        "figure": str(fig.relative_to(run.path)),
        "arrays": f"{stem}.npz",
        "points": {
            "x": embedding.xy[:, 0].round(4).tolist(),
            "y": embedding.xy[:, 1].round(4).tolist(),
            "label": labels.tolist(),
            "predicted": predicted.tolist() if predicted is not None else None,
            "confidence": confidence.round(4).tolist() if confidence is not None else None,
        },
    }
    return MapPoints.of(result).saved(run.path, stem[len("map-") :])
