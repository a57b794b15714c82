"""The work: the named steps that ``digitlab run`` chains (data → explore → preprocess →
compare → evaluate → tune → augment → report).

Only the service layer (``digitlab.service``) calls these; it validates every request
first and owns the run folders. Each step takes a loaded ``Dataset`` and a ``Run`` folder,
writes its figures and JSON there and returns a JSON-able dict (what ``--json`` prints).
Progress goes out as events (``digitlab.core.progress``); nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis import explore as explore_lib
from digitlab.analysis import plots
from digitlab.analysis.evaluate import evaluate_predictions
from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import save_figure, write_arrays, write_json
from digitlab.core.settings import DEFAULT_MODELS, QUICK_TEST, QUICK_TRAIN, SMOKE_TEST, SMOKE_TRAIN
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.features.transforms import (
    Deskew,
    ScaleImages,
    StandardiseImages,
    deskew_memo,
    pixel_stats,
    value_counts,
    weighted_stats,
)
from digitlab.models import registry
from digitlab.models.store import load_model, model_name, model_path, save_model
from digitlab.runs.folders import Run, model_index, record_model
from digitlab.training.train import Trained, model_metadata, score_model, train_and_score

STEPS = ("data", "explore", "preprocess", "compare", "evaluate", "report")


@dataclass(frozen=True)
class Settings:
    dataset: str = "mnist"  # mnist, fashion-mnist, digits or idx:DIR
    data_dir: Path | None = None  # folder with the four IDX files, tried after the cache
    seed: int = 0  # every random choice (subsets, model init, example picks)
    quick: bool = False  # stratified 6,000 / 1,000 subset
    smoke: bool = False  # stratified 500 / 200 subset (every step in seconds; wins over quick)
    allow_network: bool = True  # npm and HTTP sources


def load(settings: Settings) -> Dataset:
    ds = load_dataset(settings.dataset, data_dir=settings.data_dir, allow_network=settings.allow_network)
    if settings.smoke:
        ds = ds.subset(SMOKE_TRAIN, SMOKE_TEST, random_state=settings.seed)
    elif settings.quick:
        ds = ds.subset(QUICK_TRAIN, QUICK_TEST, random_state=settings.seed)
    return ds


# --- data -------------------------------------------------------------------------------


def data_info(ds: Dataset) -> dict[str, Any]:
    """Splits, shapes, classes, counts and where every file came from."""
    info = explore_lib.describe(ds, pixels=False)
    info["files"] = ds.provenance.get("files", {})
    info["attempts"] = ds.provenance.get("attempts", [])
    if "subset" in ds.provenance:
        info["subset"] = ds.provenance["subset"]
    return info


# --- explore ----------------------------------------------------------------------------


def explore(ds: Dataset, run: Run, seed: int = 0) -> dict[str, Any]:
    result = explore_lib.describe(ds)
    train = result["splits"]["train"]["per_class"]
    test = result["splits"]["test"]["per_class"]
    grid = explore_lib.examples_per_class(ds.x_train, ds.y_train, ds.n_classes, k=10, random_state=seed)
    figures = {
        "class_histogram": save_figure(
            plots.class_histogram(train, test, ds.class_names), run.figures / "class_histogram.png"
        ),
        "examples": save_figure(
            plots.image_grid(grid, ds.class_names, "10 training examples per class"), run.figures / "examples.png"
        ),
        "ten_examples": save_figure(
            plots.image_grid(grid[None, :, 0], [""], "One training example of each class", list(ds.class_names)),
            run.figures / "ten_examples.png",
        ),
        "mean_images": save_figure(
            plots.mean_images(explore_lib.mean_per_class(ds.x_train, ds.y_train, ds.n_classes), ds.class_names),
            run.figures / "mean_images.png",
        ),
        "pixel_histogram": save_figure(
            plots.pixel_histogram(ds.x_train, "Pixel intensities (train)"), run.figures / "pixel_histogram.png"
        ),
    }
    result["figures"] = {k: str(v.relative_to(run.path)) for k, v in figures.items()}
    write_json(run.file("explore.json"), result)
    return result


# --- preprocess -------------------------------------------------------------------------


def preprocess(ds: Dataset, run: Run, seed: int = 0, n_show: int = 8) -> dict[str, Any]:
    """Raw vs scaled vs standardised vs deskewed, as statistics and figures."""
    standardiser = StandardiseImages().fit(ds.x_train)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ds.x_train), size=min(n_show, len(ds.x_train)), replace=False)
    scaled = ScaleImages().fit_transform(ds.x_train[pick])  # (n_show, H, W) in [0, 1]
    deskewed = Deskew().fit_transform(ds.x_train[pick]) / 255.0
    labels = [ds.class_names[i] for i in ds.y_train[pick]]
    z_counts: np.ndarray | None = None  # how often each of z_values occurs (None: each value is one pixel)
    if ds.x_train.dtype == np.uint8:  # 8-bit pixels: statistics and histograms from each pixel's value counts
        counts = value_counts(ds.x_train).transpose(2, 0, 1)  # (256, H, W): how often each pixel takes each value
        levels = np.arange(256, dtype=np.float32)
        z_values, z_counts = standardiser.transform(levels[:, None, None]), counts  # each pixel's z-score per value
        scaled_stats = weighted_stats(ScaleImages().fit_transform(levels[:, None, None]), counts.sum(axis=(1, 2)))
        z_stats = weighted_stats(z_values, z_counts)
    else:
        z_values = standardiser.transform(ds.x_train)  # (n, H, W), per-pixel z-scores
        scaled_stats = pixel_stats(ScaleImages().fit_transform(ds.x_train))
        z_stats = pixel_stats(z_values)
    stats = {"raw": pixel_stats(ds.x_train), "scaled": scaled_stats, "standardised": z_stats}
    result: dict[str, Any] = {
        "dataset": ds.name,
        "steps": {
            "scale": "x / 255 -> float32 in [0, 1]",
            "standardise": "per-pixel (x - mean) / std, fitted on the training split",
            "flatten": f"(n, {ds.image_shape[0]}, {ds.image_shape[1]}) -> (n, {ds.image_shape[0] * ds.image_shape[1]})",
            "deskew": "shear by image moments so the digit stands upright, centred on its mass",
        },
        "stats": stats,
        "sample": {
            "indices": pick.tolist(),
            "labels": labels,
            "scaled_first_image": np.round(scaled[0], 3).tolist(),
        },
    }
    figures = {
        "raw_vs_scaled": save_figure(
            plots.before_after(ds.x_train[pick], scaled, labels), run.figures / "raw_vs_scaled.png"
        ),
        "raw_vs_deskewed": save_figure(
            plots.before_after(ds.x_train[pick], deskewed, labels), run.figures / "raw_vs_deskewed.png"
        ),
        "value_histograms": save_figure(
            plots.value_histograms(ds.x_train, z_values, z_counts), run.figures / "value_histograms.png"
        ),
    }
    result["figures"] = {k: str(v.relative_to(run.path)) for k, v in figures.items()}
    write_json(run.file("preprocess.json"), result)
    return result


# --- train / compare / evaluate -------------------------------------------------------------


def model_size(path: Path) -> int:
    return path.stat().st_size


def train(ds: Dataset, name: str, run: Run, seed: int = 0) -> dict[str, Any]:
    """Fit one model, save it with its metadata, write its metrics and figures."""
    progress.step(f"train {name}", f"training {name} on {len(ds.y_train):,} images")
    trained = train_and_score(name, ds, seed)
    row = _save_trained(trained, ds, run, seed)
    write_json(run.file("metrics.json"), dict(row, **trained.metrics))
    return row


def _save_trained(trained: Trained, ds: Dataset, run: Run, seed: int) -> dict[str, Any]:
    meta = model_metadata(trained, ds, seed)
    path = save_model(model_path(run.models, trained.name, trained.model), trained.model, meta)
    record_model(
        run,
        trained.name,
        path,
        {"image_shape": meta["image_shape"], "dataset": meta["dataset"], "accuracy": trained.metrics["accuracy"]},
    )
    row = {
        "model": trained.name,
        "accuracy": trained.metrics["accuracy"],
        "macro_f1": trained.metrics["macro_f1"],
        "fit_s": trained.fit_s,
        "predict_s": trained.predict_s,
        "size_bytes": model_size(path),
        "path": str(path),
    }
    return row


def compare(ds: Dataset, names: Sequence[str], run: Run, seed: int = 0, evaluate_each: bool = True) -> dict[str, Any]:
    """Train each model with the same data and seed; table, chart, and per-model evaluation."""
    rows, evaluations = [], {}
    with deskew_memo():  # the models sharing the deskew front straighten the digits once between them
        for k, name in enumerate(names, 1):
            progress.step(f"train {name}", f"[{k}/{len(names)}] training {name} on {len(ds.y_train):,} images")
            trained = train_and_score(name, ds, seed)
            rows.append(_save_trained(trained, ds, run, seed))
            if evaluate_each:
                evaluations[name] = _evaluation_figures(trained.metrics, trained.proba, ds, run, name)
    fig = plots.comparison(
        names, [r["accuracy"] for r in rows], [r["fit_s"] for r in rows], [r["predict_s"] for r in rows]
    )
    chart = save_figure(fig, run.figures / "comparison.png")
    best = max(rows, key=lambda r: r["accuracy"])
    result = {
        "dataset": ds.name,
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "seed": seed,
        "models": rows,
        "best": best["model"],
        "figure": str(chart.relative_to(run.path)),
        "evaluations": evaluations,
    }
    write_json(run.file("compare.json"), result)
    return result


Loaded = tuple[Any, dict[str, Any]]  # (fitted model, its metadata), as store.load_model returns
Ds_and_model = tuple[Dataset, Path, Loaded]  # the data a model was trained on, its file, the model


def _load_for(ds: Dataset, path: Path, loaded: Loaded | None = None) -> Loaded:
    model, meta = loaded if loaded is not None else load_model(path)
    if list(meta.get("image_shape", ds.image_shape)) != list(ds.image_shape):
        raise DigitlabError(
            f"{path}: model expects {tuple(meta['image_shape'])} images but dataset {ds.name} has "
            f"{ds.image_shape}; pass the dataset it was trained on with --dataset."
        )
    return model, meta


def ensemble_saved(
    ds: Dataset,
    paths: Sequence[Path],
    run: Run,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    models: Sequence[Loaded] | None = None,
) -> dict[str, Any]:
    """Soft-vote saved models (nothing is retrained); score members and ensemble on the test split."""
    from digitlab.models.ensemble import SoftVote

    loaded = [_load_for(ds, p, models[k] if models else None) for k, p in enumerate(paths)]
    names = [str(meta.get("model", model_name(p))) for (_, meta), p in zip(loaded, paths, strict=True)]
    vote = SoftVote.from_fitted([m for m, _ in loaded], names, weights)
    probs = vote.member_probabilities(ds.x_test)  # each (n_test, k)
    members = [
        {"model": name, "path": str(p), "accuracy": float((vote.classes_[pr.argmax(1)] == ds.y_test).mean())}
        for name, p, pr in zip(names, paths, probs, strict=True)
    ]
    _, proba, predict_s, metrics = score_model(vote, ds)
    trained = Trained("ensemble", vote, 0.0, predict_s, vote.classes_[proba.argmax(1)], proba, metrics)
    row = _save_trained(trained, ds, run, seed)
    evaluation = _evaluation_figures(metrics, proba, ds, run, "ensemble")
    result = {
        "members": members,
        "weights": list(vote.normalised_weights()),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "predict_s": predict_s,
        "model_path": row["path"],
        "figures": evaluation["figures"],
    }
    write_json(run.file("ensemble.json"), result)
    return result


def evaluate_saved(
    ds: Dataset, path: Path, run: Run, robust: bool = False, loaded: Loaded | None = None
) -> dict[str, Any]:
    """Evaluate a saved model on the test split; with ``robust``, also on transformed test copies.

    Everything, robustness included, is saved in ``evaluate-<model>.json`` (the report reads it).
    """
    model, meta = _load_for(ds, path, loaded)
    name = str(meta.get("model", model_name(path)))
    progress.step(f"evaluate {name}", f"evaluating {name} on {len(ds.y_test):,} test images")
    _, proba, predict_s, metrics = score_model(model, ds)
    extra: dict[str, Any] = {"model_path": str(path), "predict_s": predict_s, "trained_on": meta.get("dataset")}
    if robust:
        from digitlab.features.augment.robustness import robustness

        progress.step("robustness", f"scoring {name} on transformed copies of the test images")
        extra["robustness"] = robustness(model, ds.x_test, ds.y_test)
    return _evaluation_figures(metrics, proba, ds, run, name, extra)


def _evaluation_figures(
    metrics: dict[str, Any], proba: np.ndarray, ds: Dataset, run: Run, name: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    cm = np.asarray(metrics["confusion_matrix"])
    figs = {
        "confusion_matrix": save_figure(
            plots.confusion_matrix(cm, ds.class_names, f"{name}: confusion matrix"),
            run.figures / f"{name}-confusion.png",
        )
    }
    figs["predictions"] = save_figure(_predictions_grid(proba, ds, name), run.figures / f"{name}-predictions.png")
    wrong = metrics["misclassified"][:30]
    if wrong:
        cols = 10
        rows = (len(wrong) + cols - 1) // cols
        grid = np.zeros((rows, cols, *ds.image_shape), dtype=np.uint8)
        captions = [""] * (rows * cols)
        for k, item in enumerate(wrong):
            grid[k // cols, k % cols] = ds.x_test[item["index"]]
            captions[k] = f"{ds.class_names[item['true']]}→{ds.class_names[item['predicted']]} {item['confidence']:.0%}"
        figs["misclassified"] = save_figure(
            plots.image_grid(
                grid, [""] * rows, f"{name}: most confident mistakes (true→predicted, confidence)", captions
            ),
            run.figures / f"{name}-misclassified.png",
        )
    result = dict(metrics, model=name, figures={k: str(v.relative_to(run.path)) for k, v in figs.items()})
    result.update(extra or {})
    write_arrays(  # every test image's answer: what the dashboard's clickable confusion matrix shows
        run.file(f"evaluate-{name}.npz"),
        predicted=proba.argmax(axis=1).astype(np.int16),
        confidence=proba.max(axis=1).astype(np.float32),
    )
    write_json(run.file(f"evaluate-{name}.json"), result)
    return result


def read_answers(run: Run, name: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Every test digit's answer by model ``name`` (class index, confidence) from ``evaluate-<name>.npz``.

    None when the run has no such file, it is damaged, or it does not hold ``n`` answers.
    """
    path = run.file(f"evaluate-{name}.npz")
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            predicted, confidence = np.asarray(arrays["predicted"], dtype=np.int64), np.asarray(arrays["confidence"])
    except (OSError, ValueError, KeyError):
        return None
    return (predicted, confidence) if n is None or len(predicted) == n else None


def _predictions_grid(proba: np.ndarray, ds: Dataset, name: str, rows: int = 3, cols: int = 10) -> Any:
    """The first ``rows × cols`` test images with true and predicted labels (mistakes in red)."""
    n = min(rows * cols, len(ds.y_test))
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows, cols, *ds.image_shape), dtype=np.uint8)
    captions, colors = [""] * (rows * cols), ["black"] * (rows * cols)
    predicted = proba.argmax(1)
    for k in range(n):
        grid[k // cols, k % cols] = ds.x_test[k]
        true, pred = ds.class_names[ds.y_test[k]], ds.class_names[predicted[k]]
        captions[k] = f"{true}/{pred}"
        colors[k] = "black" if ds.y_test[k] == predicted[k] else "red"
    return plots.image_grid(
        grid, [""] * rows, f"{name}: true/predicted on the first {n} test images", captions, caption_colors=colors
    )


def tune(
    ds: Dataset,
    name: str,
    run: Run,
    seed: int = 0,
    search: str = "grid",
    cv: int = 3,
    n_iter: int = 10,
    train_size: int | None = None,
    space: dict[str, list[Any]] | None = None,
    n_jobs: int | None = -1,
    scheduler: str | None = None,
    dask_local: int | None = None,
    save_as: str | None = None,
) -> dict[str, Any]:
    """Cross-validated search on the training split only; the test split scores the refitted best once.

    The refitted model and its evaluation are saved under ``save_as`` (default: the model's name).
    """
    saved_name = save_as or name
    from digitlab.training import tune as tune_lib

    x_search, y_search = ds.x_train, ds.y_train  # the test split is never handed to the search
    if train_size is not None:
        if train_size < 10 * cv:
            raise DigitlabError(f"--train-size {train_size}: too small for {cv}-fold search; use at least {10 * cv}.")
        searched = ds.subset(train_size, None, random_state=seed)
        x_search, y_search = searched.x_train, searched.y_train
    progress.step(f"tune {name}", f"tune {name}: {search} search, {cv}-fold CV on {len(y_search):,} training images")
    found = tune_lib.tune(
        name,
        x_search,
        y_search,
        search=search,
        cv=cv,
        n_iter=n_iter,
        space=space,
        random_state=seed,
        n_jobs=n_jobs,
        scheduler=scheduler,
        dask_local=dask_local,
        dataset=ds.name,
    )
    progress.say(f"tune {name}", f"tune {name}: scoring the refitted best model on the test split (once)")
    y_pred, proba, predict_s, metrics = score_model(found.model, ds)
    trained = Trained(saved_name, found.model, found.seconds, predict_s, y_pred, proba, metrics)
    row = _save_trained(trained, ds, run, seed)
    figures: dict[str, str] = {}
    full_space = tune_lib.space_for(name, space)
    varied = {k: v for k, v in full_space.items() if len(v) > 1}
    if search == "grid" and len(varied) == 2:
        figures["heatmap"] = str(_tune_heatmap(found, varied, saved_name, run).relative_to(run.path))
    evaluation = _evaluation_figures(metrics, proba, ds, run, saved_name)
    result = {
        "model": name,
        "saved_as": saved_name,
        "search": search,
        "cv": cv,
        "backend": found.backend,
        "seconds": found.seconds,
        "n_train_searched": found.n_samples,
        "n_candidates": found.n_candidates,
        "n_fits": found.n_fits,
        "search_data_sha256": _sha256(x_search),
        "best_params": tune_lib.describe_params(found.best_params),
        "best_cv_accuracy": found.best_cv_accuracy,
        "candidates": [dict(c, params=tune_lib.describe_params(c["params"])) for c in found.candidates],
        "test": {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "n_test": metrics["n_test"],
            "note": "the test split was used once, after the search, to score the refitted best model",
        },
        "model_path": row["path"],
        "figures": {**figures, **evaluation["figures"]},
    }
    write_json(run.file("tune.json"), result)
    return result


def _sha256(array: np.ndarray) -> str:
    from digitlab.data.sources import sha256_bytes

    return sha256_bytes(np.ascontiguousarray(array).tobytes())


def _tune_heatmap(found: Any, varied: dict[str, list[Any]], name: str, run: Run) -> Path:
    from digitlab.training.tune import describe_params

    (rows_key, row_values), (cols_key, col_values) = varied.items()
    row_labels = [describe_params({rows_key: v})[rows_key] for v in row_values]
    col_labels = [describe_params({cols_key: v})[cols_key] for v in col_values]
    values = np.full((len(row_labels), len(col_labels)), np.nan)  # (rows, cols) mean CV accuracy
    for cand in found.candidates:
        shown = describe_params(cand["params"])
        values[row_labels.index(shown[rows_key]), col_labels.index(shown[cols_key])] = cand["mean_cv_accuracy"]
    fig = plots.heatmap(values, row_labels, col_labels, rows_key, cols_key, f"{name}: mean CV accuracy")
    return save_figure(fig, run.figures / f"{name}-tune-heatmap.png")


def _augment_preview(ds: Dataset, library: str, run: Run, seed: int) -> Path:
    from digitlab.features.augment import get_augmenter

    augmenter = get_augmenter(library)
    rng = np.random.default_rng(seed)
    originals = explore_lib.examples_per_class(ds.x_train, ds.y_train, ds.n_classes, k=1, random_state=seed)[:, 0]
    grid = np.stack([originals, *(augmenter.augment(originals, rng) for _ in range(5))], axis=1)  # (k, 6, H, W)
    fig = plots.image_grid(grid, ds.class_names, f"{library}: original (left) and 5 augmented copies")
    return save_figure(fig, run.figures / f"augment-{library}-preview.png")


def augment(ds: Dataset, library: str, name: str, run: Run, seed: int = 0, factor: int = 1) -> dict[str, Any]:
    """Train ``name`` with and without augmentation (same seed); compare test and robustness accuracy.

    Only training images are augmented; the test split is hashed before and after to prove it.
    """
    from digitlab.features.augment.robustness import robustness
    from digitlab.models.augmented import Augmented

    test_hash = _sha256(ds.x_test)
    preview = _augment_preview(ds, library, run, seed)
    progress.step(f"augment {library}", f"augment: {name} without augmentation")
    plain = train_and_score(name, ds, seed)
    progress.say(f"augment {library}", f"augment: {name} with {library} augmentation", level=progress.INNER)
    start = time.perf_counter()
    estimator = registry.build(name, seed, ds.name)
    model = Augmented(estimator, library=library, factor=factor, random_state=seed).fit(ds.x_train, ds.y_train)
    fit_s = time.perf_counter() - start
    _, proba, predict_s, metrics = score_model(model, ds)
    progress.say(f"augment {library}", "augment: robustness suite on transformed test copies", level=progress.INNER)
    robust_plain = robustness(plain.model, ds.x_test, ds.y_test)
    robust_aug = robustness(model, ds.x_test, ds.y_test)
    test_untouched = _sha256(ds.x_test) == test_hash  # hashed before and after: augmentation never sees it
    saved = _save_trained(
        Trained(f"{name}-{library}", model.model_, fit_s, predict_s, model.classes_[proba.argmax(1)], proba, metrics),
        ds,
        run,
        seed,
    )
    result = {
        "model": name,
        "library": library,
        "mode": model.mode_,
        "factor": factor,
        "seed": seed,
        "without": {"accuracy": plain.metrics["accuracy"], "fit_s": plain.fit_s, "robustness": robust_plain},
        "with": {"accuracy": metrics["accuracy"], "fit_s": fit_s, "robustness": robust_aug},
        "gain_pp": (metrics["accuracy"] - plain.metrics["accuracy"]) * 100,
        "robustness_gain_pp": (robust_aug["mean_transformed"] - robust_plain["mean_transformed"]) * 100,
        "test_sha256": test_hash,
        "test_untouched": test_untouched,
        "model_path": saved["path"],
        "figures": {"preview": str(preview.relative_to(run.path))},
    }
    write_json(run.file(f"augment-{library}.json"), result)
    return result


def augment_compare(
    ds: Dataset, libraries: Sequence[str], name: str, run: Run, seed: int = 0, factor: int = 1
) -> dict[str, Any]:
    results = [augment(ds, lib, name, run, seed, factor) for lib in libraries]
    fig = plots.comparison(
        ["none", *libraries],
        [results[0]["without"]["accuracy"]] + [r["with"]["accuracy"] for r in results],
        [results[0]["without"]["fit_s"]] + [r["with"]["fit_s"] for r in results],
        [0.0] * (len(libraries) + 1),
    )
    chart = save_figure(fig, run.figures / "augment-compare.png")
    result = {"model": name, "results": results, "figure": str(chart.relative_to(run.path))}
    write_json(run.file("augment-compare.json"), result)
    return result


def run_all(
    settings: Settings,
    run: Run,
    names: Sequence[str] = DEFAULT_MODELS,
    tune_model: str | None = None,
    search: str = "halving",
    augment_library: str | None = None,
    augment_model: str = "mlp",
) -> dict[str, Any]:
    """Every step in order, into one run folder; tuning and augmentation when asked for."""
    progress.step("data", "data: loading and verifying")
    ds = load(settings)
    result: dict[str, Any] = {
        "settings": {
            "dataset": settings.dataset,
            "seed": settings.seed,
            "quick": settings.quick,
            **({"smoke": True} if settings.smoke else {}),
            "models": list(names),
        }
    }
    result["data"] = data_info(ds)
    write_json(run.file("data.json"), result["data"])
    progress.step("explore", "explore: statistics and figures")
    result["explore"] = explore(ds, run, settings.seed)
    progress.step("preprocess", "preprocess: raw vs normalised")
    result["preprocess"] = preprocess(ds, run, settings.seed)
    result["compare"] = compare(ds, names, run, settings.seed)
    if tune_model is not None:  # saved beside the untuned model, as <name>-tuned
        result["tune"] = tune(ds, tune_model, run, settings.seed, search=search, save_as=f"{tune_model}-tuned")
    if augment_library is not None:
        result["augment"] = augment(ds, augment_library, augment_model, run, settings.seed)
    write_json(run.file("metrics.json"), result)
    progress.say("look inside", "what the models look at: weights, units and saliency", level=progress.INNER)
    result["look"] = look_inside(ds, run)
    progress.step("report", "report: one HTML file")
    result["report"] = report(run)
    return result


def run_steps(n_models: int, tune: bool, augment: bool) -> int:
    """How many job steps ``run_all`` announces (for a progress bar)."""
    return 3 + n_models + int(tune) + int(augment) + 1


# --- your digits --------------------------------------------------------------------------------


def measure_mine(mine: Dataset, models: Sequence[tuple[str, Any]], run: Run) -> dict[str, Any]:
    """Every model on your digits: accuracy, confusion matrix and the digits it misreads (``mine.json``)."""
    ids = np.asarray(mine.provenance.get("ids", range(len(mine.y_test))))
    rows = []
    for name, model in models:
        progress.say(f"measure {name}", f"reading your {len(mine.y_test)} digits with {name}", level=progress.INNER)
        proba = np.asarray(model.predict_proba(mine.x_test))  # (n, 10)
        pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
        metrics = evaluate_predictions(mine.y_test, pred, proba, mine.class_names)
        misread = [dict(m, id=int(ids[m["index"]])) for m in metrics["misclassified"]]
        figs = {
            "confusion_matrix": save_figure(
                plots.confusion_matrix(
                    np.asarray(metrics["confusion_matrix"]), mine.class_names, f"{name} on your digits"
                ),
                run.figures / f"mine-{name}-confusion.png",
            )
        }
        if misread:
            shown = misread[:20]
            grid = np.zeros((1, len(shown), *mine.image_shape), np.uint8)
            for k, item in enumerate(shown):
                grid[0, k] = mine.x_test[item["index"]]
            captions = [f"{m['true']}→{m['predicted']} {m['confidence']:.0%}" for m in shown]
            figs["misread"] = save_figure(
                plots.image_grid(grid, [""], f"{name}: your digits it misreads (true→read)", captions),
                run.figures / f"mine-{name}-misread.png",
            )
        rows.append(
            {
                "model": name,
                "accuracy": metrics["accuracy"],
                "n_errors": metrics["n_errors"],
                "confusion_matrix": metrics["confusion_matrix"],
                "misread": misread,
                "figures": {k: str(v.relative_to(run.path)) for k, v in figs.items()},
            }
        )
    result = {
        "dataset": mine.name,
        "n_digits": len(mine.y_test),
        "counts": np.bincount(mine.y_test, minlength=10).tolist(),
        "models": rows,
    }
    write_json(run.file("mine.json"), result)
    return result


def personalise(
    mine: Dataset,
    base: Ds_and_model,
    run: Run,
    epochs: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Adapt a saved model to your digits (held-out before/after), save ``<name>-personal`` and measure both.

    ``epochs`` None: scaled to the number of digits (``personalise.auto_epochs``)."""
    from digitlab.training import personalise as personal

    source, path, (model, meta) = base
    name = str(meta.get("model", model_name(path)))
    saved_as = name if name.endswith("-personal") else f"{name}-personal"
    progress.step("before", f"scoring {name} on {len(source.y_test):,} {source.name} test images")
    before_test = float((np.asarray(model.predict(source.x_test)) == source.y_test).mean())
    outcome = personal.personalise(
        model, name, mine.x_test, mine.y_test, (source.x_train, source.y_train), epochs, seed
    )
    progress.step("after", f"scoring {saved_as} on {len(source.y_test):,} {source.name} test images")
    after_test = float((np.asarray(outcome.model.predict(source.x_test)) == source.y_test).mean())
    writer = mine.provenance.get("writer")
    facts = {
        "writer": writer,
        "n_digits": len(mine.y_test),
        "counts": np.bincount(mine.y_test, minlength=10).tolist(),
        "scheme": outcome.scheme,
        "held_out": outcome.held_out,
        "held_out_before": outcome.before,
        "held_out_after": outcome.after,
        "test_dataset": source.name,
        "test_before": before_test,
        "test_after": after_test,
        "epochs": outcome.epochs,
        "adapt_s": outcome.seconds,
        "base_model": str(path),
    }
    meta_out = dict(meta, model=saved_as, personalised=facts, seed=seed)
    meta_out["metrics"] = dict(meta.get("metrics", {}), accuracy=after_test)
    out_path = save_model(model_path(run.models, saved_as, outcome.model), outcome.model, meta_out)
    record_model(
        run,
        saved_as,
        out_path,
        {"image_shape": meta.get("image_shape", [28, 28]), "dataset": meta.get("dataset"), "accuracy": after_test},
    )
    measured = measure_mine(mine, [(name, model), (saved_as, outcome.model)], run)
    result = dict(facts, model=saved_as, model_path=str(out_path), per_fold=outcome.per_fold, mine=measured["models"])
    result["figure"] = (
        save_figure(
            plots.accuracy_before_after(
                ["your held-out digits", f"{source.name} test"],
                [outcome.before, before_test],
                [outcome.after, after_test],
                f"{saved_as}: before and after ({outcome.scheme})",
            ),
            run.figures / "personalise.png",
        )
        .relative_to(run.path)
        .as_posix()
    )
    write_json(run.file("personalise.json"), result)
    return result


def measure_mine_in(run: Run) -> dict[str, Any] | None:
    """When you have saved digits: every 28×28 model of the run measured on them (``mine.json``), else None.

    A personalise run keeps the measurement it made (the model before and after).
    """
    from digitlab.data.your_digits import DigitStore

    if run.file("personalise.json").is_file():
        return None
    try:
        if not any(DigitStore().counts().values()):
            return None
        mine = load_dataset("mine")
    except DigitlabError as exc:  # a damaged or locked store must not cost the run: the report says nothing of it
        progress.say("your digits", f"your digits left out of the report: {exc}")
        return None
    models = []
    for entry in model_index(run.models).values():  # the run's own models (an ensemble's members are not listed)
        if list(entry.get("image_shape") or []) != [28, 28]:
            continue
        path = run.models / str(entry.get("file", ""))
        try:
            model, meta = load_model(path)
        except DigitlabError:
            continue
        models.append((str(meta.get("model", model_name(path))), model))
    return measure_mine(mine, models, run) if models else None


def report(run: Run) -> dict[str, Any]:
    """The self-contained HTML report of everything the run folder holds (your digits measured first, if any)."""
    from digitlab.analysis import report as report_lib

    measure_mine_in(run)
    return report_lib.build(run.path)


# --- look inside: explanations and the map ------------------------------------------------------


def explain_digits(
    model: Any, meta: dict[str, Any], images: Sequence[tuple[str, np.ndarray]], training: Dataset | None, folder: Path
) -> list[dict[str, Any]]:
    """Explain each (name, 28×28 image) with one model: a figure and a JSON file per picture in ``folder``."""
    from digitlab.analysis import explain

    name = str(meta.get("model", "model"))
    classes = [str(c) for c in meta.get("class_names", model.classes_)]
    pairs = (training.x_train, training.y_train) if training is not None else None
    rows = []
    for k, (label, image) in enumerate(images):
        progress.say("explain", f"explaining {label} with {name}", done=k, total=len(images), level=progress.INNER)
        found = explain.explain(model, image, name, classes, pairs)
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


def look_inside(ds: Dataset, run: Run, n_digits: int = 4, n_mistakes: int = 4, n_units: int = 16) -> dict[str, Any]:
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
    write_json(run.file("look.json"), result)
    return result


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


def digit_map(
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
) -> dict[str, Any]:
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
    write_json(run.file(f"{stem}.json"), result)
    return result


__all__ = [
    "STEPS",
    "Settings",
    "augment",
    "augment_compare",
    "compare",
    "data_info",
    "digit_map",
    "ensemble_saved",
    "evaluate_saved",
    "explain_digits",
    "explore",
    "load",
    "look_inside",
    "measure_mine",
    "personalise",
    "preprocess",
    "read_answers",
    "report",
    "run_all",
    "run_steps",
    "train",
    "tune",
]
