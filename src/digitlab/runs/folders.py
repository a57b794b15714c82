"""Run folders: made race-free with digitlab's marker, locked while written, complete with run.json;
what `runs rm` may delete (owned_run, remove_run)."""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from digitlab.core.errors import DigitlabError
from digitlab.core.files import FILE_MODE, write_json

LATEST = "latest"
RUN_FILE = "run.json"  # written when a run completes
MARKER = ".digitlab-run"  # written when a run folder is made: what `runs rm` recognises as ours; its writer locks it
MODEL_INDEX = "index.json"  # models/index.json: name -> file, image shape, dataset


@dataclass(frozen=True)
class Run:
    """One run folder: ``runs/<timestamp>-<command>/`` with figures/ and models/ inside."""

    path: Path
    lock: int | None = field(default=None, compare=False, repr=False)  # the marker's fd while the run is written

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def file(self, name: str) -> Path:
        return self.path / name


def new_run(root: str | Path, command: str, lock: bool = False) -> Run:
    """Create a fresh run folder under ``root`` (default ``runs/``), with digitlab's marker in it.

    Race-free: ``mkdir`` itself decides, so parallel calls each get their own folder. With
    ``lock`` the marker is locked (``flock``) before it appears under its name, and stays
    locked until ``Run.lock`` is closed: while it is, ``runs rm`` and ``prune`` leave the run alone.
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
        return Run(path, _mark(path, command, lock))
    raise AssertionError("unreachable")


def _mark(path: Path, command: str, lock: bool) -> int | None:
    """Write the marker (locked first when ``lock``; then renamed into place, so it never appears unlocked)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.", suffix=".part", dir=path)
    try:
        if lock:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"tool": "digitlab", "command": command, "pid": os.getpid(), "created": datetime.now().isoformat()}
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fchmod(fd, FILE_MODE)
        os.replace(tmp, path / MARKER)
    except BaseException:
        os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if lock:
        return fd
    os.close(fd)
    return None


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
    The run is locked while the block runs (``runs rm`` refuses it), and it is only marked
    complete if it is still the folder it made and every model ``models/index.json`` names is there.
    """
    run = new_run(root, command, lock=True)
    started = datetime.now().isoformat(timespec="seconds")
    try:
        yield run
        _check_whole(run)
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
        _discard(run)
        if exc.errno in WRITE_ERRORS:
            raise DigitlabError(
                f"{exc.filename or run.path}: cannot write ({exc.strerror}); nothing was saved from this run. "
                "Free some space or pass another --out."
            ) from None
        raise
    except BaseException:
        _discard(run)
        raise
    finally:
        if run.lock is not None:
            os.close(run.lock)


def _same_marker(run: Run) -> bool:
    """Whether the run's folder still holds the marker this process made (nobody moved or replaced it)."""
    try:
        here = os.stat(run.path / MARKER, follow_symlinks=False)
        return run.lock is not None and not run.path.is_symlink() and os.fstat(run.lock).st_ino == here.st_ino
    except OSError:
        return False


def _check_whole(run: Run) -> None:
    if not _same_marker(run):
        raise DigitlabError(
            f"{run.path}: the run folder was removed or replaced while this run was writing it; nothing was "
            "saved from this run. Run it again."
        )
    missing = [
        str(entry.get("file"))
        for entry in model_index(run.models).values()
        if isinstance(entry, dict) and not (run.models / str(entry.get("file"))).is_file()
    ]
    if missing:
        raise DigitlabError(
            f"{run.path}: model file(s) {', '.join(missing)} vanished while this run was writing them; nothing was "
            "saved from this run. Run it again."
        )


def _discard(run: Run) -> None:
    """Remove an unfinished run's folder, but only while it is still the one this process made."""
    if _same_marker(run):
        shutil.rmtree(run.path, ignore_errors=True)


def is_latest(path: Path) -> bool:
    """Whether ``latest`` beside the run folder ``path`` points at it."""
    latest = path.parent / LATEST
    return latest.is_symlink() and latest.resolve() == path.resolve()


def is_complete(path: Path) -> bool:
    """A run folder that finished: it has ``run.json`` (written last, after every model file is checked)."""
    return (path / RUN_FILE).is_file()


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
    """The run folder called ``name`` under ``root`` (a bare name), at the path ``name``, or the latest one.

    A bare name (no ``/``) is looked for under ``root`` first, then in the current folder.
    """
    root = Path(root)
    if not name:
        candidate = root / LATEST
    else:
        given = Path(name).expanduser()
        bare = os.sep not in name and name not in (".", "..")
        candidate = root / name if bare and (root / name).exists() else given
        if not candidate.exists() and not bare:
            candidate = root / name
    return candidate.resolve() if candidate.exists() else None


RUN_NAME = re.compile(r"\d{8}-\d{6}-")  # 20261130-161826-compare: how new_run names a run


def is_ours(path: Path) -> bool:
    """Whether ``path`` is a run folder digitlab made: it holds the marker, or (runs made before the
    marker existed) a ``run.json`` that digitlab wrote in a folder named as ``new_run`` names them."""
    try:
        if stat.S_ISREG(os.stat(path / MARKER, follow_symlinks=False).st_mode):
            return True
        if not RUN_NAME.match(path.name):
            return False
        info = json.loads((path / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("complete") is True and "command" in info


def owned_run(name: str, out: str | Path) -> Path:
    """The run folder ``name`` (a bare name under ``out`` or a path), checked to be one we may delete.

    It must be a real folder (not a symlink, not reached through one) directly inside ``out``
    after resolving, never ``out`` itself or above it, and carry digitlab's marker. Anything
    else is refused in one line naming the path.
    """
    root = Path(out).expanduser().resolve()
    if name in ("", ".", ".."):
        raise DigitlabError(f"{name!r}: not a run folder; name one run folder under --out {root} (`digitlab runs`).")
    given = Path(name).expanduser()
    bare = os.sep not in name
    candidate = Path(os.path.abspath(root / name if bare else given))  # lexical: no symlink is followed here
    if bare and name == LATEST and candidate.is_symlink():  # `runs rm latest`: the run it points at
        target = os.readlink(candidate)
        if os.sep in target:
            raise DigitlabError(f"{candidate}: points at {target}, outside --out {root}; remove that folder yourself.")
        candidate = root / target
    try:
        parent = candidate.parent.resolve(strict=True)
    except OSError:
        parent = None
    where = f"--out {root}"
    if candidate.resolve() in (root, *root.parents):
        raise DigitlabError(f"{candidate}: is {where} itself or a folder above it; name one run folder inside it.")
    if parent != root:
        raise DigitlabError(f"{candidate}: not inside {where}; only run folders directly inside it are removed.")
    if candidate.is_symlink():
        raise DigitlabError(f"{candidate}: is a symbolic link, not a run folder; it is left alone (remove the link).")
    if not candidate.is_dir():
        raise DigitlabError(f"run folder not found: {name!r} (looked in {root}); see `digitlab runs`.")
    if not is_ours(candidate):
        raise DigitlabError(f"{candidate}: not a run folder digitlab made (no {MARKER} marker); it is left alone.")
    return candidate


def run_writer(path: Path) -> str | None:
    """Who is writing the run folder ``path`` now ("process 123, `digitlab compare`"), or None when nobody is."""
    try:
        fd = os.open(path / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _writer_text(path)
    finally:
        os.close(fd)
    return None


def being_written(path: Path, writer: str | None = None) -> DigitlabError:
    """The one-line refusal for a run folder its writer still holds (``writer``: who, when already known)."""
    return DigitlabError(
        f"{path.name}: is being written ({writer or _writer_text(path)}); wait for it to finish or stop it, "
        "then remove it."
    )


def _writer_text(path: Path) -> str:
    try:
        info = json.loads((path / MARKER).read_text())
        return f"process {info.get('pid')}, `digitlab {info.get('command')}`"
    except (OSError, ValueError, AttributeError):
        return "another process"


def remove_run(path: Path, root: str | Path) -> None:
    """Delete one run folder that ``owned_run`` accepted, safely against races.

    The marker is locked for the whole removal (a run still being written holds it: refused);
    the folder is first renamed to a hidden name inside ``root`` and checked again there (a
    folder swapped for a symlink meanwhile is put back and refused), then deleted with
    ``shutil.rmtree``, which never follows symlinks inside it.
    """
    try:
        fd = os.open(path / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        fd = None  # a run made before the marker existed (owned_run checked its run.json)
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot check its marker ({exc.strerror}); it is left alone.") from None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise being_written(path) from None
        trash = Path(root) / f".removing-{path.name}-{os.getpid()}"
        os.rename(path, trash)
        moved = os.stat(trash, follow_symlinks=False)
        if not stat.S_ISDIR(moved.st_mode) or (fd is not None and os.fstat(fd).st_ino != _ino(trash / MARKER)):
            os.rename(trash, path)
            raise DigitlabError(f"{path}: changed while it was being removed; it is left alone.")
        shutil.rmtree(trash)
    finally:
        if fd is not None:
            os.close(fd)


def _ino(path: Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return -1
