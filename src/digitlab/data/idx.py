"""Read, write and validate IDX files (the format MNIST ships in).

Layout: 2 zero bytes, a type byte, a byte with the number of dimensions, one big-endian
uint32 per dimension, then the data in C order. Only the unsigned-byte type (0x08) is
used by the datasets here; the other types are read too so that errors can be precise.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.core.files import atomic_write_bytes

# type byte -> big-endian dtype
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_BYTES = {v: k for k, v in IDX_TYPES.items()}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array; ``name`` is used in error messages only."""
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, name)
    if len(data) < 4:
        raise DigitlabError(f"{name}: not an IDX file (only {len(data)} bytes); supply a raw or .gz IDX file.")
    zero, type_byte, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_byte not in IDX_TYPES or ndim == 0:
        raise DigitlabError(
            f"{name}: not an IDX file (magic number 0x{data[:4].hex()}); "
            "expected 0x00000801 (labels) or 0x00000803 (images)."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DigitlabError(f"{name}: truncated IDX header ({len(data)} bytes); fetch the file again.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_TYPES[type_byte]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise DigitlabError(
            f"{name}: IDX file {problem}: header declares shape {shape} ({expected} bytes) "
            f"but the file has {len(data)} bytes; fetch the file again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read a raw or gzipped IDX file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no such file; check the path or fetch the data first.") from None
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot read ({exc.strerror}).") from None
    return parse_idx(data, str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (raw, not gzipped)."""
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in _TYPE_BYTES:
        raise DigitlabError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64.")
    if array.ndim == 0 or array.ndim > 255:
        raise DigitlabError(f"IDX needs 1 to 255 dimensions, not {array.ndim}.")
    header = struct.pack(">HBB", 0, _TYPE_BYTES[big], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` atomically; gzip it when the name ends in ``.gz``."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return path


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DigitlabError(f"{name}: corrupt gzip data ({exc}); fetch the file again.") from None
