"""Optimisers that update a list of layers' ``params`` from their ``grads``. NumPy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from digitlab.models.scratch.layers import Layer


class SGD:
    """w ← w - lr · (g + l2 · w), with classical momentum."""

    def __init__(self, layers: Sequence[Layer], lr: float = 0.01, momentum: float = 0.9, l2: float = 0.0) -> None:
        self.layers, self.lr, self.momentum, self.l2 = layers, lr, momentum, l2
        self.velocity = [{k: np.zeros_like(v) for k, v in layer.params.items()} for layer in layers]

    def step(self) -> None:
        for layer, vel in zip(self.layers, self.velocity, strict=True):
            for name, w in layer.params.items():
                g = layer.grads[name] + (self.l2 * w if name == "W" else 0.0)
                vel[name] = self.momentum * vel[name] - self.lr * g
                w += vel[name]


class Adam:
    """Adam (Kingma & Ba, 2015) with L2 on the weight matrices (not the biases).

    m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  w ← w - lr · m̂ / (√v̂ + ε), with bias-corrected m̂, v̂.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        lr: float = 1e-3,
        l2: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.layers, self.lr, self.l2 = layers, lr, l2
        self.beta1, self.beta2, self.eps, self.t = beta1, beta2, eps, 0
        self.m = [{k: np.zeros_like(v) for k, v in layer.params.items()} for layer in layers]
        self.v = [{k: np.zeros_like(v) for k, v in layer.params.items()} for layer in layers]

    def step(self) -> None:
        self.t += 1
        correct1, correct2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for layer, m, v in zip(self.layers, self.m, self.v, strict=True):
            for name, w in layer.params.items():
                g = layer.grads[name]
                if self.l2 and name == "W":
                    g = g + self.l2 * w
                # the same formulas, updated in place: no new arrays for m, v or the step
                mk, vk = m[name], v[name]
                mk *= self.beta1
                mk += (1 - self.beta1) * g
                vk *= self.beta2
                vk += (1 - self.beta2) * (g * g)
                denom = np.sqrt(vk * (1 / correct2))
                denom += self.eps
                np.divide(mk, denom, out=denom)
                denom *= self.lr / correct1
                w -= denom
