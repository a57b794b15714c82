"""Soft voting: the weighted mean of several classifiers' probabilities.

Members are registry names (fitted here, each with the same seed) or already fitted
models (``SoftVote.from_fitted``, e.g. loaded from saved files, so nothing is retrained).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from digitlab.errors import DigitlabError


class SoftVote(ClassifierMixin, BaseEstimator):
    """Average ``predict_proba`` of ``members`` (weighted); predict the most probable class."""

    file_suffix = ".ensemble.json"

    def __init__(
        self,
        members: tuple[str, ...] = ("cnn", "cnn-aug", "svm"),
        weights: tuple[float, ...] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.members = members  # registry names, fitted in turn by fit()
        self.weights = weights  # one per member; None: equal
        self.random_state = random_state

    @classmethod
    def with_seed(cls, random_state: int | None = 0) -> SoftVote:
        return cls(random_state=random_state)

    @classmethod
    def from_fitted(
        cls, models: Sequence[Any], names: Sequence[str], weights: Sequence[float] | None = None
    ) -> SoftVote:
        """An ensemble of models that are already fitted on the same classes."""
        if len(models) < 2:
            raise DigitlabError("an ensemble needs at least two models.")
        classes = [np.asarray(m.classes_) for m in models]
        if any(not np.array_equal(c, classes[0]) for c in classes[1:]):
            raise DigitlabError(f"ensemble members {', '.join(names)} were trained on different classes.")
        vote = cls(members=tuple(names), weights=None if weights is None else tuple(weights))
        vote.members_ = list(models)
        vote.classes_ = classes[0]
        vote.n_features_in_ = getattr(models[0], "n_features_in_", None)
        vote.normalised_weights()
        return vote

    def normalised_weights(self) -> np.ndarray:
        """One weight per member, summing to 1; refuses negative, all-zero or mis-counted weights."""
        if self.weights is None:
            return np.full(len(self.members), 1.0 / len(self.members))
        w = np.asarray(self.weights, dtype=np.float64)
        if len(w) != len(self.members) or np.any(w < 0) or w.sum() <= 0:
            raise DigitlabError(
                f"ensemble weights {tuple(self.weights)} must be {len(self.members)} non-negative "
                "numbers, not all zero."
            )
        return w / w.sum()

    def fit(self, X: Any, y: Any) -> SoftVote:
        from digitlab.models import registry

        self.normalised_weights()
        if len(self.members) < 2:
            raise DigitlabError("an ensemble needs at least two members.")
        self.members_ = [registry.get(name).build(self.random_state).fit(X, y) for name in self.members]
        self.classes_ = np.asarray(self.members_[0].classes_)
        self.n_features_in_ = getattr(self.members_[0], "n_features_in_", None)
        return self

    def member_probabilities(self, X: Any) -> list[np.ndarray]:
        check_is_fitted(self, "members_")
        return [np.asarray(m.predict_proba(X), dtype=np.float64) for m in self.members_]  # each (n, k)

    def predict_proba(self, X: Any) -> np.ndarray:
        w = self.normalised_weights()
        probs = self.member_probabilities(X)
        return np.asarray(sum(wi * p for wi, p in zip(w, probs, strict=True)))  # (n, k)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
