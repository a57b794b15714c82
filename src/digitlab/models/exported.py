"""The cnn as one self-contained torch module, for MLflow's pytorch flavour (and ONNX export).

``CNNClassifier`` scales the pixels and adds the channel axis in NumPy before its network
runs; ``ImageNetwork`` does both inside ``forward``, so whoever loads the module feeds it the
images as digitlab reads them, ``(n, H, W)`` in 0..255, and gets class probabilities back.
Importing this module imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _window(padded: torch.Tensor, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
    return padded[:, :, dy : dy + h, dx : dx + w]


def pose_matrices(poses: Sequence[tuple[float, float]], h: int, w: int) -> torch.Tensor:
    """(P, H·W, H·W), one matrix per pose (angle in degrees, scale): a flattened (H, W) image times one is
    the image turned counter-clockwise by the angle and scaled about its centre, bilinear with zeros
    brought in, as ``cv2.warpAffine`` with ``cv2.getRotationMatrix2D`` does it (the training augmenter's
    warp): a test-time pose as one matrix product."""
    with torch.inference_mode(False), torch.no_grad():  # ordinary constants, also for export
        maps = []
        basis = torch.eye(h * w).reshape(h * w, 1, h, w)  # one image per pixel: row j is pixel j's image
        for angle, scale in poses:
            turn = math.radians(angle)
            cos, sin = math.cos(turn) / scale, math.sin(turn) / scale
            theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]])  # output -> input, normalised
            grid = torch.nn.functional.affine_grid(theta.expand(h * w, 2, 3), [h * w, 1, h, w], align_corners=False)
            moved = torch.nn.functional.grid_sample(basis, grid, mode="bilinear", align_corners=False)
            maps.append(moved.reshape(h * w, h * w))
        return torch.stack(maps) if maps else torch.zeros((0, h * w, h * w))


def view_logits(
    network: torch.nn.Module, x: torch.Tensor, views: int = 0, poses: torch.Tensor | None = None
) -> torch.Tensor:
    """``network``'s logits for ``x`` (n, 1, H, W); with ``views`` = r > 0, read at every shift of up to r
    pixels each way ((2r + 1)² views, zeros filled in) and averaged: the log of the mean probability.
    ``poses`` (P, H·W, H·W) from ``pose_matrices`` add the image turned and scaled, each read at the same shifts.

    Test-time shifts: a digit the network reads one pixel off its centre still counts. The result
    is a valid logit (its softmax is the mean probability), so everything downstream is unchanged.
    """
    n_poses = 0 if poses is None else int(poses.shape[0])
    if views <= 0 and not n_poses:
        return network(x)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    if n_poses:
        assert poses is not None
        flat = x.reshape(1, n, h * w)
        x = torch.cat([x, torch.matmul(flat, poses).reshape(n_poses * n, 1, h, w)])  # (P'·n, 1, H, W)
    r = max(int(views), 0)
    padded = torch.nn.functional.pad(x, (r, r, r, r))  # (P'·n, 1, H + 2r, W + 2r)
    shifts = [(dy, dx) for dy in range(2 * r + 1) for dx in range(2 * r + 1)]
    windows = torch.cat([_window(padded, dy, dx, h, w) for dy, dx in shifts])  # (V·P'·n, 1, H, W): one pass
    windows = windows.contiguous(memory_format=torch.channels_last)
    count = len(shifts) * (1 + n_poses)
    logs = torch.log_softmax(network(windows), dim=1).reshape(count, n, -1)  # (V·P', n, k)
    return torch.logsumexp(logs, dim=0) - math.log(count)  # log of the mean probability (n, k)


class ImageNetwork(torch.nn.Module):
    """Images ``(n, H, W)`` (uint8 or float, 0..255) -> probabilities ``(n, k)`` in the order of ``classes``.

    ``views`` and ``poses``: the cnn's test-time shifts and poses (``CNNClassifier.views``, ``.poses``),
    so that ONNX and MLflow read as it does.
    """

    pose_maps: torch.Tensor | None

    def __init__(
        self,
        network: torch.nn.Module,
        classes: list[int],
        views: int = 0,
        poses: Sequence[Sequence[float]] = (),
        image_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.classes = list(classes)
        self.views = int(views)
        self.poses = tuple((float(a), float(s)) for a, s in poses)
        if self.poses and image_shape is None:
            raise ValueError("ImageNetwork: test-time poses need the image shape")
        # the poses' matrices travel with the module (MLflow, ONNX): (P, H·W, H·W), or None without poses
        maps = pose_matrices(self.poses, *image_shape) if self.poses and image_shape else None
        self.register_buffer("pose_maps", maps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0  # (n, H, W) in [0, 1], as the cnn was trained
        logits = view_logits(self.network, x.unsqueeze(1), self.views, self.pose_maps)  # (n, k)
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
