"""The cnn's networks and a reader of saved cnns that needs PyTorch alone (no scikit-learn).

``build_network`` makes the network of either design (``CNNClassifier`` trains it). ``CNNReader``
loads a saved ``cnn.pt`` (its config checked, its weights' SHA-256 checked) for reading only:
``predict_proba`` through ``exported.ImageNetwork``, the same test-time shifts and poses as
``CNNClassifier.predict_proba``. `digitlab predict` uses it, so reading a picture does not import
scikit-learn (about a second of a cold start).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError, shielded


def torch_module() -> Any:
    try:
        with shielded():  # a stop in the middle of torch's import would abort the process
            import torch
    except ImportError:
        raise DigitlabError(
            "the cnn model needs PyTorch; install it with `pip install 'digitlab[torch]'` "
            "(pins the CPU-friendly torch==2.13.0)."
        ) from None
    return torch


ARCHES = ("fast", "classic")


def build_network(
    n_classes: int,
    channels: tuple[int, ...] = (16, 32),
    hidden: int = 128,
    dropout: float = 0.25,
    image_shape: tuple[int, int] = (28, 28),
    arch: str = "classic",
) -> Any:
    """The network for ``arch``, in channels-last memory format (the faster layout for CPU convolutions).

    ``fast`` (shaped for a CPU; cnn-fast): one block per entry of ``channels``, each
    conv 3×3 → maxpool 2 → BN → ReLU, pooling before the normalisation so that BN and ReLU
    run on a quarter of the pixels; then flatten → [dense ``hidden`` → ReLU → dropout] → dense.
    With (16, 32, 64): (B, 1, 28, 28) → (B, 16, 14, 14) → (B, 32, 7, 7) → (B, 64, 3, 3) → (B, 576) → (B, k).

    ``classic`` (the default; cnn, cnn-aug): conv-BN-ReLU ×2 → maxpool → conv-BN-ReLU ×2 → maxpool
    → dense ``hidden`` → dropout → dense,
    with ``channels`` = (c1, c2): (B, 1, 28, 28) → (B, c1, 14, 14) → (B, c2, 7, 7) → (B, c2·49) → (B, hidden) → (B, k).

    Accuracy and training time of both: benchmarks/cnn.json and benchmarks/cnn_speed.json.
    """
    torch = torch_module()
    nn = torch.nn
    if arch not in ARCHES:
        raise DigitlabError(f"cnn arch {arch!r}: unknown; use one of {', '.join(ARCHES)}.")
    if not channels or any(int(c) < 1 for c in channels):
        raise DigitlabError(f"cnn channels {tuple(channels)!r}: give one or more positive channel counts.")

    def cbr(c_in: int, c_out: int) -> list[Any]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    h, w = image_shape
    if arch == "classic":
        if len(channels) != 2:
            raise DigitlabError(f"cnn channels {tuple(channels)!r}: the classic arch takes two, (c1, c2).")
        c1, c2 = (int(c) for c in channels)
        layers = [*cbr(1, c1), *cbr(c1, c1), nn.MaxPool2d(2), *cbr(c1, c2), *cbr(c2, c2), nn.MaxPool2d(2)]
        c_out, h, w = c2, h // 4, w // 4
    else:
        layers, c_out = [], 1
        for c in (int(c) for c in channels):
            if h < 2 or w < 2:
                raise DigitlabError(
                    f"cnn channels {tuple(channels)!r}: too many blocks for {image_shape} images; use fewer."
                )
            conv = nn.Conv2d(c_out, c, 3, padding=1, bias=False)
            layers += [conv, nn.MaxPool2d(2), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_out, h, w = c, h // 2, w // 2
    width = c_out * h * w
    layers.append(nn.Flatten())
    if hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def read_poses(poses: Any) -> tuple[tuple[float, float], ...]:
    """``poses`` as (angle in degrees, scale) pairs; anything else refused in one line."""
    try:
        out = tuple((float(angle), float(scale)) for angle, scale in poses)
    except (TypeError, ValueError):
        out = None
    if out is None or any(not (math.isfinite(a) and math.isfinite(s) and s > 0) for a, s in out):
        raise DigitlabError(
            f"cnn poses {poses!r}: give (angle in degrees, scale) pairs with a positive scale, e.g. ((6, 1), (-6, 1))."
        )
    return out


def config_path(path: Path) -> Path:
    """Where a cnn's config and metadata are: ``<name>.pt.json`` beside ``<name>.pt``."""
    return path.with_name(path.name + ".json")


def read_config(path: Path) -> dict[str, Any]:
    """A saved cnn's config (``<name>.pt.json``); one line when it cannot be read."""
    try:
        config = json.loads(config_path(path).read_text())
        if not isinstance(config, dict):
            raise TypeError("not an object")
        return config
    except (OSError, ValueError, TypeError) as exc:
        raise unreadable_config(path, exc) from None


def unreadable_config(path: Path, exc: Exception) -> DigitlabError:
    return DigitlabError(f"{config_path(path)}: unreadable cnn config ({type(exc).__name__}); train the model again.")


def saved_params(config: dict[str, Any]) -> dict[str, Any]:
    """A saved cnn's parameters as ``CNNClassifier`` takes them: channels and poses back to tuples; a file
    saved before the fast design (no ``arch``) is the classic net, trained without shifts."""
    params = dict(config["params"], channels=tuple(config["params"]["channels"]))
    params["poses"] = tuple(tuple(pose) for pose in params.get("poses", ()))  # JSON lists back to pairs
    if "arch" not in params:
        params.update(arch="classic", shift=0)
    return params


def load_weights(path: Path, config: dict[str, Any], network: Any) -> Any:
    """``network`` with the weights of ``path``, after their SHA-256 is checked against ``config``; a damaged,
    tampered or foreign file (or a network that does not fit them) is one line."""
    from digitlab.data.sources import sha256_file

    torch = torch_module()
    actual = sha256_file(path)
    if actual != config.get("weights_sha256"):
        raise DigitlabError(
            f"{path}: refused: not a matching cnn weights file (SHA-256 {actual[:16]}… is not the "
            f"one recorded in {config_path(path).name}); train the model again."
        )
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # unpickling, zip and shape errors all mean a damaged or foreign file
        raise DigitlabError(
            f"{path}: refused: not a matching cnn weights file ({type(exc).__name__}); train the model again."
        ) from None
    return network.eval()


class CNNReader:
    """A saved cnn, loaded for reading pictures only (see the module's text)."""

    def __init__(self, network: Any, classes: list[Any], image_shape: tuple[int, int], views: int, poses: Any) -> None:
        from digitlab.models.exported import ImageNetwork

        self.classes_ = np.asarray(classes)
        self.image_shape_: tuple[int, int] = (int(image_shape[0]), int(image_shape[1]))
        self.module = ImageNetwork(network, list(classes), int(views), read_poses(poses), self.image_shape_).eval()

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, H, W) images, 0..255 -> (n, k) probabilities (float64), as ``CNNClassifier.predict_proba``."""
        torch = torch_module()
        x = np.asarray(X)
        if x.ndim == 2:
            x = x[None]
        if tuple(x.shape[1:]) != self.image_shape_:
            raise DigitlabError(f"the cnn was trained on {self.image_shape_} images, got {tuple(x.shape[1:])}.")
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), 256):
                images = torch.from_numpy(np.ascontiguousarray(x[start : start + 256], dtype=np.float32))
                out.append(self.module(images).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def torch_module(self) -> Any:
        """A copy of the network that reads images (what the ONNX export traces)."""
        import copy

        return copy.deepcopy(self.module).eval()

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    @classmethod
    def load(cls, path: str | Path) -> tuple[CNNReader, dict[str, Any]]:
        """The reader of ``path`` and its metadata; a damaged, tampered or foreign file is one line."""
        path = Path(path)
        config = read_config(path)
        try:
            params = saved_params(config)
            classes, shape = list(config["classes"]), (int(config["image_shape"][0]), int(config["image_shape"][1]))
            build = (params["channels"], int(params.get("hidden", 128)), float(params.get("dropout", 0.25)))
            views = int(params.get("views", 0))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise unreadable_config(path, exc) from None
        network = load_weights(path, config, build_network(len(classes), *build, shape, params["arch"]))
        return cls(network, classes, shape, views, params["poses"]), config.get("metadata", {})
