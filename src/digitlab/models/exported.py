"""The cnn as one self-contained torch module, for MLflow's pytorch flavour (and ONNX export).

``CNNClassifier`` scales the pixels and adds the channel axis in NumPy before its network
runs; ``ImageNetwork`` does both inside ``forward``, so whoever loads the module feeds it the
images as digitlab reads them, ``(n, H, W)`` in 0..255, and gets class probabilities back.
Importing this module imports torch.
"""

from __future__ import annotations

import torch


class ImageNetwork(torch.nn.Module):
    """Images ``(n, H, W)`` (uint8 or float, 0..255) -> probabilities ``(n, k)`` in the order of ``classes``."""

    def __init__(self, network: torch.nn.Module, classes: list[int]) -> None:
        super().__init__()
        self.network = network
        self.classes = list(classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0  # (n, H, W) in [0, 1], as the cnn was trained
        return torch.softmax(self.network(x.unsqueeze(1)), dim=1)  # logits (n, k) -> probabilities (n, k)


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
