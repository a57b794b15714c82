"""ONNX: ``digitlab export MODEL --format onnx`` and the onnxruntime sessions of ``--runtime onnx``.

The cnn is exported as one graph from images to probabilities (``models.exported.ImageNetwork``:
pixels scaled and the channel axis added inside), each BatchNorm folded into the convolution
before it, with torch's ``torch.export``-based exporter at opset ``ONNX_OPSET``; the batch axis
is dynamic. Every export is checked against PyTorch on a batch of images before it is written.

The scikit-learn pipelines are not exported: they begin with digitlab's own transformers
(deskewing, scaling, flattening), for which skl2onnx has no converters, and the SVM's
probabilities come from digitlab's softmax calibration. They are served as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_write_bytes, check_new_file
from digitlab.models import checking, registry, shipped
from digitlab.models.store import load_model, model_name
from digitlab.runs.lookup import BEST, best_reader, find_model
from digitlab.runs.records import Exported
from digitlab.service.predictor import PICTURE_SHAPE, Predictor

ONNX_OPSET = 18
FORMATS = ("onnx",)
PARITY_TOLERANCE = 1e-4  # max |Δp| between onnxruntime and PyTorch


@dataclass(frozen=True)
class ExportRequest:
    model: str = "cnn"  # a model file or a registry name (the newest saved one under out)
    format: str = "onnx"
    output: Path | None = None  # default: beside the model, <name>.onnx
    out: Path = Path("runs")
    force: bool = False  # write over an existing --output file

    def check(self) -> None:
        if self.format not in FORMATS:
            raise DigitlabError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}.")
        if self.output is not None and Path(self.output).is_dir():
            raise DigitlabError(f"--output {self.output}: is a folder; pass a file name ending in .onnx.")
        if self.output is not None:
            check_new_file(self.output, self.force)


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise DigitlabError(
            "ONNX needs onnx and onnxruntime; install them with `pip install 'digitlab[onnx]'`."
        ) from None
    return onnx, onnxruntime


def onnx_bytes(model: Any, path: Path) -> bytes:
    """The cnn saved in ``path`` as an ONNX model: float32 images (n, H, W) in 0..255 -> probabilities (n, k)."""
    if not hasattr(model, "torch_module"):
        raise DigitlabError(
            f"{path}: {model_name(path)} is not the cnn; only the cnn exports to ONNX and runs in onnxruntime "
            "(the scikit-learn pipelines start with digitlab's own transformers, which skl2onnx cannot convert). "
            "Use --runtime torch for it."
        )
    _onnx_modules()
    import torch

    from digitlab.models.exported import ImageNetwork, fold_batchnorm

    module = model.torch_module()
    network = fold_batchnorm(module.network)
    folded = ImageNetwork(network, module.classes, module.views, module.poses, model.image_shape_).eval()
    example = torch.zeros((2, *model.image_shape_), dtype=torch.float32)
    batch = torch.export.Dim("n", min=1, max=1 << 20)
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter's notes (torchvision ops it skips) are not for users
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                folded,
                (example,),
                input_names=["images"],
                output_names=["probabilities"],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                dynamo=True,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    if program is None:
        raise DigitlabError("the ONNX exporter returned nothing; check the onnx and onnxscript versions.")
    return bytes(program.model_proto.SerializeToString())


def session(data: bytes | Path) -> Any:
    """An onnxruntime session on the CPU for an ONNX model (bytes or a file)."""
    _, ort = _onnx_modules()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime's threads spin, waiting for the next call, after each one: on a busy server (pictures decoded,
    # requests parsed, other workers) that spinning takes the CPU the rest needs (benchmarks/serve.py)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            data if isinstance(data, bytes) else str(data), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # a damaged or foreign file
        where = data if isinstance(data, Path) else "the exported model"
        raise DigitlabError(f"{where}: not a usable ONNX model ({type(exc).__name__}); export it again.") from None


def onnx_session(predictor: Predictor) -> Any:
    """The session for a served model: its ``.onnx`` beside the model file when that is current, else exported now."""
    beside = predictor.path.with_name(model_name(predictor.path) + ".onnx")
    if beside.is_file() and beside.stat().st_mtime >= predictor.path.stat().st_mtime:
        return session(beside)
    return session(onnx_bytes(predictor.model, predictor.path))


class OnnxClassifier:
    """A saved cnn run by onnxruntime, behind the ``predict_proba`` a Predictor calls."""

    def __init__(self, sess: Any, classes: np.ndarray) -> None:
        self.session, self.classes_ = sess, classes

    def predict_proba(self, X: Any) -> np.ndarray:
        images = np.ascontiguousarray(X, dtype=np.float32)  # (n, H, W) in 0..255
        (proba,) = self.session.run(None, {"images": images})
        return np.asarray(proba, dtype=np.float64)  # (n, k)


def use_onnx(predictor: Predictor) -> Predictor:
    """The predictor with its cnn run by onnxruntime (``--runtime onnx``)."""
    predictor.model = OnnxClassifier(onnx_session(predictor), predictor.model.classes_)
    predictor.runtime = "onnx"
    return predictor


RUNTIMES = ("auto", "torch", "onnx")  # auto: an ONNX copy at hand, else the saved model


def load_predictor(spec: str, out: Path, runtime: str = "auto", reading: bool = False) -> Predictor:
    """``Predictor.for_model``, run by PyTorch / scikit-learn (``torch``), or for the cnn by onnxruntime (``onnx``:
    exported now if need be), or (``auto``) by onnxruntime from an ONNX copy at hand (the shipped reader's own,
    or the reading cache's) and else as saved: no PyTorch at all, an answer in about a second, and a served
    reader several times faster (benchmarks/serve.py).

    ``reading``: for answers only (`digitlab predict`): a cnn run as saved loads without scikit-learn."""
    if runtime not in RUNTIMES:
        raise DigitlabError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}.")
    if runtime == "onnx" and spec == BEST:  # the best reader that onnxruntime can run
        return use_onnx(Predictor(best_reader(out, PICTURE_SHAPE, registry.CNNS)))
    if runtime == "onnx":
        return use_onnx(Predictor.for_model(spec, out))
    path = find_model(spec, out, PICTURE_SHAPE)
    predictor = (cached_reader(path) if runtime == "auto" else None) or Predictor(path, reading=reading)
    predictor.why = why_this(spec, path)
    return predictor


def why_this(spec: str, path: Path) -> str:
    """Why this model answers: the shipped reader, the best reader saved, or the one named."""
    if shipped.is_shipped(path):
        return shipped.why()
    if spec == BEST:
        mine, theirs = checking.known(path), checking.known(shipped.model_path()) if shipped.available() else None
        if mine is not None and theirs is not None:
            return (
                f"reads the reading check better than the shipped reader ({mine:.2%} vs {theirs:.2%} of "
                "photographed handwriting); name another with --model"
            )
        return "the best reader of real pictures saved (registry.READERS order); name another with --model"
    return f"named: {spec}"


# --- the reading cache: a cnn's ONNX export, made once, read without PyTorch -------------------------------


def reader_cache(path: Path) -> Path:
    """Where the reading cache keeps the ONNX export of the cnn in ``path``: named by the SHA-256 of its weights
    and config (a retrained or changed model is a new entry, never a stale one), the opset and digitlab's version."""
    from digitlab.core.files import library_versions
    from digitlab.data.sources import default_cache_dir

    digest = hashlib.sha256(path.read_bytes() + path.with_name(path.name + ".json").read_bytes()).hexdigest()
    version = library_versions().get("digitlab", "0")
    return default_cache_dir() / "readers" / f"{model_name(path)}-{digest[:20]}-opset{ONNX_OPSET}-{version}.onnx"


def _has_onnxruntime() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def cached_reader(path: Path) -> Predictor | None:
    """The cnn in ``path`` run by onnxruntime from the reading cache, or None (not a cnn, nothing cached yet,
    onnxruntime not installed, or a damaged entry: the caller loads the model itself)."""
    if path.suffix != ".pt" or not _has_onnxruntime():
        return None
    try:
        cache = shipped.onnx_path(path) or reader_cache(path)  # the shipped reader brings its own
        if not cache.is_file():
            return None
        config = json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError):
        return None
    try:
        sess = session(cache)
    except DigitlabError:  # a damaged entry: dropped, so that the next read makes it again
        if not shipped.is_shipped(path):  # never a file of the installed package (pinned; a reinstall mends it)
            cache.unlink(missing_ok=True)
        return None
    predictor = Predictor(path, loaded=(OnnxClassifier(sess, np.asarray(config["classes"])), config["metadata"]))
    predictor.runtime = "onnx"
    return predictor


READERS_KEPT = 50  # entries the reading cache keeps (the newest); each is a few hundred KB


def should_remember(predictor: Predictor) -> bool:
    """Whether ``remember_reader`` has work to do: a cnn read by PyTorch, with no reading-cache entry yet."""
    if predictor.runtime != "torch" or predictor.path.suffix != ".pt" or not _has_onnxruntime():
        return False
    try:
        return not reader_cache(predictor.path).is_file()
    except OSError:
        return False


def remember_reader(predictor: Predictor) -> Path | None:
    """Put the ONNX export of a cnn read by PyTorch into the reading cache (see ``remember_cnn``)."""
    return remember_cnn(predictor.model, predictor.path) if should_remember(predictor) else None


def remember_cnn(model: Any, path: Path) -> Path | None:
    """The ONNX export of the cnn saved in ``path`` into the reading cache, once it answers as PyTorch does
    (max |Δp| under PARITY_TOLERANCE on blank, random and stroke images); None when it cannot be made (the cnn
    is still read by PyTorch then). The cache keeps its newest ``READERS_KEPT`` entries."""
    if path.suffix != ".pt" or tuple(getattr(model, "image_shape_", ())) != PICTURE_SHAPE or not _has_onnxruntime():
        return None  # the cache serves the reading of pictures: cnns of 28×28 digits only
    try:
        cache = reader_cache(path)
        if cache.is_file():
            return cache
        data = onnx_bytes(model, path)
        check = np.random.default_rng(0).integers(0, 256, (8, *PICTURE_SHAPE), dtype=np.uint8)
        check[0] = 0
        check[1] = 0
        check[1, 6:22, 12:16] = 255  # a stroke, as a 1 is drawn
        if parity(model, session(data), check) > PARITY_TOLERANCE:
            return None
        atomic_write_bytes(cache, data)
        entries = sorted(cache.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[READERS_KEPT:]:
            old.unlink(missing_ok=True)
    except Exception:  # only a speed-up: whatever the exporter or onnxruntime raise, PyTorch reads the cnn
        return None
    return cache


def parity(model: Any, sess: Any, images: np.ndarray) -> float:
    """max |Δp| between onnxruntime and PyTorch on ``images``."""
    (ort_p,) = sess.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})
    return float(np.abs(np.asarray(ort_p, dtype=np.float64) - model.predict_proba(images)).max())


def batchnorm_folded(data: bytes) -> bool:
    """Whether the ONNX graph is free of BatchNormalization nodes (all folded into convolutions)."""
    import onnx

    return not any(node.op_type == "BatchNormalization" for node in onnx.load_from_string(data).graph.node)


def export(request: ExportRequest) -> Exported:
    """Write the ONNX model, after checking it against PyTorch on 256 images."""
    request.check()
    path = find_model(request.model, request.out, None)
    model, meta = load_model(path)
    data = onnx_bytes(model, path)
    sess = session(data)
    shape = tuple(meta.get("image_shape") or PICTURE_SHAPE)
    probe = np.random.default_rng(0).integers(0, 256, (256, *shape)).astype(np.uint8)
    diff = parity(model, sess, probe)
    if diff > PARITY_TOLERANCE:
        raise DigitlabError(f"{path}: the ONNX export differs from PyTorch by {diff:.2g} (> {PARITY_TOLERANCE}).")
    output = Path(request.output) if request.output else path.with_name(model_name(path) + ".onnx")
    atomic_write_bytes(output, data)
    return Exported.of(
        {
            "model": model_name(path),
            "model_path": str(path),
            "format": "onnx",
            "path": str(output),
            "opset": ONNX_OPSET,
            "bytes": len(data),
            "batchnorm_folded": batchnorm_folded(data),
            "input": {"name": "images", "datatype": "FP32", "shape": [-1, *shape]},
            "output": {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model.classes_)]},
            "max_abs_diff_vs_torch": diff,
        }
    )
