"""Adapt a saved model to one writer's digits (held-out digits scored before and after) and measure how a
run's models read your digits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from digitlab.analysis import plots
from digitlab.analysis.evaluate import evaluate_predictions
from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.core.files import save_figure
from digitlab.data.datasets import Dataset, load_dataset
from digitlab.models.store import load_model, model_name, model_path, save_model
from digitlab.runs.folders import Run, model_index, record_model
from digitlab.runs.lookup import find_model
from digitlab.runs.records import Mine, Personalise
from digitlab.service import tracking
from digitlab.service.base import StepResult, in_run_folder, trained_on
from digitlab.service.evaluating import Ds_and_model
from digitlab.service.requests import (
    PersonaliseRequest,
)


def measure_mine(mine: Dataset, models: Sequence[tuple[str, Any]], run: Run) -> Mine:
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
    return Mine.of(result).saved(run.path)


def personalise_into(
    mine: Dataset,
    base: Ds_and_model,
    run: Run,
    epochs: int | None = None,
    seed: int = 0,
) -> Personalise:
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
    return Personalise.of(result).saved(run.path)


def measure_mine_in(run: Run) -> Mine | None:
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


def personalise(request: PersonaliseRequest, on_progress: progress.Progress | None = None) -> StepResult:
    """Adapt a saved model to your digits into a new run folder (``latest`` stays where it was)."""
    from digitlab.data.datasets import DIGIT_NAMES, load_dataset
    from digitlab.training import personalise as personal

    request.check()
    path = find_model(request.model, request.out, (28, 28))
    model, meta = loaded = load_model(path)
    name = str(meta.get("model", model_name(path)))
    personal.kind_of(model, name)  # only the cnn, knn and svm: refused before anything is read
    if list(meta.get("class_names", [])) != list(DIGIT_NAMES) or list(meta.get("image_shape", [])) != [28, 28]:
        raise DigitlabError(
            f"{path}: model {name} reads {meta.get('dataset', 'other')} images, not 28×28 digits 0–9; "
            "personalise a model trained on mnist."
        )
    mine = load_dataset(f"mine:{request.writer}")  # one line when you have saved no digits yet
    data = trained_on(meta, request.data_dir)
    tracker = tracking.open_if(request.mlflow, request.out)
    _, run, result = in_run_folder(
        f"personalise-{name}",
        data,
        request.out,
        lambda ds, run: personalise_into(mine, (ds, path, loaded), run, request.epochs, request.seed),
        on_progress,
        tracker=tracker,
        latest=False,
    )
    return StepResult("personalise", run, result)
