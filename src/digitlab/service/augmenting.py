"""Train with and without augmentation (same data, same seed) for each back end; the test split untouched."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitlab.analysis import explore as explore_lib
from digitlab.analysis import plots
from digitlab.core import progress
from digitlab.core.files import save_figure
from digitlab.data.datasets import Dataset
from digitlab.models import registry
from digitlab.runs.folders import Run
from digitlab.runs.records import Augmentation, AugmentCompare
from digitlab.service import tracking
from digitlab.service.base import StepResult, in_run_folder, sha256_of, sizes
from digitlab.service.requests import AugmentRequest
from digitlab.service.training import save_trained
from digitlab.training.train import Trained, score_model, train_and_score


def _augment_preview(ds: Dataset, library: str, run: Run, seed: int) -> Path:
    from digitlab.features.augment import get_augmenter

    augmenter = get_augmenter(library)
    rng = np.random.default_rng(seed)
    originals = explore_lib.examples_per_class(ds.x_train, ds.y_train, ds.n_classes, k=1, random_state=seed)[:, 0]
    grid = np.stack([originals, *(augmenter.augment(originals, rng) for _ in range(5))], axis=1)  # (k, 6, H, W)
    fig = plots.image_grid(grid, ds.class_names, f"{library}: original (left) and 5 augmented copies")
    return save_figure(fig, run.figures / f"augment-{library}-preview.png")


def augment_into(ds: Dataset, library: str, name: str, run: Run, seed: int = 0, factor: int = 1) -> Augmentation:
    """Train ``name`` with and without augmentation (same seed); compare test and robustness accuracy.

    Only training images are augmented; the test split is hashed before and after to prove it.
    """
    from digitlab.features.augment.robustness import robustness
    from digitlab.models.augmented import Augmented

    test_hash = sha256_of(ds.x_test)
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
    test_untouched = sha256_of(ds.x_test) == test_hash  # hashed before and after: augmentation never sees it
    saved = save_trained(
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
    return Augmentation.of(result).saved(run.path, library)


def augment_compare_into(
    ds: Dataset, libraries: Sequence[str], name: str, run: Run, seed: int = 0, factor: int = 1
) -> AugmentCompare:
    results = [augment_into(ds, lib, name, run, seed, factor) for lib in libraries]
    fig = plots.comparison(
        ["none", *libraries],
        [results[0]["without"]["accuracy"]] + [r["with"]["accuracy"] for r in results],
        [results[0]["without"]["fit_s"]] + [r["with"]["fit_s"] for r in results],
        [0.0] * (len(libraries) + 1),
    )
    chart = save_figure(fig, run.figures / "augment-compare.png")
    result = {"model": name, "results": results, "figure": str(chart.relative_to(run.path))}
    return AugmentCompare.of(result).saved(run.path)


def augment(request: AugmentRequest, on_progress: progress.Progress | None = None) -> StepResult:
    request.check()
    tracker = tracking.open_if(request.mlflow, request.out)
    ds, run, result = in_run_folder(
        "augment",
        request.data,
        request.out,
        lambda ds, run: augment_compare_into(
            ds, request.libraries, request.model, run, request.data.seed, request.factor
        ),
        on_progress,
        job_steps=len(request.libraries),
        tracker=tracker,
    )
    return StepResult("augment", run, result.adding(**sizes(ds, request.data)))
