"""Teach a saved model one person's hand, and measure honestly whether it helped.

- the CNN (any saved ``CNNClassifier``) is fine-tuned: a copy trained further on the person's
  digits, freshly augmented each pass, with MNIST training digits replayed in every batch so
  that it keeps what it knew (``CNNClassifier.fine_tune``);
- k-NN and SVM are refitted with the person's digits added to their training set (``COPIES``
  times each, so that a few of them count among 60,000).

Honest before/after: part of the digits is held out, stratified: one split when every digit
has at least ``SPLIT_MIN`` examples, else k-fold (``k`` up to 5). Each held-out digit is scored
by the original model (before) and by a model adapted without it (after). The model that is
saved is then adapted on all the digits.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.core import progress
from digitlab.core.errors import DigitlabError
from digitlab.models import registry

REFIT_FAMILIES = ("knn", "svm")  # personalised by adding the digits to their training set
COPIES = 3  # each of a person's digits counts this many times in a refitted k-NN or SVM
SPLIT_MIN = 10  # with at least this many of every digit one stratified split, else k-fold
MAX_EPOCHS = 40  # passes over a few hundred digits
MIN_EPOCHS = 3
STEP_BUDGET = 1200  # fine-tuning steps per fit when the epochs are not given: 10,000 digits in ~3 min on 2 cores
BATCH = 32  # the person's digits in one fine-tuning step (CNNClassifier.fine_tune's batch_size)
HOLDOUT = 0.3  # share held out by the one split
MAX_FOLDS = 5


@dataclass
class Outcome:
    model: Any  # the adapted model (fitted on all the person's digits)
    scheme: str  # "split 30%" or "5-fold" …
    held_out: int  # digits scored before/after
    before: float  # accuracy of the original model on the held-out digits
    after: float  # … of the models adapted without them
    seconds: float  # adapting the saved model (the last fit)
    per_fold: list[dict[str, Any]] = field(default_factory=list)
    epochs: int | None = None  # passes over the digits (cnn), as given or from auto_epochs


def auto_epochs(n_digits: int) -> int:
    """Passes over ``n_digits`` when none are asked for: 40 for a few hundred digits, fewer for more, so the
    steps of one fit stay near ``STEP_BUDGET`` (10,000 digits: 3 epochs; personalise makes two fits: 57 s in
    all on 2 cores, held-out accuracy 76.4% → 99.97% for the continental stand-in writer)."""
    steps_per_epoch = max(1, -(-n_digits // BATCH))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, STEP_BUDGET // steps_per_epoch)))


def kind_of(model: Any, name: str) -> str:
    """``cnn`` (anything fine-tunable), ``knn`` or ``svm``; one line for the others."""
    if hasattr(model, "fine_tune"):
        return "cnn"
    base = registry.base_name(name.removesuffix("-personal"))
    if base in REFIT_FAMILIES:
        return base
    raise DigitlabError(
        f"model {name!r} cannot be personalised; use the cnn (fine-tuned), knn or svm (refitted with your digits)."
    )


def adapt(
    model: Any,
    kind: str,
    x: np.ndarray,
    y: np.ndarray,
    replay: tuple[np.ndarray, np.ndarray],
    epochs: int,
    seed: int,
    label: str = "fine-tune",
) -> Any:
    """A new model adapted to ``x, y``; ``model`` is left as it was."""
    if kind == "cnn":
        augment = None
        try:
            from digitlab.features.augment import get_augmenter

            augment = get_augmenter("opencv")
            augment.augment(x[:1], np.random.default_rng(0))
        except DigitlabError:  # OpenCV missing: fine-tune on the digits as drawn
            augment = None
        return model.fine_tune(
            x, y, replay=replay, epochs=epochs, augment=augment, random_state=seed, batch_size=BATCH, label=label
        )
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    fresh = clone(model)
    x_all = np.concatenate([replay[0], np.repeat(x, COPIES, axis=0)])
    y_all = np.concatenate([replay[1], np.repeat(y, COPIES)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fresh.fit(x_all, y_all)
    return fresh


def folds(y: np.ndarray, seed: int) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """How the digits are held out: one stratified split, or (stratified where possible) k-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold, StratifiedShuffleSplit

    if len(y) < 2:
        raise DigitlabError(
            f"{len(y)} digit saved: personalising needs at least 2 (better 10 of each digit) to hold some out."
        )
    counts = np.bincount(y, minlength=10)[np.unique(y)]
    if counts.min() >= SPLIT_MIN:
        split = StratifiedShuffleSplit(n_splits=1, test_size=HOLDOUT, random_state=seed)
        return f"one stratified split, {HOLDOUT:.0%} held out", list(split.split(np.zeros(len(y)), y))
    if counts.min() >= 2:
        k = int(min(MAX_FOLDS, counts.min()))
        return f"stratified {k}-fold", list(
            StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
        )
    k = int(min(MAX_FOLDS, len(y)))
    return f"{k}-fold (some digit has a single example)", list(KFold(k, shuffle=True, random_state=seed).split(y))


def personalise(
    model: Any,
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    replay: tuple[np.ndarray, np.ndarray],
    epochs: int | None = None,
    seed: int = 0,
) -> Outcome:
    """Held-out before/after over the folds, then the model adapted on every digit (``epochs``: ``auto_epochs``)."""
    kind = kind_of(model, name)
    epochs = auto_epochs(len(y)) if epochs is None else epochs
    scheme, splits = folds(y, seed)
    right_before = right_after = scored = 0
    per_fold = []
    for k, (train, test) in enumerate(splits):
        progress.step(
            f"fold {k + 1}/{len(splits)}",
            f"fold {k + 1} of {len(splits)}: adapting {name} to {len(train)} digits, scoring {len(test)} held out",
        )
        adapted = adapt(model, kind, x[train], y[train], replay, epochs, seed + k, f"fold {k + 1}/{len(splits)}")
        before = int((np.asarray(model.predict(x[test])) == y[test]).sum())
        after = int((np.asarray(adapted.predict(x[test])) == y[test]).sum())
        right_before, right_after, scored = right_before + before, right_after + after, scored + len(test)
        per_fold.append({"fold": k + 1, "train": len(train), "held_out": len(test), "before": before, "after": after})
    progress.step("adapt", f"adapting {name} to all {len(y)} digits")
    start = time.perf_counter()
    final = adapt(model, kind, x, y, replay, epochs, seed, "all digits")
    seconds = time.perf_counter() - start
    return Outcome(final, scheme, scored, right_before / scored, right_after / scored, seconds, per_fold, epochs)
