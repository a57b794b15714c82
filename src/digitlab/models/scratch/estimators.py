"""The from-scratch models as scikit-learn estimators on images: softmax regression, linear
SVM, MLP, CNN (mini-batch training, early stopping) and k-NN. NumPy only, apart from
scikit-learn's base classes for the estimator API.

Each takes images ``(n, H, W)`` uint8 (or, except the CNN, feature rows ``(n, d)``) and
saves its weights as ``.npz`` read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from digitlab.core.errors import DigitlabError
from digitlab.core.progress import INNER, Event, emit
from digitlab.models.scratch import layers as L
from digitlab.models.scratch.features import PCA, to_channels, to_features
from digitlab.models.scratch.losses import multiclass_hinge, softmax, softmax_cross_entropy
from digitlab.models.scratch.network import Sequential, kept_memory, split_validation, train
from digitlab.models.scratch.optim import Adam


def _checked(estimator: Any, X: Any, y: Any = None, reset: bool = False) -> Any:
    """scikit-learn's input validation (the estimator API, not its learning): finite, dense,
    numeric, consistent shapes; images (n, H, W) are allowed as well as rows (n, d)."""
    if reset:
        if y is None:
            raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None.")
        X, y = validate_data(estimator, X, y, allow_nd=True, dtype=None, ensure_min_samples=2)
        check_classification_targets(y)
        return X, y
    return validate_data(estimator, X, reset=False, allow_nd=True, dtype=None)


class _Saved:
    """Save and load as .npz: arrays plus a JSON config, never pickles."""

    file_suffix = ".npz"
    classes_: np.ndarray

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path, metadata: dict[str, Any]) -> None:
        from digitlab.core.files import atomic_path

        check_is_fitted(self)
        config = {
            "class": type(self).__name__,
            "params": self.get_params(),  # type: ignore[attr-defined]  # from BaseEstimator
            "classes": self.classes_.tolist(),
            "extra": self._extra(),
            "metadata": metadata,
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            arrays: dict[str, Any] = {"__config__": np.array(json.dumps(config)), **self._arrays()}
            np.savez(fh, **arrays)

    def _extra(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def load(path: str | Path) -> tuple[Any, dict[str, Any]]:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            config = json.loads(str(arrays.pop("__config__")))
            cls = SCRATCH_CLASSES[config["class"]]
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in config["params"].items()}
            model = cls(**params)
            model.classes_ = np.asarray(config["classes"])
            model._restore(arrays, config.get("extra", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DigitlabError(
                f"{path}: not a readable scratch model file ({type(exc).__name__}); train the model again."
            ) from None
        return model, config.get("metadata", {})


class _ScratchNet(_Saved, ClassifierMixin, BaseEstimator):
    """Shared fit/predict for the gradient-trained networks; subclasses build the layers."""

    loss = staticmethod(softmax_cross_entropy)

    def _inputs(self, x: Any) -> np.ndarray:
        return to_features(x, self.deskew)

    def _build(self, n_in: tuple[int, ...], n_classes: int, rng: np.random.Generator) -> Sequential:
        raise NotImplementedError

    def _augment(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return batch  # each training batch as it is; the CNN moves its digits

    def fit(self, X: Any, y: Any = None) -> _ScratchNet:
        X, y = _checked(self, X, y, reset=True)
        x = self._inputs(X)  # (n, ...) float32
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        rng = np.random.default_rng(self.random_state)
        x_val = y_val = None
        if self.validation_fraction > 0 and len(x) >= 20:
            tr, va = split_validation(len(x), y_idx, self.validation_fraction, rng)
            x, x_val, y_idx, y_val = x[tr], x[va], y_idx[tr], y_idx[va]
        self.input_shape_ = tuple(int(d) for d in x.shape[1:])
        self.net_ = self._build(self.input_shape_, len(self.classes_), rng)
        optimiser = Adam(self.net_.layers, lr=self.learning_rate, l2=self.l2)
        bar = _Progress(self.epochs, type(self).__name__, self.verbose)
        with kept_memory():
            self.history_ = train(
                self.net_,
                self.loss,
                optimiser,
                x,
                y_idx,
                x_val,
                y_val,
                self.epochs,
                self.batch_size,
                self.patience,
                rng,
                bar,
                self._augment,
            )
        bar.close()
        self.n_epochs_ = len(self.history_)
        return self

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "net_")
        with kept_memory():
            return self.net_.scores(self._inputs(_checked(self, X)))  # (n, K)

    def decision_function(self, X: Any) -> np.ndarray:
        z = self._scores(X)  # (n, K); two classes: one score per row, as scikit-learn does
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self._scores(X).astype(np.float64))

    def predict(self, X: Any) -> np.ndarray:
        best = self._scores(X).argmax(axis=1)  # (n,); checks fitted before classes_ is read
        return np.asarray(self.classes_[best])

    def _arrays(self) -> dict[str, np.ndarray]:
        return self.net_.state()

    def _extra(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape_), "history": self.history_, "n_features_in": self.n_features_in_}

    def _restore(self, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> None:
        self.input_shape_ = tuple(extra["input_shape"])
        self.n_features_in_ = int(extra.get("n_features_in") or self.input_shape_[-1])
        self.history_ = extra.get("history", [])
        self.net_ = self._build(self.input_shape_, len(self.classes_), np.random.default_rng(0))
        state = self.net_.state()
        if set(state) != set(arrays) or any(state[k].shape != arrays[k].shape for k in state):
            raise ValueError("weights do not match the configuration")
        self.net_.load_state(arrays)


class _Progress:
    """One progress event per epoch, with its loss and validation accuracy."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0

    def __call__(self, record: dict[str, float]) -> None:
        self.done += 1
        if not self.enabled:
            return
        metrics = {k: float(v) for k, v in record.items() if k != "epoch"}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        step = f"epoch {self.done}/{self.total}"
        emit(Event(step, 1, 1, f"{self.desc} {step}: {shown}", metrics, level=INNER))

    def close(self) -> None:
        return None


class ScratchSoftmax(_ScratchNet):
    """Multinomial logistic regression: one Dense layer, softmax cross-entropy, L2, Adam."""

    def __init__(
        self,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-2,
        l2: float = 1e-4,
        deskew: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 5,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.epochs, self.batch_size, self.learning_rate, self.l2 = epochs, batch_size, learning_rate, l2
        self.deskew, self.validation_fraction, self.patience = deskew, validation_fraction, patience
        self.random_state, self.verbose = random_state, verbose

    def _build(self, n_in: tuple[int, ...], n_classes: int, rng: np.random.Generator) -> Sequential:
        return Sequential([L.Dense(n_in[0], n_classes, rng)])


class ScratchLinearSVM(ScratchSoftmax):
    """Linear SVM: one Dense layer trained on the multiclass hinge loss (mini-batch, Adam, L2).

    ``predict_proba`` is a softmax of the scores: confidences, not calibrated probabilities.
    """

    loss = staticmethod(multiclass_hinge)


class ScratchMLP(_ScratchNet):
    """Dense-ReLU(-Dropout) blocks and a softmax head, trained with Adam on mini-batches."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (256,),
        dropout: float = 0.0,
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        l2: float = 1e-5,
        deskew: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 5,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.hidden, self.dropout, self.epochs, self.batch_size = hidden, dropout, epochs, batch_size
        self.learning_rate, self.l2, self.deskew = learning_rate, l2, deskew
        self.validation_fraction, self.patience = validation_fraction, patience
        self.random_state, self.verbose = random_state, verbose

    def _build(self, n_in: tuple[int, ...], n_classes: int, rng: np.random.Generator) -> Sequential:
        layers: list[L.Layer] = []
        width = n_in[0]
        for h in self.hidden:
            layers += [L.Dense(width, h, rng), L.ReLU()]
            if self.dropout > 0:
                layers.append(L.Dropout(self.dropout, rng))
            width = h
        return Sequential([*layers, L.Dense(width, n_classes, rng)])


class ScratchCNN(_ScratchNet):
    """conv3×3-pool-ReLU → conv3×3-pool-ReLU → Dense-ReLU-Dropout → Dense, via im2col on channels-last images.

    Pooling before the ReLU gives the same network as ReLU-then-pool (max and ReLU commute) with the ReLU
    on a quarter of the pixels. Each training digit is moved by up to ``shift`` pixels per axis.
    Shapes for 28×28 input and channels (c1, c2): (B, 28, 28, 1) → (B, 28, 28, c1) → (B, 14, 14, c1)
    → (B, 14, 14, c2) → (B, 7, 7, c2) → (B, 49·c2) → (B, hidden) → (B, K).
    """

    def __init__(
        self,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
        dropout: float = 0.25,
        epochs: int = 12,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        l2: float = 0.0,
        deskew: bool = False,
        shift: int = 2,
        validation_fraction: float = 0.1,
        patience: int = 5,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.channels, self.hidden, self.dropout, self.epochs = channels, hidden, dropout, epochs
        self.batch_size, self.learning_rate, self.l2, self.deskew = batch_size, learning_rate, l2, deskew
        self.shift = shift  # each training digit moved by up to this many pixels per axis at 28×28, fewer if smaller
        self.validation_fraction, self.patience = validation_fraction, patience
        self.random_state, self.verbose = random_state, verbose

    def _inputs(self, x: Any) -> np.ndarray:
        out = to_channels(x, self.deskew)  # (n, H, W, 1)
        if out.shape[1] % 4 or out.shape[2] % 4:
            raise DigitlabError(f"scratch-cnn needs image sides divisible by 4, got {out.shape[1:3]}.")
        return out

    def _augment(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(self.shift, int | np.integer) or self.shift < 0:
            raise DigitlabError(f"scratch-cnn shift {self.shift!r}: give 0 or more pixels (0: digits as they are).")
        reach = int(self.shift * min(batch.shape[1:3]) / 28)  # 2 pixels of 28 are 1 of 16, none of 8
        return L.shifted(batch, reach, rng) if reach else batch

    def _restore(self, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> None:
        shape = list(extra["input_shape"])
        if len(shape) == 3 and shape[0] == 1 and shape[2] != 1:  # saved channels first (before 2026-12): same net
            extra = {**extra, "input_shape": [shape[1], shape[2], 1]}
        super()._restore(arrays, extra)

    def _build(self, n_in: tuple[int, ...], n_classes: int, rng: np.random.Generator) -> Sequential:
        c1, c2 = self.channels
        h, w, _ = n_in
        return Sequential(
            [
                L.Conv2D(1, c1, 3, rng),
                L.MaxPool2D(),
                L.ReLU(),
                L.Conv2D(c1, c2, 3, rng),
                L.MaxPool2D(),
                L.ReLU(),
                L.FlattenChannels(),
                L.Dense(c2 * (h // 4) * (w // 4), self.hidden, rng),
                L.ReLU(),
                L.Dropout(self.dropout, rng),
                L.Dense(self.hidden, n_classes, rng),
            ]
        )


def _k_smallest(score: np.ndarray, k: int, width: int = 250) -> np.ndarray:
    """Column indices of the k smallest entries of each row of ``score`` (c, n), unordered.

    A full ``argpartition`` touches every entry with a slow selection. Instead: split each
    row into blocks of ``width``, take each block's minimum (a fast reduction), keep the k
    blocks with the smallest minima, and select among their k·width entries only. Exact:
    the k smallest values are all at most the k-th smallest block minimum, and every entry
    that small lies in one of those k blocks (ties aside).
    """
    c, n = score.shape
    if n <= 4 * k * width:
        return np.argpartition(score, k - 1, axis=1)[:, :k]
    n_blocks = -(-n // width)
    if n % width:  # pad the last block with +inf (never selected)
        padded = np.full((c, n_blocks * width), np.inf, dtype=score.dtype)
        padded[:, :n] = score
        score = padded
    blocks = score.reshape(c, n_blocks, width)  # (c, n_blocks, width)
    best_blocks = np.argpartition(blocks.min(axis=2), k - 1, axis=1)[:, :k]  # (c, k)
    gathered = np.take_along_axis(blocks, best_blocks[:, :, None], axis=1).reshape(c, k * width)  # (c, k·width)
    local = np.argpartition(gathered, k - 1, axis=1)[:, :k]  # (c, k) positions within the gathered blocks
    return np.take_along_axis(best_blocks, local // width, axis=1) * width + local % width


_SAME = 1e-7  # distances this small count as identical rows (rounding differs between batch sizes)


class ScratchKNN(_Saved, ClassifierMixin, BaseEstimator):
    """k nearest neighbours by Euclidean distance, computed in chunks of test rows.

    ‖a - b‖² = ‖a‖² - 2 a·b + ‖b‖²: one matrix product per chunk of test rows (chunk × n_train
    float32 at a time: 128 × 60,000 = 31 MB), ``argpartition`` for the k smallest, then the k
    distances recomputed exactly in float64.
    """

    def __init__(
        self,
        n_neighbors: int = 4,
        weights: str = "distance",
        n_components: int | None = 50,
        deskew: bool = True,
        chunk_size: int = 128,
    ) -> None:
        self.n_neighbors, self.weights, self.n_components = n_neighbors, weights, n_components
        self.deskew, self.chunk_size = deskew, chunk_size

    def _features(self, x: Any) -> np.ndarray:
        f = to_features(x, self.deskew)  # (n, d)
        return self.pca_.transform(f) if self.pca_ is not None else f  # (n, k)

    def fit(self, X: Any, y: Any = None) -> ScratchKNN:
        if self.weights not in ("uniform", "distance"):
            raise DigitlabError(f"weights={self.weights!r}: use 'uniform' or 'distance'.")
        X, y = _checked(self, X, y, reset=True)
        f = to_features(X, self.deskew)
        self.pca_ = PCA(self.n_components).fit(f) if self.n_components else None
        self.train_ = self.pca_.transform(f) if self.pca_ is not None else f  # (n_train, k)
        self.train_sq_ = (self.train_.astype(np.float64) ** 2).sum(axis=1)  # (n_train,)
        self.classes_, self.y_ = np.unique(np.asarray(y), return_inverse=True)
        return self

    def kneighbors(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of the k nearest training rows, nearest first: (n, k) each."""
        check_is_fitted(self, "train_")
        q = self._features(_checked(self, X)).astype(np.float64)  # (n, d)
        k = min(self.n_neighbors, len(self.train_))
        dists, idxs = [], []
        train = self.train_.astype(np.float64)
        # ranking only needs ‖b‖²/2 - q·b (‖q‖² is the same along a row): one float32 product
        # of [q, 1] with [-b, ‖b‖²/2], so no extra pass over the (c, n_train) scores
        train_aug = np.hstack([-self.train_, 0.5 * self.train_sq_[:, None]]).astype(np.float32).T  # (d+1, n_train)
        for s in range(0, len(q), self.chunk_size):
            block = q[s : s + self.chunk_size]  # (c, d)
            block_aug = np.hstack([block, np.ones((len(block), 1))]).astype(np.float32)  # (c, d+1)
            score = block_aug @ train_aug  # (c, n_train)
            part = _k_smallest(score, k)  # (c, k), unordered
            # the expansion above loses precision for near-identical rows: recompute the k exactly
            part_d = np.sqrt(((block[:, None, :] - train[part]) ** 2).sum(axis=2))  # (c, k)
            order = np.lexsort((part, part_d), axis=1)  # by distance, then by training index
            idxs.append(np.take_along_axis(part, order, axis=1))
            dists.append(np.take_along_axis(part_d, order, axis=1))
        return np.concatenate(dists), np.concatenate(idxs)

    def predict_proba(self, X: Any) -> np.ndarray:
        dist, idx = self.kneighbors(X)  # (n, k) each
        if self.weights == "distance":
            exact = dist <= _SAME  # (n, k): a training row identical to the query, up to rounding
            with np.errstate(divide="ignore"):
                w = np.where(exact, 1.0, 1.0 / np.maximum(dist, _SAME))
            w = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64), w)  # exact matches win
        else:
            w = np.ones_like(dist)
        votes = np.zeros((len(idx), len(self.classes_)))  # (n, K)
        np.add.at(votes, (np.arange(len(idx))[:, None], self.y_[idx]), w)
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # (n,); checks fitted before classes_ is read
        return np.asarray(self.classes_[best])

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"train": self.train_, "y": self.y_}
        if self.pca_ is not None:
            out.update(pca_mean=self.pca_.mean_, pca_components=self.pca_.components_)
        return out

    def _restore(self, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> None:
        self.train_, self.y_ = arrays["train"], arrays["y"]
        self.train_sq_ = (self.train_.astype(np.float64) ** 2).sum(axis=1)
        self.pca_ = None
        if "pca_components" in arrays:
            self.pca_ = PCA(self.n_components or arrays["pca_components"].shape[0])
            self.pca_.mean_, self.pca_.components_ = arrays["pca_mean"], arrays["pca_components"]
        self.n_features_in_ = int(extra.get("n_features_in") or self.train_.shape[1])

    def _extra(self) -> dict[str, Any]:
        return {"n_features_in": self.n_features_in_}


SCRATCH_CLASSES: dict[str, type] = {
    c.__name__: c for c in (ScratchSoftmax, ScratchLinearSVM, ScratchMLP, ScratchCNN, ScratchKNN)
}
