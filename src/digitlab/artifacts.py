"""Where results live: atomic writes, run folders, JSON files.

Every file is written to a temporary name in its final folder and renamed into place, so
a crash or Ctrl-C never leaves a half-written file where a complete one used to be.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

LATEST = "latest"


def _file_mode() -> int:
    """What a plain ``open(path, "w")`` would give: 0o666 less the umask (mkstemp's 0o600 is for secrets)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays, paths and tuples into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    with atomic_open(path, "w") as fh:
        json.dump(to_jsonable(obj), fh, indent=2)
        fh.write("\n")
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib Figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Run:
    """One run folder: ``runs/<timestamp>-<command>/`` with figures/ and models/ inside."""

    path: Path

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def file(self, name: str) -> Path:
        return self.path / name


def new_run(root: str | Path, command: str) -> Run:
    """Create a fresh run folder under ``root`` (default ``runs/``)."""
    root = Path(root).resolve()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{command}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{command}-{n}"
    path.mkdir(parents=True)
    return Run(path)


def mark_latest(run: Run) -> None:
    """Point ``<root>/latest`` at ``run`` (atomically replacing an older link)."""
    link = run.path.parent / LATEST
    tmp = run.path.parent / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run.path.name)
    os.replace(tmp, link)


def resolve_run(root: str | Path, name: str | None = None) -> Path | None:
    """The run folder called ``name`` under ``root``, or the latest one."""
    root = Path(root)
    candidate = Path(name) if name else root / LATEST
    if not candidate.exists() and name:
        candidate = root / name
    return candidate.resolve() if candidate.exists() else None


def library_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("digitlab", "numpy", "scipy", "scikit-learn", "skops", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
