"""A compact convolutional network in PyTorch, wrapped as a scikit-learn classifier on images.

Training: the whole training set as one tensor in memory (channels-last), each batch moved by a
random pixel offset, AdamW with a one-cycle learning-rate schedule, a validation split carved from
the training data, early stopping on validation accuracy (the best epoch's weights are
kept), progress events per epoch (``digitlab.core.progress``). Two nets: ``classic`` (the default)
and ``fast`` (cnn-fast), shaped for CPUs: 99.4–99.6% on MNIST in a third of the time (benchmarks/cnn_speed.py).
An int ``random_state`` makes CPU runs repeatable; ``None`` draws fresh randomness, as in scikit-learn.
Saved as a ``state_dict`` (loaded with ``weights_only=True``) plus a JSON config.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from digitlab.core.errors import DigitlabError
from digitlab.core.progress import INNER, Event, emit
from digitlab.features.transforms import as_images
from digitlab.models.nets import (
    build_network,
    config_path,
    load_weights,
    read_config,
    read_poses,
    saved_params,
    unreadable_config,
)
from digitlab.models.nets import torch_module as _torch

# The classic net (the cnn until #18: 99.5% in 10 epochs); cnn-aug trains it on augmented batches.
CLASSIC: dict[str, Any] = {"arch": "classic", "channels": (16, 32), "hidden": 128, "max_lr": 3e-3, "shift": 0}
# cnn-fast: the net shaped for CPUs, batches shifted by up to a pixel, 8 epochs (benchmarks/cnn_speed.py).
FAST: dict[str, Any] = {"arch": "fast", "channels": (16, 32, 128), "hidden": 0, "max_lr": 5e-3, "shift": 1, "epochs": 8}
# cnn (the default): the fast net reading each digit at its 9 one-pixel shifts (99.55% in about a third
# of the classic net's training time; benchmarks/cnn_speed.py).
DEFAULT: dict[str, Any] = {**FAST, "views": 1}
# cnn-hands: the cnn trained 12 epochs on MNIST plus 10,000 digits pen-drawn in random hands (five glyph
# families, varied; slants, pens; strokes.synthetic_digits), OpenCV-augmented but for the last two epochs
# (which sharpen it on digits as they are: MNIST 99.4% -> 99.5%): the best reader of real pictures
# (benchmarks/heldout.py, benchmarks/realworld.py).
HANDS: dict[str, Any] = {**DEFAULT, "epochs": 12, "synthetic": 1000, "plain_epochs": 2}


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """PyTorch CNN on images ``(n, H, W)`` uint8 (the classic arch: H and W divisible by 4)."""

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 128,
        max_lr: float = 3e-3,
        weight_decay: float = 1e-4,
        arch: str = "classic",
        channels: tuple[int, ...] = (16, 32),
        hidden: int = 128,
        dropout: float = 0.25,
        validation_fraction: float = 0.1,
        patience: int = 4,
        shift: int = 0,
        views: int = 0,
        poses: tuple[tuple[float, float], ...] = (),
        augment: Any = None,
        synthetic: int = 0,
        plain_epochs: int = 0,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.epochs = epochs  # upper bound; early stopping may end sooner
        self.batch_size = batch_size
        self.max_lr = max_lr  # peak of the one-cycle schedule
        self.weight_decay = weight_decay
        self.arch = arch  # "classic" or "fast" (shaped for a CPU: cnn-fast); see build_network
        self.channels = channels
        self.hidden = hidden  # units of a dense layer before the output; 0: none
        self.dropout = dropout
        self.validation_fraction = validation_fraction  # 0 turns validation and early stopping off
        self.patience = patience  # epochs without a better validation accuracy before stopping (second half only)
        self.shift = shift  # each training batch moved by up to this many pixels (a random offset per batch)
        self.views = views  # test-time shifts: read each image moved by up to this many pixels, mean probability
        self.poses = poses  # test-time poses (degrees, scale): each image also read turned and scaled, at every shift
        self.augment = augment  # an augmenter (uint8 images in/out) applied to each training batch
        self.synthetic = synthetic  # pen-drawn digits per class added (strokes.synthetic_digits), ≤ a fifth of the set
        self.plain_epochs = plain_epochs  # the last this many epochs see the digits as they are (no ``augment``)
        self.device = device  # "auto": CUDA when present, else CPU
        self.random_state = random_state
        self.verbose = verbose  # progress events per epoch (digitlab.core.progress)

    file_suffix = ".pt"

    @classmethod
    def with_seed(cls, random_state: int | None = 0) -> CNNClassifier:
        """The cnn: the net shaped for CPUs, read at nine one-pixel shifts of each digit (``DEFAULT``)."""
        return cls(**DEFAULT, random_state=random_state)

    @classmethod
    def fast(cls, random_state: int | None = 0) -> CNNClassifier:
        """cnn-fast: the cnn's net without the test-time shifts (a ninth of the work per prediction)."""
        return cls(**FAST, random_state=random_state)

    @classmethod
    def classic(cls, random_state: int | None = 0) -> CNNClassifier:
        """cnn-classic: the cnn until #18 (conv-BN-ReLU ×2 blocks, 10 epochs); three times the training time."""
        return cls(**CLASSIC, random_state=random_state)

    @classmethod
    def augmented(cls, random_state: int | None = 0) -> CNNClassifier:
        """The classic net, 20 epochs, each batch freshly rotated, shifted, scaled and thickened (OpenCV)."""
        from digitlab.features.augment import get_augmenter

        return cls(**CLASSIC, epochs=20, augment=get_augmenter("opencv"), random_state=random_state)

    @classmethod
    def hands(cls, random_state: int | None = 0) -> CNNClassifier:
        """cnn-hands: the cnn, 12 epochs of MNIST and pen-drawn digits, OpenCV-augmented but the last 2 (``HANDS``)."""
        from digitlab.features.augment import get_augmenter

        return cls(**HANDS, augment=get_augmenter("opencv"), random_state=random_state)

    # --- helpers -------------------------------------------------------------------------
    def _device(self) -> Any:
        torch = _torch()
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise DigitlabError(f"cnn device {self.device!r}: unknown; use auto, cpu or cuda.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DigitlabError(f"cnn device {self.device!r}: this machine has no CUDA GPU; use auto or cpu.")
        return device

    @staticmethod
    def _tensor(x: np.ndarray, device: Any) -> Any:
        torch = _torch()
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / 255.0)  # (n, H, W) in [0, 1]
        return t.unsqueeze(1).to(device).contiguous(memory_format=torch.channels_last)  # (n, 1, H, W)

    def _network(self, n_classes: int, image_shape: tuple[int, int]) -> Any:
        return build_network(n_classes, tuple(self.channels), self.hidden, self.dropout, image_shape, self.arch)

    @staticmethod
    def _shifted(batch: Any, shift: int, rng: np.random.Generator) -> Any:
        """``batch`` (B, 1, H, W) moved by one random offset of up to ``shift`` pixels each way, zeros filled in."""
        torch = _torch()
        h, w = batch.shape[-2:]
        dy, dx = (int(d) for d in rng.integers(0, 2 * shift + 1, size=2))
        padded = torch.nn.functional.pad(batch, (shift, shift, shift, shift))  # (B, 1, H + 2s, W + 2s)
        return padded[:, :, dy : dy + h, dx : dx + w].contiguous(memory_format=torch.channels_last)

    def _with_synthetic(self, x: np.ndarray, y_idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training digits plus ``synthetic`` pen-drawn digits of each class, at most a fifth as many as
        there are training digits so that a small training set is not swamped (validation stays as given)."""
        from digitlab.data.strokes import synthetic_digits

        if int(self.synthetic) < 0:
            raise DigitlabError(f"cnn synthetic {self.synthetic!r}: give 0 or more drawn digits per class.")
        if self.classes_.tolist() != list(range(10)) or self.image_shape_ != (28, 28):
            raise DigitlabError(
                "cnn synthetic: pen-drawn digits are 28×28 digits 0–9; this training set has classes "
                f"{self.classes_.tolist()[:12]} of {self.image_shape_} images, so set synthetic=0."
            )
        n = min(int(self.synthetic), len(x) // 50)
        drawn, labels = synthetic_digits(n, seed, progress=bool(self.verbose))
        self.n_synthetic_ = len(labels)
        return np.concatenate([x, drawn]), np.concatenate([y_idx, labels])

    # --- estimator API --------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> CNNClassifier:
        if y is None:
            raise ValueError("CNNClassifier requires y to be passed, but the target y is None.")
        torch = _torch()
        x = as_images(X)
        read_poses(self.poses)  # a bad reading setting fails before the training, not after it
        if self.arch == "classic" and (x.shape[1] % 4 or x.shape[2] % 4):
            raise DigitlabError(f"the classic cnn needs image sides divisible by 4, got {x.shape[1:]}.")
        y = np.asarray(y)
        check_classification_targets(y)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"CNNClassifier needs as many labels as images (at least 1), got {len(x)} and {len(y)}.")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.image_shape_ = (int(x.shape[1]), int(x.shape[2]))
        self.n_features_in_ = int(x.shape[1] * x.shape[2])
        seed = _seed(self.random_state)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        x_val = y_val = None
        if self.validation_fraction > 0:
            x, x_val, y_idx, y_val = train_test_split(
                x, y_idx, test_size=self.validation_fraction, stratify=y_idx, random_state=seed
            )
        self.n_synthetic_ = 0
        if self.synthetic:
            x, y_idx = self._with_synthetic(x, y_idx, seed)
        device = self._device()
        net = self._network(len(self.classes_), self.image_shape_).to(device)
        batch_size = self.batch_size
        if self.arch == "fast":  # few epochs: on a small training set, smaller batches keep 16 steps per epoch
            batch_size = max(1, min(batch_size, len(x) // 16))
        steps_per_epoch = int(np.ceil(len(x) / batch_size))
        optimiser = torch.optim.AdamW(net.parameters(), lr=self.max_lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=self.max_lr, epochs=self.epochs, steps_per_epoch=steps_per_epoch
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        y_t = torch.from_numpy(y_idx.astype(np.int64)).to(device)
        x_t = None
        first_plain = self.epochs - int(self.plain_epochs) if self.augment is not None else 0
        best_acc, best_state, stale = -1.0, None, 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(self.epochs):
            net.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total, seen = 0.0, 0
            bar = _EpochProgress(f"epoch {epoch + 1}/{self.epochs}", steps_per_epoch, self.verbose)
            augmenting = epoch < first_plain
            if not augmenting and x_t is None:
                x_t = self._tensor(x, device)  # (n, 1, H, W), made once
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                if augmenting:
                    batch = self._tensor(self.augment.augment(x[idx.numpy()], rng), device)  # (B, 1, H, W)
                else:
                    assert x_t is not None
                    batch = x_t[idx]  # (B, 1, H, W)
                if self.shift:
                    batch = self._shifted(batch, int(self.shift), rng)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(net(batch), y_t[idx])  # logits (B, k) vs labels (B,)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.update()
            record = {"epoch": epoch + 1, "loss": total / seen}
            if x_val is not None:
                record["val_accuracy"] = float((self._predict_idx(net, x_val, device) == y_val).mean())
            bar.close(record)
            self.history_.append(record)
            score = record.get("val_accuracy", -record["loss"])
            if score > best_acc:
                best_acc, best_state, stale = score, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                # the one-cycle schedule anneals in the second half: never stop before it has
                if x_val is not None and stale >= self.patience and epoch + 1 > self.epochs // 2:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.network_ = net.eval()
        self.n_epochs_ = len(self.history_)
        return self

    def _logits(self, net: Any, x: np.ndarray, device: Any, batch: int = 1000, once: bool = False) -> np.ndarray:
        """(n, k) logits; with test-time shifts and poses (``views``, ``poses``) the log of the mean probability.

        ``once``: each image read once as it is (validation during training)."""
        torch = _torch()
        from digitlab.models.exported import pose_matrices, view_logits

        views, poses = (0, ()) if once else (int(self.views), read_poses(self.poses))
        maps = None
        if poses:  # (P, H·W, H·W), made once for these poses (about 0.1 s a pose at 28×28), not per call
            key = (poses, x.shape[1:3], str(device))
            if getattr(self, "_pose_maps", (None, None))[0] != key:
                self._pose_maps = (key, pose_matrices(poses, *x.shape[1:3]).to(device))
            maps = self._pose_maps[1]
        batch = max(1, batch // ((2 * views + 1) ** 2 * (1 + len(poses))))  # a batch's views go through together
        net.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), batch):
                z = view_logits(net, self._tensor(x[start : start + batch], device), views, maps)
                out.append(z.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)  # (n, k)

    def _predict_idx(self, net: Any, x: np.ndarray, device: Any) -> np.ndarray:
        """Validation during training: the image as it is (shifted views would cost as much again as an epoch)."""
        return self._logits(net, x, device, once=True).argmax(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        x = as_images(X)
        if tuple(x.shape[1:]) != self.image_shape_:
            raise DigitlabError(f"the cnn was trained on {self.image_shape_} images, got {tuple(x.shape[1:])}.")
        z = self._logits(self.network_, x, next(self.network_.parameters()).device).astype(np.float64)  # (n, k)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def fine_tune(
        self,
        X: Any,
        y: Any,
        replay: tuple[np.ndarray, np.ndarray] | None = None,
        epochs: int = 40,
        batch_size: int = 32,
        replay_batch: int = 96,
        lr: float = 5e-4,
        augment: Any = None,
        random_state: int | None = 0,
        distill: float = 3.0,
        temperature: float = 2.0,
        label: str = "fine-tune",
    ) -> CNNClassifier:
        """A copy of this fitted network trained further on ``X, y`` (a person's digits); ``self`` is unchanged.

        Each step takes ``batch_size`` of the new digits (freshly augmented when ``augment`` is given) and
        ``replay_batch`` digits drawn from ``replay`` (the original training set), so that what the network
        knew is rehearsed while it learns the new hand. ``epochs`` counts passes over the new digits; the
        learning rate rises and anneals over them (one-cycle). On the replayed digits the loss also pulls the
        network's answers towards the original network's (distillation, weight ``distill``, softened by
        ``temperature``), which keeps MNIST accuracy where it was. Progress: a few events per epoch and
        one when it ends, with the loss and the time left (always: a saved model loads with verbose off,
        and fine-tuning is the long part of ``digitlab personalise``); ``label`` names the work in them.
        """
        check_is_fitted(self, "network_")
        torch = _torch()
        x = as_images(X)
        y = np.asarray(y)
        if len(x) == 0 or len(x) != len(y):
            raise DigitlabError(f"fine-tuning needs digits and as many labels, got {len(x)} and {len(y)}.")
        unknown = sorted(set(y.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise DigitlabError(f"labels {unknown} are not classes of this cnn ({self.classes_.tolist()}).")
        y_idx = np.searchsorted(self.classes_, y)
        seed = _seed(random_state)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        tuned = copy.deepcopy(self)
        net = tuned.network_
        device = next(net.parameters()).device
        if replay is not None:
            r_x, r_y = as_images(replay[0]), np.searchsorted(self.classes_, np.asarray(replay[1]))
        steps_per_epoch = int(np.ceil(len(x) / batch_size))
        optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        teacher = self.network_.eval()
        history = []
        began = time.perf_counter()
        for epoch in range(epochs):
            net.train()
            order = rng.permutation(len(x))
            total, seen = 0.0, 0
            bar = _EpochProgress(f"{label} epoch {epoch + 1}/{epochs}", steps_per_epoch, True)
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x[idx], y_idx[idx]
                if augment is not None:
                    xb = augment.augment(xb, rng)
                if replay is not None:
                    pick = rng.integers(0, len(r_y), size=replay_batch)
                    xb, yb = np.concatenate([xb, r_x[pick]]), np.concatenate([yb, r_y[pick]])
                optimiser.zero_grad(set_to_none=True)
                batch = self._tensor(xb, device)  # (B, 1, H, W)
                logits = net(batch)  # (B, k)
                loss = loss_fn(logits, torch.from_numpy(yb.astype(np.int64)).to(device))
                if replay is not None and distill > 0:  # the replayed digits keep the original network's answers
                    mine = len(idx)
                    with torch.no_grad():
                        target = torch.softmax(teacher(batch[mine:]) / temperature, dim=1)  # (R, k)
                    student = torch.log_softmax(logits[mine:] / temperature, dim=1)
                    kl = torch.nn.functional.kl_div(student, target, reduction="batchmean")
                    loss = loss + distill * temperature**2 * kl
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(yb)
                seen += len(yb)
                bar.update()
            history.append({"epoch": epoch + 1, "loss": total / seen})
            left = (time.perf_counter() - began) / (epoch + 1) * (epochs - epoch - 1)
            bar.close({"loss": total / seen}, suffix=f", about {left:.0f} s left" if epoch + 1 < epochs else "")
        tuned.network_ = net.eval()
        tuned.fine_tune_history_ = history
        return tuned

    def torch_module(self) -> Any:
        """The fitted network as one torch module that takes images ``(n, H, W)`` in 0..255 and gives probabilities."""
        check_is_fitted(self, "network_")
        from digitlab.models.exported import ImageNetwork

        network = copy.deepcopy(self.network_).cpu().eval()
        classes, shape = self.classes_.tolist(), self.image_shape_
        return ImageNetwork(network, classes, int(self.views), read_poses(self.poses), shape).eval()

    # --- files ----------------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict[str, Any]) -> None:
        """Write ``<path>`` (state_dict) and ``<path>.json`` (config and metadata), atomically."""
        from digitlab.core.files import atomic_path, write_json
        from digitlab.data.sources import sha256_file

        torch = _torch()
        check_is_fitted(self, "network_")
        path = Path(path)
        config = {
            "params": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items() if k != "augment"
            },
            "classes": self.classes_.tolist(),
            "image_shape": list(self.image_shape_),
            "history": self.history_,
            "metadata": metadata,
        }
        with atomic_path(path) as tmp:
            torch.save({k: v.cpu() for k, v in self.network_.state_dict().items()}, tmp)
            config["weights_sha256"] = sha256_file(tmp)  # ties the weights to this config
        write_json(config_path(path), config)

    @classmethod
    def load(cls, path: str | Path) -> tuple[CNNClassifier, dict[str, Any]]:
        path = Path(path)
        config = read_config(path)
        try:
            # verbose off; device auto: a model trained on a GPU (or named for one) still loads here
            model = cls(**dict(saved_params(config), verbose=False, device="auto"))
            model.classes_ = np.asarray(config["classes"])
            model.image_shape_ = tuple(config["image_shape"])
            model.n_features_in_ = int(np.prod(model.image_shape_))
            model.history_ = config.get("history", [])
            model.n_epochs_ = len(model.history_)
        except (ValueError, KeyError, TypeError) as exc:
            raise unreadable_config(path, exc) from None
        net = load_weights(path, config, model._network(len(model.classes_), model.image_shape_))
        model.network_ = net.to(model._device())
        return model, config.get("metadata", {})


def _seed(random_state: Any) -> int:
    """An int seed for torch and NumPy: the given one, or fresh entropy for ``None`` (as scikit-learn)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return int(random_state)


class _EpochProgress:
    """Events for one epoch: a few while it runs, one with its metrics when it ends."""

    def __init__(self, step: str, total: int, enabled: bool) -> None:
        self.step, self.total, self.enabled, self.done = step, total, enabled, 0
        self.every = max(1, total // 10)

    def update(self) -> None:
        self.done += 1
        if self.enabled and self.done % self.every == 0 and self.done < self.total:
            emit(Event(self.step, self.done, self.total, f"cnn {self.step}", level=INNER))

    def close(self, record: dict[str, float], suffix: str = "") -> None:
        if not self.enabled:
            return
        metrics = {k: float(v) for k, v in record.items() if k != "epoch"}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        emit(Event(self.step, self.total, self.total, f"cnn {self.step}: {shown}{suffix}", metrics, level=INNER))
