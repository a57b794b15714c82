"""A stack of layers and the mini-batch training loop shared by every from-scratch network."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from digitlab.models.scratch.layers import Layer

LossFn = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
_KEEP = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit (half its 64 MB heap size)


@functools.cache
def _glibc() -> Any:
    """The C library when it has glibc's mallopt and malloc_trim, else None; looked up once per process
    (find_library runs ldconfig: 2 ms a call, too much for every predict)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def kept_memory() -> Iterator[None]:
    """While inside, freed arrays up to 32 MB stay in the process for the next batch to reuse (glibc only).

    Every step allocates and frees the same large activations. By default glibc gives the top of its
    heap back to the system once more than twice its mmap threshold is free there, and the next step
    pays a page fault for every 4 KB it touches again: on a 2-core VM that was most of scratch-cnn's
    first convolution (10.2 → 3.8 ms a batch of 64 with the memory kept). Afterwards the heap is trimmed
    and the thresholds stay where glibc's own adaptive ones end up after large arrays (mmap 32 MB, trim
    64 MB): setting them back to the 128 KB start values instead made torch training afterwards in the
    same process 1.6× slower. Elsewhere (macOS, musl): a no-op.
    """
    libc = _glibc()
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, _KEEP):
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP)
        libc.malloc_trim(0)


class Sequential:
    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = list(layers)
        self.layers[0].input_grad = False  # the input is data, not a parameter: skip its gradient

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def scores(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """Forward pass in inference mode, in batches: (n, ...) -> (n, K)."""
        return np.concatenate([self.forward(x[s : s + batch]) for s in range(0, len(x), batch)])

    def state(self) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": w.copy() for i, layer in enumerate(self.layers) for name, w in layer.params.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            for name in layer.params:
                layer.params[name][...] = state[f"{i}.{name}"]


def split_validation(n: int, y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified indices (train, validation): ``fraction`` of each class held out."""
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cut = round(len(idx) * fraction)
        val.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def train(
    net: Sequential,
    loss_fn: LossFn,
    optimiser: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    epochs: int,
    batch_size: int,
    patience: int,
    rng: np.random.Generator,
    progress: Any = None,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> list[dict[str, float]]:
    """Mini-batch training with a cosine learning-rate decay and early stopping on the validation loss;
    the best epoch's weights are kept. ``augment`` (batch, rng) -> batch changes each training batch."""
    history: list[dict[str, float]] = []
    best, best_state, stale = -np.inf, None, 0
    base_lr = optimiser.lr
    for epoch in range(1, epochs + 1):
        optimiser.lr = base_lr * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / epochs))  # cosine decay over the epochs
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            batch = x[idx] if augment is None else augment(x[idx], rng)
            loss, grad = loss_fn(net.forward(batch, train=True), y[idx])  # scores (B, K) -> grad (B, K)
            net.backward(grad)
            optimiser.step()
            total += loss * len(idx)
        record = {"epoch": float(epoch), "loss": total / len(x)}
        if x_val is not None and y_val is not None and len(y_val):
            val_scores = net.scores(x_val)  # (n_val, K)
            record["val_loss"] = loss_fn(val_scores, y_val)[0]
            record["val_accuracy"] = float((val_scores.argmax(axis=1) == y_val).mean())
        history.append(record)
        if progress is not None:
            progress(record)
        score = -record.get("val_loss", record["loss"])  # validation loss: smoother than accuracy
        if score > best:
            best, best_state, stale = score, net.state(), 0
        else:
            stale += 1
            if x_val is not None and stale >= patience:
                break
    if best_state is not None:
        net.load_state(best_state)
    return history
