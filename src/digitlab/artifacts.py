"""Where results live: atomic writes, run folders, JSON files.

Every file is written to a temporary name in its final folder and renamed into place, so
a crash or Ctrl-C never leaves a half-written file where a complete one used to be.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from digitlab.errors import DigitlabError

LATEST = "latest"
RUN_FILE = "run.json"  # written when a run completes
MODEL_INDEX = "index.json"  # models/index.json: name -> file, image shape, dataset


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
    """Create a fresh run folder under ``root`` (default ``runs/``).

    Race-free: ``mkdir`` itself decides, so parallel calls each get their own folder.
    """
    root = Path(root).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DigitlabError(f"--out {root}: is a file, not a folder; pass a folder for the run folders.") from None
    except OSError as exc:
        raise DigitlabError(
            f"--out {root}: cannot create it ({exc.strerror}); pass a folder you can write to."
        ) from None
    if not root.is_dir():
        raise DigitlabError(f"--out {root}: is a file, not a folder; pass a folder for the run folders.")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        path = root / (f"{stamp}-{command}" if n == 1 else f"{stamp}-{command}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise DigitlabError(
                f"--out {root}: cannot write there ({exc.strerror}); pass a folder you can write to."
            ) from None
        return Run(path)
    raise AssertionError("unreachable")


WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


@contextmanager
def run_folder(
    root: str | Path, command: str, info: dict[str, Any] | None = None, latest: bool = True
) -> Iterator[Run]:
    """A new run folder that exists only if the block completes.

    On any failure or interruption (an error, Ctrl-C, SIGTERM, a Streamlit stop or rerun:
    every ``BaseException``) the folder is removed and ``latest`` stays where it was. On
    success ``run.json`` marks the run complete and ``latest`` moves to it; it also holds
    ``info`` (the dataset, seed …), which the caller may fill in while the block runs.
    With ``latest=False`` (``personalise``) the run is complete but ``latest`` stays put.
    """
    run = new_run(root, command)
    started = datetime.now().isoformat(timespec="seconds")
    try:
        yield run
        write_json(
            run.file(RUN_FILE),
            {
                "command": command,
                "started": started,
                "finished": datetime.now().isoformat(timespec="seconds"),
                "complete": True,
                **(info or {}),
            },
        )
        if latest:
            mark_latest(run)
    except OSError as exc:
        shutil.rmtree(run.path, ignore_errors=True)
        if exc.errno in WRITE_ERRORS:
            raise DigitlabError(
                f"{exc.filename or run.path}: cannot write ({exc.strerror}); nothing was saved from this run. "
                "Free some space or pass another --out."
            ) from None
        raise
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise


def is_latest(path: Path) -> bool:
    """Whether ``latest`` beside the run folder ``path`` points at it."""
    latest = path.parent / LATEST
    return latest.is_symlink() and latest.resolve() == path.resolve()


def is_complete(path: Path) -> bool:
    """A run folder that finished: it has ``run.json``, or it is where ``latest`` points."""
    return (path / RUN_FILE).is_file() or is_latest(path)


def record_model(run: Run, name: str, file: Path, info: dict[str, Any]) -> None:
    """Note a saved model in ``models/index.json`` (what it reads, what it was trained on)."""
    index_path = run.models / MODEL_INDEX
    try:
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except (OSError, ValueError):
        index = {}
    index[name] = dict(info, file=file.name)
    write_json(index_path, index)


def model_index(models_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((models_dir / MODEL_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
