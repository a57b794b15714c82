"""Train any model on augmented *training* data; predict exactly like that model.

The model is passed in unfitted (``Augmented(estimator, library)``); it is cloned and fitted.

How the augmenter is used depends on the model, as each learns:
- the CNNs draw a fresh augmented copy of every batch (their ``augment`` parameter);
- the MLP trains epoch by epoch (``partial_fit``) on a fresh augmented copy of the training
  set each epoch;
- the other models are fitted once on an expanded set: the originals plus ``factor``
  augmented copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from digitlab.core.errors import DigitlabError
from digitlab.features.augment import get_augmenter

_CHUNK = 2048  # images per augmenter call


def augment_all(augmenter: Any, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([augmenter.augment(x[s : s + _CHUNK], rng) for s in range(0, len(x), _CHUNK)])


class Augmented(ClassifierMixin, BaseEstimator):
    def __init__(
        self, estimator: Any = None, library: str = "elastic", factor: int = 1, random_state: int | None = 0
    ) -> None:
        self.estimator = estimator  # unfitted estimator on images (a registry model)
        self.library = library  # augmentation back end
        self.factor = factor  # augmented copies per original (expanded-set models)
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> Augmented:
        if self.estimator is None:
            raise DigitlabError("Augmented needs an estimator to train, e.g. Augmented(registry.get('mlp').build(0)).")
        if not isinstance(self.factor, int | np.integer) or self.factor < 1:
            raise DigitlabError(f"--factor {self.factor}: use 1 or more augmented copies per image.")
        if y is None:
            raise ValueError("Augmented requires y to be passed, but the target y is None.")
        x, y = np.asarray(X), np.asarray(y)
        check_classification_targets(y)
        rng = np.random.default_rng(self.random_state)
        augmenter = get_augmenter(self.library)
        est = clone(self.estimator)
        if "augment" in est.get_params():
            self.mode_ = "fresh batches"
            est.set_params(augment=augmenter).fit(x, y)
        elif isinstance(est, Pipeline) and isinstance(est[-1], MLPClassifier):
            self.mode_ = "fresh copy each epoch"
            front, clf = est[:-1], est[-1]
            front.fit(x, y)
            classes = np.unique(y)
            for _ in range(clf.max_iter):
                clf.partial_fit(front.transform(augment_all(augmenter, x, rng)), y, classes=classes)
        else:
            self.mode_ = f"expanded set (originals + {self.factor} augmented copies)"
            copies = [augment_all(augmenter, x, rng) for _ in range(self.factor)]
            est.fit(np.concatenate([x, *copies]), np.concatenate([y] * (self.factor + 1)))
        self.model_ = est
        self.classes_ = np.asarray(est.classes_)
        n_features = getattr(est, "n_features_in_", None)
        if n_features is not None:
            self.n_features_in_ = int(n_features)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # (n,)
        return np.asarray(self.classes_[best])
