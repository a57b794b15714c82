from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.data.idx import encode_idx, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
        np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        np.arange(12, dtype=np.int32).reshape(3, 4) - 6,
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    ],
    ids=["images", "labels", "int32", "float32"],
)
def test_round_trip(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    path = write_idx(tmp_path / f"x{suffix}", array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_header_is_the_standard_mnist_magic() -> None:
    data = encode_idx(np.zeros((5, 28, 28), dtype=np.uint8))
    assert data[:4] == bytes([0, 0, 8, 3])
    assert data[4:16] == (5).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    assert len(data) == 16 + 5 * 28 * 28


def test_truncated_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))[:-10])
    with pytest.raises(DigitlabError, match=r"train-images-idx3-ubyte: IDX file truncated") as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_truncated_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DigitlabError, match="truncated IDX header"):
        read_idx(path)


def test_wrong_magic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 0x42, 1]) + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DigitlabError, match=r"labels: not an IDX file \(magic number 0x00004201\)"):
        read_idx(path)


def test_text_file_is_not_idx(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a dataset\n")
    with pytest.raises(DigitlabError, match=r"notes.txt: not an IDX file"):
        read_idx(path)


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(10, dtype=np.uint8)))[:-8])
    with pytest.raises(DigitlabError, match=r"x.gz: corrupt gzip"):
        read_idx(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match="no such file"):
        read_idx(tmp_path / "nope")


def test_write_leaves_no_partial_file(tmp_path: Path) -> None:
    write_idx(tmp_path / "a", np.zeros(3, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
