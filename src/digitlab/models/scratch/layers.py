"""Layers for the from-scratch networks, NumPy only.

Each layer has ``forward(x, train)`` and ``backward(grad_out) -> grad_in``; layers with
weights keep them in ``params`` and their gradients (filled by ``backward``) in ``grads``,
under the same names. ``B`` is the batch size throughout.
"""

from __future__ import annotations

import numpy as np


class Layer:
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    input_grad: bool = True  # False for a first layer: nothing upstream needs dx, so skip computing it

    def __init__(self) -> None:
        self.params, self.grads = {}, {}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Dense(Layer):
    """y = x W + b.   Backward: dW = xᵀ dy,  db = Σ_batch dy,  dx = dy Wᵀ."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, dtype: type = np.float32) -> None:
        super().__init__()
        scale = np.sqrt(2.0 / n_in)  # He initialisation, for ReLU networks
        self.params = {
            "W": (rng.standard_normal((n_in, n_out)) * scale).astype(dtype),  # (n_in, n_out)
            "b": np.zeros(n_out, dtype=dtype),
        }  # (n_out,)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.x = x  # (B, n_in)
        return x @ self.params["W"] + self.params["b"]  # (B, n_out)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # grad_out: (B, n_out)
        self.grads = {"W": self.x.T @ grad_out, "b": grad_out.sum(axis=0)}  # (n_in, n_out), (n_out,)
        if not self.input_grad:
            return grad_out[:, :0]  # (B, 0): nothing flows further back
        return grad_out @ self.params["W"].T  # (B, n_in)


class ReLU(Layer):
    """y = max(x, 0).   Backward: dx = dy · [x > 0]."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.mask = x > 0  # same shape as x
        return x * self.mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.mask


class Dropout(Layer):
    """Training: y = x · m / (1 - p) with m ~ Bernoulli(1 - p); inference: y = x.   Backward: dx = dy · m / (1 - p)."""

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.p, self.rng = p, rng

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if not train or self.p == 0:
            self.scale = None
            return x
        self.scale = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / (1 - self.p)  # same shape as x
        return x * self.scale

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out if self.scale is None else grad_out * self.scale


class Flatten(Layer):
    """(B, C, H, W) -> (B, C·H·W).   Backward: reshape back."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out.reshape(self.shape)


def im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(B, C, H, W) -> (B·H'·W', C·k·k): every k×k patch as a row (stride 1, zero padding)."""
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (B, C, H+2p, W+2p)
    h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    # a strided view: (B, C, H', W', k, k) without copying
    s = xp.strides
    view = np.lib.stride_tricks.as_strided(xp, (b, c, h_out, w_out, k, k), (s[0], s[1], s[2], s[3], s[2], s[3]))
    return view.transpose(0, 2, 3, 1, 4, 5).reshape(b * h_out * w_out, c * k * k)  # copies once


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], k: int, pad: int) -> np.ndarray:
    """Adjoint of ``im2col``: scatter-add patch rows (B·H'·W', C·k·k) back into (B, C, H, W)."""
    b, c, h, w = shape
    h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    patches = cols.reshape(b, h_out, w_out, c, k, k).transpose(0, 3, 4, 5, 1, 2)  # (B, C, k, k, H', W')
    out = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + h_out, j : j + w_out] += patches[:, :, i, j]
    return out[:, :, pad : pad + h, pad : pad + w]


class Conv2D(Layer):
    """Cross-correlation, stride 1, 'same' zero padding, via im2col.

    Forward:  cols = im2col(x) (B·H·W, C_in·k·k);  y = cols Wᵀ + b, reshaped to (B, C_out, H, W).
    Backward: dW = dyᵀ cols;  db = Σ dy;  dx = col2im(dy W).
    """

    def __init__(self, c_in: int, c_out: int, k: int, rng: np.random.Generator, dtype: type = np.float32) -> None:
        super().__init__()
        self.k, self.pad = k, k // 2
        scale = np.sqrt(2.0 / (c_in * k * k))
        self.params = {
            "W": (rng.standard_normal((c_out, c_in, k, k)) * scale).astype(dtype),  # (C_out, C_in, k, k)
            "b": np.zeros(c_out, dtype=dtype),
        }  # (C_out,)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        b, _, h, w = x.shape  # (B, C_in, H, W)
        self.x_shape = x.shape
        self.cols = im2col(x, self.k, self.pad)  # (B·H·W, C_in·k·k)
        w_mat = self.params["W"].reshape(len(self.params["W"]), -1)  # (C_out, C_in·k·k)
        y = self.cols @ w_mat.T + self.params["b"]  # (B·H·W, C_out)
        return y.reshape(b, h, w, -1).transpose(0, 3, 1, 2)  # (B, C_out, H, W)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # grad_out: (B, C_out, H, W)
        c_out = grad_out.shape[1]
        dy = grad_out.transpose(0, 2, 3, 1).reshape(-1, c_out)  # (B·H·W, C_out)
        w_mat = self.params["W"].reshape(c_out, -1)  # (C_out, C_in·k·k)
        self.grads = {"W": (dy.T @ self.cols).reshape(self.params["W"].shape), "b": dy.sum(axis=0)}
        if not self.input_grad:
            return grad_out[:, :0]  # nothing flows further back
        return col2im(dy @ w_mat, self.x_shape, self.k, self.pad)  # (B, C_in, H, W)


class MaxPool2D(Layer):
    """2×2 max pooling, stride 2 (H and W even).   Backward: dy goes to the position of each max."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        b, c, h, w = x.shape
        blocks = x.reshape(b, c, h // 2, 2, w // 2, 2)  # (B, C, H/2, 2, W/2, 2)
        out = blocks.max(axis=(3, 5))  # (B, C, H/2, W/2)
        is_max = blocks == out[:, :, :, None, :, None]  # (B, C, H/2, 2, W/2, 2)
        # ties: keep only the first maximum of each window, as torch does
        first = (
            np.cumsum(
                is_max.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4),
                axis=-1,
            )
            == 1
        )
        mask = is_max.transpose(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4) & first  # (B, C, H/2, W/2, 4)
        self.mask, self.x_shape = mask, x.shape
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # grad_out: (B, C, H/2, W/2)
        b, c, h, w = self.x_shape
        spread = self.mask * grad_out[..., None]  # (B, C, H/2, W/2, 4)
        return spread.reshape(b, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)
