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
    """(B, H, W, C) -> (B·H'·W', k·k·C): every k×k patch as a row (stride 1, zero padding), channels last."""
    b, h, w, c = x.shape
    xp = np.zeros((b, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)  # (B, H+2p, W+2p, C)
    xp[:, pad : pad + h, pad : pad + w] = x
    h_out, w_out = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    if c == 1:  # one channel (a first layer): k·k slice copies, 3.5× faster than copying the view below
        cols = np.empty((b, h_out, w_out, k * k), dtype=x.dtype)
        for i in range(k):
            for j in range(k):
                cols[..., i * k + j] = xp[:, i : i + h_out, j : j + w_out, 0]
        return cols.reshape(-1, k * k)
    # a strided view: (B, H', W', k, k, C) without copying; with channels last its rows are already in order
    s = xp.strides
    view = np.lib.stride_tricks.as_strided(xp, (b, h_out, w_out, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
    return view.reshape(b * h_out * w_out, k * k * c)  # copies once


class Conv2D(Layer):
    """Cross-correlation, stride 1, 'same' zero padding, via im2col, on channels-last images (B, H, W, C).

    Channels last (as torch's ``channels_last``) makes every patch row one contiguous copy and the
    product ``cols W`` already the output layout: no transposes of the large activations.
    Forward:  cols = im2col(x) (B·H·W, k·k·C_in);  y = cols W + b, reshaped to (B, H, W, C_out).
    Backward: dW = colsᵀ dy;  db = Σ dy;  dx = im2col(dy) W̃: the same 'same' convolution of dy with the
    kernel turned 180° and its in/out channels swapped (one product instead of scattering k·k patches back).
    The weights are kept as (C_out, C_in, k, k), torch's layout, and read as a (k·k·C_in, C_out) matrix.
    """

    def __init__(self, c_in: int, c_out: int, k: int, rng: np.random.Generator, dtype: type = np.float32) -> None:
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"Conv2D kernel size {k}: 'same' padding needs an odd size.")
        self.k, self.pad = k, k // 2
        scale = np.sqrt(2.0 / (c_in * k * k))
        self.params = {
            "W": (rng.standard_normal((c_out, c_in, k, k)) * scale).astype(dtype),  # (C_out, C_in, k, k)
            "b": np.zeros(c_out, dtype=dtype),
        }  # (C_out,)

    def _matrix(self) -> np.ndarray:
        w = self.params["W"]  # (C_out, C_in, k, k)
        # (k·k·C_in, C_out), rows in im2col's order; contiguous, or matmul leaves BLAS for a slow loop
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, len(w)))

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        b, h, w, _ = x.shape  # (B, H, W, C_in)
        self.x_shape = x.shape
        self.cols = im2col(x, self.k, self.pad)  # (B·H·W, k·k·C_in)
        y = self.cols @ self._matrix() + self.params["b"]  # (B·H·W, C_out)
        return y.reshape(b, h, w, -1)  # (B, H, W, C_out)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # grad_out: (B, H, W, C_out)
        c_out, c_in, k, _ = self.params["W"].shape
        dy = grad_out.reshape(-1, c_out)  # (B·H·W, C_out)
        dw = (self.cols.T @ dy).reshape(k, k, c_in, c_out).transpose(3, 2, 0, 1)  # (C_out, C_in, k, k)
        self.grads = {"W": np.ascontiguousarray(dw), "b": dy.sum(axis=0)}
        if not self.input_grad:
            return grad_out[..., :0]  # nothing flows further back
        turned = self.params["W"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # (k, k, C_out, C_in), 180°
        w_back = np.ascontiguousarray(turned.reshape(-1, c_in))  # (k·k·C_out, C_in)
        b, h, w, _ = self.x_shape
        return (im2col(grad_out, self.k, self.pad) @ w_back).reshape(b, h, w, c_in)  # (B, H, W, C_in)


class MaxPool2D(Layer):
    """2×2 max pooling, stride 2, on channels-last images (B, H, W, C), H and W even.
    Backward: dy goes to the position of each max (the first, in row order, where several tie, as torch does)."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        b, h, w, c = x.shape
        blocks = x.reshape(b, h // 2, 2, w // 2, 2, c)  # (B, H/2, 2, W/2, 2, C)
        rows = np.maximum(blocks[:, :, 0], blocks[:, :, 1])  # (B, H/2, W/2, 2, C): elementwise, 9× faster than .max
        out = np.maximum(rows[:, :, :, 0], rows[:, :, :, 1])  # (B, H/2, W/2, C)
        self.x_shape = x.shape
        if not train:  # inference: no gradient to route
            return out
        mask = np.empty(blocks.shape, dtype=bool)
        taken = np.zeros(out.shape, dtype=bool)  # (B, H/2, W/2, C): a maximum already chosen
        for i in (0, 1):
            for j in (0, 1):
                hit = blocks[:, :, i, :, j] == out
                hit &= ~taken
                mask[:, :, i, :, j] = hit
                taken |= hit
        self.mask = mask
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # grad_out: (B, H/2, W/2, C)
        return (self.mask * grad_out[:, :, None, :, None]).reshape(self.x_shape)  # (B, H, W, C)


class FlattenChannels(Layer):
    """(B, H, W, C) -> (B, C·H·W), channel by channel (the order a channels-first Flatten gives).   Backward: back."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.shape = x.shape
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        b, h, w, c = self.shape
        return grad_out.reshape(b, c, h, w).transpose(0, 2, 3, 1)


def shifted(x: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Images (B, H, W, C) each moved by its own random offset of up to ``shift`` pixels per axis, zeros filled in."""
    b, h, w, c = x.shape
    padded = np.zeros((b, h + 2 * shift, w + 2 * shift, c), dtype=x.dtype)
    padded[:, shift : shift + h, shift : shift + w] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))  # (B, 2s+1, 2s+1, C, H, W)
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, b))  # (B,) each
    return windows[np.arange(b), dy, dx].transpose(0, 2, 3, 1)  # (B, H, W, C)
