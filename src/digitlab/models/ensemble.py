"""Soft voting: the weighted mean of several classifiers' probabilities.

Members are ``(name, estimator)`` pairs, as in scikit-learn's ``VotingClassifier``: unfitted
estimators are cloned and fitted by ``fit``; already fitted models (``SoftVote.from_fitted``,
e.g. loaded from saved files) are used as they are, so nothing is retrained. The registry
builds the default members; this module knows nothing of the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from digitlab.core.errors import DigitlabError


class SoftVote(ClassifierMixin, BaseEstimator):
    """Average ``predict_proba`` of ``members`` (weighted); predict the most probable class."""

    file_suffix = ".ensemble.json"

    def __init__(
        self,
        members: tuple[tuple[str, Any], ...] = (),
        weights: tuple[float, ...] | None = None,
    ) -> None:
        self.members = members  # (name, estimator) pairs, cloned and fitted by fit()
        self.weights = weights  # one per member; None: equal

    @property
    def member_names(self) -> list[str]:
        return [str(name) for name, _ in self.members]

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
        vote = cls(members=tuple(zip(names, models, strict=True)), weights=None if weights is None else tuple(weights))
        vote.normalised_weights()
        vote.members_ = list(models)
        vote.classes_ = classes[0]
        n_features = getattr(models[0], "n_features_in_", None)
        if n_features is not None:
            vote.n_features_in_ = int(n_features)
        return vote

    def normalised_weights(self) -> np.ndarray:
        """One weight per member, summing to 1; refuses non-finite, negative, all-zero or mis-counted weights."""
        if self.weights is None:
            return np.full(len(self.members), 1.0 / max(1, len(self.members)))
        try:
            w = np.asarray(self.weights, dtype=np.float64)
        except (TypeError, ValueError):
            w = np.array([np.nan])
        if w.ndim != 1 or len(w) != len(self.members) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise DigitlabError(
                f"ensemble weights {tuple(self.weights)} must be {len(self.members)} finite, non-negative "
                "numbers, not all zero (e.g. 2,1,1)."
            )
        return w / w.sum()

    def fit(self, X: Any, y: Any) -> SoftVote:
        if len(self.members) < 2:
            raise DigitlabError("an ensemble needs at least two members.")
        self.normalised_weights()
        if y is None:
            raise ValueError("SoftVote requires y to be passed, but the target y is None.")
        y = np.asarray(y)
        check_classification_targets(y)
        self.members_ = [clone(estimator).fit(X, y) for _, estimator in self.members]
        self.classes_ = np.asarray(self.members_[0].classes_)
        n_features = getattr(self.members_[0], "n_features_in_", None)
        if n_features is not None:
            self.n_features_in_ = int(n_features)
        return self

    def member_probabilities(self, X: Any) -> list[np.ndarray]:
        check_is_fitted(self, "members_")
        return [np.asarray(m.predict_proba(X), dtype=np.float64) for m in self.members_]  # each (n, k)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        w = self.normalised_weights()
        probs = self.member_probabilities(X)
        return np.asarray(sum(wi * p for wi, p in zip(w, probs, strict=True)))  # (n, k)

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # (n,)
        return np.asarray(self.classes_[best])
