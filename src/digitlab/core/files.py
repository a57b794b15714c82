"""Files written whole or not at all, JSON of NumPy values, figures, library versions.

Every file is written to a temporary name in its final folder and renamed into place, so
a crash or Ctrl-C never leaves a half-written file where a complete one used to be.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from digitlab.core.errors import DigitlabError


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


def check_new_file(path: str | Path, force: bool, option: str = "--output") -> None:
    """Refuse, in one line, to write over a file this call did not make, unless ``force``."""
    check_new_files([Path(path)], force, f"{option} ")


def check_new_files(paths: list[Path], force: bool, option: str = "") -> None:
    """Refuse, in one line naming the first (and how many more), to write over files already there, unless
    ``force``; a symbolic link counts as there, wherever it points."""
    there = [p for p in paths if p.exists() or p.is_symlink()]
    if there and not force:
        more = f" and {len(there) - 1} more" if len(there) > 1 else ""
        raise DigitlabError(
            f"{option}{there[0]}{more}: already there; add --force to overwrite it (nothing was written)."
        )


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays, paths, tuples and records (anything with ``to_json``) into plain JSON types."""
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return to_jsonable(obj.to_json())
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


def write_arrays(path: str | Path, **arrays: Any) -> Path:
    """NumPy arrays into one compressed ``.npz``, written whole or not at all."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib Figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


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
