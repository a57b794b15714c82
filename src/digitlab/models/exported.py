"""The cnn as one self-contained torch module, for MLflow's pytorch flavour (and ONNX export).

``CNNClassifier`` scales the pixels and adds the channel axis in NumPy before its network
runs; ``ImageNetwork`` does both inside ``forward``, so whoever loads the module feeds it the
images as digitlab reads them, ``(n, H, W)`` in 0..255, and gets class probabilities back.
Importing this module imports torch.
"""

from __future__ import annotations

import math

import torch


def _window(padded: torch.Tensor, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
    return padded[:, :, dy : dy + h, dx : dx + w]


def view_logits(network: torch.nn.Module, x: torch.Tensor, views: int = 0) -> torch.Tensor:
    """``network``'s logits for ``x`` (n, 1, H, W); with ``views`` = r > 0, read at every shift of up to r
    pixels each way ((2r + 1)² views, zeros filled in) and averaged: the log of the mean probability.

    Test-time shifts: a digit the network reads one pixel off its centre still counts. The result
    is a valid logit (its softmax is the mean probability), so everything downstream is unchanged.
    """
    if views <= 0:
        return network(x)
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (views, views, views, views))  # (n, 1, H + 2r, W + 2r)
    shifts = [(dy, dx) for dy in range(2 * views + 1) for dx in range(2 * views + 1)]
    windows = torch.cat([_window(padded, dy, dx, h, w) for dy, dx in shifts])  # (V·n, 1, H, W): one pass
    windows = windows.contiguous(memory_format=torch.channels_last)
    logs = torch.log_softmax(network(windows), dim=1).reshape(len(shifts), x.shape[0], -1)  # (V, n, k)
    return torch.logsumexp(logs, dim=0) - math.log(len(shifts))  # log of the mean probability (n, k)


class ImageNetwork(torch.nn.Module):
    """Images ``(n, H, W)`` (uint8 or float, 0..255) -> probabilities ``(n, k)`` in the order of ``classes``.

    ``views``: the cnn's test-time shifts (``CNNClassifier.views``), so that ONNX and MLflow read as it does.
    """

    def __init__(self, network: torch.nn.Module, classes: list[int], views: int = 0) -> None:
        super().__init__()
        self.network = network
        self.classes = list(classes)
        self.views = int(views)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0  # (n, H, W) in [0, 1], as the cnn was trained
        logits = view_logits(self.network, x.unsqueeze(1), self.views)  # (n, k)
        return torch.softmax(logits, dim=1)  # probabilities (n, k)


def fold_batchnorm(network: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same network with each BatchNorm folded into the convolution before it (eval mode: exact).

    Also across a max-pool (the fast net's conv → pool → BN): BN in eval mode is a per-channel
    ``a·x + b``, and max-pooling commutes with it when every ``a`` is positive, so the BN moves
    into the convolution and the pool follows; a BN with a negative scale stays where it is.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    layers = list(network.eval())
    folded: list[torch.nn.Module] = []
    k = 0
    while k < len(layers):
        layer = layers[k]
        following = layers[k + 1] if k + 1 < len(layers) else None
        after = layers[k + 2] if k + 2 < len(layers) else None
        if isinstance(layer, torch.nn.Conv2d) and isinstance(following, torch.nn.BatchNorm2d):
            folded.append(fuse_conv_bn_eval(layer, following))
            k += 2
            continue
        if (
            isinstance(layer, torch.nn.Conv2d)
            and isinstance(following, torch.nn.MaxPool2d)
            and isinstance(after, torch.nn.BatchNorm2d)
            and bool((after.weight > 0).all())  # scale a = weight / sqrt(var + eps) has the weight's sign
        ):
            folded += [fuse_conv_bn_eval(layer, after), following]
            k += 3
            continue
        folded.append(layer)
        k += 1
    return torch.nn.Sequential(*folded).eval()
