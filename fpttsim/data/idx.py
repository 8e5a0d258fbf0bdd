"""A strict reader of IDX files, the format MNIST is distributed in.

An IDX file is a header followed by the array's values, big-endian, in
row-major order::

    bytes 0-1   zero
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, d
    then        d sizes, each a big-endian uint32
    then        the values

Files whose name ends in ``.gz`` are decompressed first. Every deviation from
the layout above (a wrong magic number, an unknown type code, a size that does
not match the number of bytes) raises :class:`IdxError`.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

__all__ = ["IdxError", "read_idx"]

# Type code -> big-endian numpy dtype of the values.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxError(ValueError):
    """A file that is not a valid IDX file; the message names the file."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed.

    Parameters
    ----------
    path
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    numpy.ndarray
        The values, with the shape the header gives and the file's type in
        native byte order.

    Raises
    ------
    IdxError
        When the file is not a valid IDX file (the message says why).
    OSError
        When the file cannot be read.
    """
    name = os.fspath(path)
    data = _read_bytes(name)
    if len(data) < 4:
        raise IdxError(
            f"{name!r} is not an IDX file: it holds {len(data)} bytes, fewer "
            "than the 4 of the magic number."
        )

    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in _DTYPES:
        raise IdxError(
            f"{name!r} is not an IDX file: its magic number is 0x{data[:4].hex()}, "
            "expected 0x0000 followed by a type code (08, 09, 0b, 0c, 0d or 0e) "
            "and the number of dimensions. Is it an image or label file of "
            "MNIST as distributed, and is a compressed file named *.gz?"
        )
    if ndim == 0:
        raise IdxError(f"{name!r}: the IDX header gives 0 dimensions, expected >= 1.")

    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(
            f"{name!r} is truncated: its header needs {header} bytes for "
            f"{ndim} dimensions, the file holds {len(data)}."
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = _DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise IdxError(
            f"{name!r} is {problem}: a {' x '.join(map(str, shape))} array of "
            f"{dtype.itemsize}-byte values needs {expected} bytes, the file holds "
            f"{len(data)}."
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _read_bytes(name: str) -> bytes:
    if not name.endswith(".gz"):
        with open(name, "rb") as f:
            return f.read()
    try:
        with gzip.open(name, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IdxError(f"{name!r} is not a valid gzip file: {exc}.") from exc
