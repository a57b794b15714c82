"""What ``digitlab serve`` serves: the models, loaded once and checked before the port is bound.

The server (``digitlab.faces.server``) is a face: it parses HTTP and calls what is here. A
``ServedModel`` is a ``Predictor`` with what the Open Inference Protocol asks of a model: a
name, a version (the first 12 hex digits of the model file's SHA-256, so a retrained model
has a new version), the platform, the input and output tensors, and the data it was
trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.core.errors import DigitlabError, TooLarge
from digitlab.core.settings import (
    HEADER_TIMEOUT_S,
    MAX_BATCH,
    MAX_CONNECTIONS,
    MAX_IN_FLIGHT,
    MAX_TIMEOUT_S,
    SERVE_ENV,
    TIMEOUT_S,
    TOKEN_ENV,
    WORKER_MIB,
)
from digitlab.data.pictures import MAX_BYTES
from digitlab.service.exporting import RUNTIMES, load_predictor
from digitlab.service.predictor import PICTURE_SHAPE, Predictor


def max_workers() -> int:
    """The most worker processes this machine can run: 2 per core, and as many as its free memory holds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        free_mib = int(fields["MemAvailable"].split()[0]) // 1024
    except (OSError, KeyError, ValueError):
        free_mib = None
    by_memory = max(1, free_mib // WORKER_MIB) if free_mib is not None else 2 * cores
    return max(1, min(2 * cores, by_memory))


@dataclass(frozen=True)
class ServeRequest:
    models: tuple[str, ...] = ("best",)  # registry names, model files or best (the best reader); first: the default
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    runtime: str = "auto"  # exporting.RUNTIMES: auto, torch (the saved model as it is) or onnx (its ONNX export)
    out: Path = Path("runs")
    max_bytes: int = MAX_BYTES  # body size
    max_batch: int = MAX_BATCH  # images per request
    timeout_s: float = TIMEOUT_S  # per request
    max_connections: int = MAX_CONNECTIONS
    header_timeout_s: float = HEADER_TIMEOUT_S
    max_in_flight: int = MAX_IN_FLIGHT
    token_file: Path | None = None  # bearer token (else $DIGITLAB_SERVE_TOKEN, else no authentication)
    access_log: Path | None = None  # JSON lines, one per request ("-": standard error)

    def check(self) -> None:
        if not self.models:
            raise DigitlabError("--model: name at least one model to serve.")
        if not 0 < self.port < 65536:
            raise DigitlabError(f"--port {self.port}: choose a port between 1 and 65535.")
        if self.workers < 1:
            raise DigitlabError(f"--workers {self.workers}: use 1 or more worker processes.")
        if self.workers > (most := max_workers()):
            raise DigitlabError(
                f"--workers {self.workers}: this machine runs at most {most} (2 a core, {WORKER_MIB} MiB of free "
                "memory each); pass a smaller number."
            )
        if self.runtime not in RUNTIMES:
            raise DigitlabError(f"--runtime {self.runtime!r}: choose one of {', '.join(RUNTIMES)}.")
        if self.max_bytes < 1024:
            raise DigitlabError(f"--max-bytes {self.max_bytes}: allow at least 1024 bytes a request.")
        if self.max_batch < 1:
            raise DigitlabError(f"--max-batch {self.max_batch}: allow at least 1 image a request.")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:  # nan and inf fail too
            raise DigitlabError(
                f"--timeout {self.timeout_s:g}: use a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}."
            )
        if not 0 < self.header_timeout_s <= MAX_TIMEOUT_S:
            raise DigitlabError(
                f"--header-timeout {self.header_timeout_s:g}: use a number of seconds above 0 and at most "
                f"{MAX_TIMEOUT_S:g}."
            )
        if self.max_connections < 1:
            raise DigitlabError(f"--max-connections {self.max_connections}: allow at least 1 connection.")
        if self.max_connections > (fds := _fd_budget()):
            raise DigitlabError(
                f"--max-connections {self.max_connections}: this process may open {fds + 64} files; "
                f"pass at most {fds} (or raise `ulimit -n`)."
            )
        if self.max_in_flight < 1:
            raise DigitlabError(f"--max-in-flight {self.max_in_flight}: allow at least 1 request at a time.")
        if self.token_file is not None:
            read_token(self.token_file)
        if self.access_log is not None and str(self.access_log) != "-":
            folder = Path(self.access_log).expanduser().parent
            if not folder.is_dir() or not os.access(folder, os.W_OK):
                raise DigitlabError(
                    f"--access-log {self.access_log}: cannot write there; pass a file in a folder you can write to."
                )

    def to_env(self) -> str:
        paths = {k: None if v is None else str(v) for k, v in asdict(self).items() if k in _PATHS}
        return json.dumps(dict(asdict(self), **paths))

    @classmethod
    def from_env(cls) -> ServeRequest:
        raw = os.environ.get(SERVE_ENV)
        if not raw:
            raise DigitlabError(f"{SERVE_ENV} is not set; start the server with `digitlab serve`.")
        data = json.loads(raw)
        paths = {k: None if data.get(k) is None else Path(data[k]) for k in _PATHS if k in data}
        return cls(**dict(data, models=tuple(data["models"]), **paths))

    def token(self) -> str | None:
        """The bearer token clients must send, or None when the server is open."""
        if self.token_file is not None:
            return read_token(self.token_file)
        return os.environ.get(TOKEN_ENV) or None


_PATHS = ("out", "token_file", "access_log")


def read_token(path: Path) -> str:
    """The token in ``path`` (its first line, stripped); one line when it cannot be used."""
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not text"
        raise DigitlabError(f"--token-file {path}: cannot read it ({why}); pass a file holding the token.") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise DigitlabError(
            f"--token-file {path}: the token on its first line is under 16 characters; use a longer one."
        )
    return token


def _fd_budget() -> int:
    """How many connections this process can hold: its open-file limit less room for models, logs and pipes."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and hard > soft) else soft
    if limit == resource.RLIM_INFINITY:
        limit = 1 << 20
    return max(1, int(limit) - 64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path]
    if path.name.endswith(".ensemble.json"):  # the members' files are part of the model
        files += sorted(path.parent.glob(path.name[: -len(".ensemble.json")] + "-*"))
    elif path.with_name(path.name + ".json").is_file():  # the cnn's side file
        files.append(path.with_name(path.name + ".json"))
    for file in files:
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class ServedModel:
    """One loaded model as the server shows it."""

    predictor: Predictor
    version: str

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    @property
    def runtime(self) -> str:
        return self.predictor.runtime

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(n, 28, 28) images, 0..255 -> (n, k) float32 probabilities."""
        if len(images) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predictor.probabilities(np.asarray(images)).astype(np.float32)

    def metadata(self) -> dict[str, Any]:
        """The model's entry in ``GET /models``."""
        meta = self.predictor.metadata
        return {
            "name": self.name,
            "version": self.version,
            "kind": meta.get("family") or "",
            "runtime": self.runtime,
            "description": meta.get("description", ""),
            "file": str(self.predictor.path),
            "test_accuracy": self.predictor.accuracy,
            "dataset": meta.get("dataset"),
            "dataset_checksums": dict(meta.get("checksums") or {}),
            "classes": self.classes,
            "input_shape": [-1, *PICTURE_SHAPE],
        }

    @property
    def platform(self) -> str:
        if self.runtime == "onnx":
            return "onnxruntime_onnx"
        return "pytorch" if self.predictor.path.suffix == ".pt" else "sklearn"


def load_served(request: ServeRequest) -> list[ServedModel]:
    """Every model asked for, loaded and checked (missing, corrupt, tampered or wrong size: one line)."""
    request.check()
    served: list[ServedModel] = []
    for spec in request.models:
        predictor = load_predictor(spec, request.out, request.runtime)
        if any(s.name == predictor.name for s in served):
            raise DigitlabError(f"--model {spec}: a model called {predictor.name!r} is already served; serve it once.")
        served.append(ServedModel(predictor, _sha256(predictor.path)[:12]))
    return served


def check_images(array: Any, what: str = "arrays") -> np.ndarray:
    """Arrays sent as images: (n, 28, 28) (or one (28, 28)), finite, 0..255 -> float32 (n, 28, 28)."""
    try:
        images = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise DigitlabError(f"{what}: not a list of 28×28 arrays of numbers.") from None
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or tuple(images.shape[1:]) != PICTURE_SHAPE:
        raise DigitlabError(f"{what}: shape {list(images.shape)}; send images of shape [n, 28, 28].")
    if not np.isfinite(images).all() or images.min(initial=0) < 0 or images.max(initial=0) > 255:
        raise DigitlabError(f"{what}: pixel values must be finite numbers from 0 to 255.")
    return images.astype(np.float32)


def check_batch(n: int, limit: int) -> None:
    if n > limit:
        raise TooLarge(f"{n:,} images in one request; the limit is {limit:,}. Split the batch.")
    if n == 0:
        raise DigitlabError("no images in the request; send at least one.")
