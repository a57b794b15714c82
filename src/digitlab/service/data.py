"""The data use cases: describe a dataset (``data``), explore it and show preprocessing, each in a run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.analysis import explore as explore_lib
from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.files import save_figure
from digitlab.data.datasets import Dataset
from digitlab.features.transforms import (
    Deskew,
    ScaleImages,
    StandardiseImages,
    pixel_stats,
    value_counts,
    weighted_stats,
)
from digitlab.runs.folders import Run
from digitlab.runs.records import DataInfo, Explore, Preprocess, Record
from digitlab.service.base import StepResult, in_run_folder, load
from digitlab.service.requests import (
    DataRequest,
)


def describe_data(ds: Dataset) -> DataInfo:
    """Splits, shapes, classes, counts and where every file came from."""
    info = explore_lib.describe(ds, pixels=False)
    info["files"] = ds.provenance.get("files", {})
    info["attempts"] = ds.provenance.get("attempts", [])
    if "subset" in ds.provenance:
        info["subset"] = ds.provenance["subset"]
    return DataInfo.of(info)


def explore_into(ds: Dataset, run: Run, seed: int = 0) -> Explore:
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
    return Explore.of(result).saved(run.path)


def preprocess_into(ds: Dataset, run: Run, seed: int = 0, n_show: int = 8) -> Preprocess:
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
    return Preprocess.of(result).saved(run.path)


def data_info(request: DataRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Load (fetch and verify if needed) a dataset and describe it: splits, classes, files."""
    request.check()
    with progress.reporting(on_progress):
        ds = load(request)
    return StepResult("data", None, describe_data(ds))


def explore(request: DataRequest, out: Path, on_progress: progress.Progress | None = None) -> StepResult:
    return _data_step("explore", explore_into, request, out, on_progress)


def preprocess(request: DataRequest, out: Path, on_progress: progress.Progress | None = None) -> StepResult:
    return _data_step("preprocess", preprocess_into, request, out, on_progress)


def _data_step(
    name: str,
    work: Callable[..., Record],
    request: DataRequest,
    out: Path,
    on_progress: progress.Progress | None,
) -> StepResult:
    """A step that describes the data: figures and JSON in a run folder of its own."""
    request.check()
    _, run, result = in_run_folder(name, request, out, lambda ds, run: work(ds, run, request.seed), on_progress)
    return StepResult(name, run, result)
