"""scikit-learn pipelines that take images: logistic regression, k-NN, SVM, MLP.

Each starts with the same front (deskew → flatten → scale to [0, 1]), which lifts every
model on MNIST (the ablation: benchmarks/deskew.py, deskew.json), then adds what the model needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from digitlab.features.transforms import ReduceDims, preprocessing_pipeline


def _with_front(*steps: tuple[str, Any], deskew: bool = True) -> Pipeline:
    front = preprocessing_pipeline(deskewed=deskew)
    return Pipeline([*front.steps, *steps])


def build_lr(random_state: int | None = 0) -> Pipeline:
    # C=1: accuracy and fit time in benchmarks/compare.json
    return _with_front(("clf", LogisticRegression(C=1.0, max_iter=200, random_state=random_state)))


def build_knn(random_state: int | None = 0) -> Pipeline:
    # PCA to 50 dims drops pixel noise and makes each distance 784/50 times cheaper to compute
    return _with_front(
        ("pca", ReduceDims(n_components=50, random_state=random_state)),
        ("clf", KNeighborsClassifier(n_neighbors=4, weights="distance")),
    )


class SoftmaxSVC(ClassifierMixin, BaseEstimator):
    """RBF ``SVC`` whose ``predict_proba`` is a softmax of its one-vs-rest scores.

    ``SVC(probability=True)`` runs an internal 5-fold cross-validation (5 extra fits) to
    calibrate; this keeps one fit. The scores are votes plus a tie-breaking confidence, so
    ``argmax(predict_proba) == predict`` (``break_ties=True``); ``temperature`` scales how
    peaked the probabilities are. Treat them as confidences, not calibrated probabilities.
    """

    def __init__(
        self, C: float = 10.0, gamma: str | float = "scale", temperature: float = 1.0, cache_size: float = 1000.0
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.temperature = temperature
        self.cache_size = cache_size

    def fit(self, X: Any, y: Any) -> SoftmaxSVC:
        self.svc_ = SVC(
            C=self.C,
            gamma=self.gamma,
            kernel="rbf",
            decision_function_shape="ovr",
            break_ties=True,
            cache_size=self.cache_size,
        ).fit(X, y)
        self.classes_ = self.svc_.classes_
        self.n_features_in_ = self.svc_.n_features_in_
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # SVC takes sparse input
        return tags

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.svc_.decision_function(X))  # (n, k), or (n,) with two classes, as SVC

    def _scores(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        return np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores  # (n, k)

    def predict_proba(self, X: Any) -> np.ndarray:
        z = self._scores(X) / self.temperature  # (n, k)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        best = np.argmax(self._scores(X), axis=1)  # (n,)
        return np.asarray(self.classes_[best])


def build_svm(random_state: int | None = 0) -> Pipeline:
    # deskew + PCA(50) + RBF SVC; against raw-pixel SVC in benchmarks/compare.json (svm_speedup)
    return _with_front(
        ("pca", ReduceDims(n_components=50, random_state=random_state)),
        ("clf", SoftmaxSVC(C=10.0, gamma="scale")),
    )


def build_mlp(random_state: int | None = 0) -> Pipeline:
    return _with_front(
        (
            "clf",
            MLPClassifier(
                hidden_layer_sizes=(256,),
                alpha=1e-4,
                batch_size=128,
                learning_rate_init=1e-3,
                max_iter=20,
                random_state=random_state,
            ),
        ),  # a fixed 20-epoch budget
    )
