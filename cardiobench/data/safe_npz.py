"""Load ``.npy`` / ``.npz`` files only after checking the sizes they declare, before anything is decompressed.

A ``.npz`` is a zip archive: a 1 MB file can hold a member that inflates to gigabytes (a "zip bomb"), and
a ``.npy`` header can declare a shape far larger than the data that follows it. ``numpy.load`` allocates
the declared array before reading it, so such a file costs its declared size in memory before anything
can reject it. ``load`` reads only the zip directory and each member's ``.npy`` header (a few hundred
bytes) and raises a one-line ``DataError`` naming the file when

- the arrays of one file declare more than ``max_bytes()`` uncompressed bytes in total (default
  ``DEFAULT_MAX_BYTES``, 1 GiB; set ``CARDIOBENCH_MAX_NPZ_BYTES``, e.g. ``4G``, to change it);
- a member's header disagrees with its size in the zip directory (shape times item size plus header is
  not the member's size), or a ``.npy`` file is shorter than its header says;
- an array holds Python objects (they would need pickle, which is never enabled).

Every ``.npy`` / ``.npz`` reader of the toolkit (generated masks, ``samples.npz``, the data cache) goes
through ``load``.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from cardiobench.errors import CardiobenchError, DataError

#: environment variable overriding ``DEFAULT_MAX_BYTES`` (bytes, or a number with K, M, G or T: binary units)
MAX_BYTES_ENV = "CARDIOBENCH_MAX_NPZ_BYTES"
#: the most uncompressed array bytes one file may declare: 1 GiB holds 16,384 masks at 256x256 or the
#: default phantom cache (64x64, ~90 MB) ten times over
DEFAULT_MAX_BYTES = 1 << 30

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what numpy.load takes for a zip (.npz)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def max_bytes() -> int:
    """The cap in bytes: ``$CARDIOBENCH_MAX_NPZ_BYTES`` if set, else ``DEFAULT_MAX_BYTES``."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", raw, flags=re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise CardiobenchError(
            f"{MAX_BYTES_ENV}={raw!r} is not a size", "write a number of bytes, or e.g. 512M, 4G (binary units)"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human(n: int) -> str:
    """Bytes as a short binary-unit string (``1.0 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _too_big(path: Path, declared: int, what: str, cap: int) -> DataError:
    suggest = max(2, 2 * math.ceil(declared / (1 << 30)))
    size, limit = human(declared), human(cap)
    if size == limit:  # just above: show the bytes
        size, limit = f"{declared:,} bytes", f"{cap:,} bytes"
    return DataError(
        f"{path}: declares {size} of array data ({what}), above the {limit} limit; not loaded",
        f"if the file is genuine, raise the limit: {MAX_BYTES_ENV}=<bytes> (e.g. {suggest}G)",
    )


def _read_header(fp, path: Path, member: str | None) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """``(shape, dtype, header bytes)`` of the ``.npy`` stream at ``fp``'s start; None if it is not one."""
    start = fp.read(len(npy_format.MAGIC_PREFIX) + 2)
    if len(start) < len(npy_format.MAGIC_PREFIX) + 2 or not start.startswith(npy_format.MAGIC_PREFIX):
        return None
    where = f"{path}" + (f" (member {member})" if member else "")
    version = (start[-2], start[-1])
    reader = _HEADER_READERS.get(version)
    if reader is None:
        raise DataError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}", "save it with numpy")
    shape, _, dtype = reader(fp)  # refuses headers over 10,000 bytes
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects (dtype {dtype}), which are never loaded", "save plain arrays")
    return tuple(int(s) for s in shape), dtype, fp.tell()  # the data starts right after the header


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: no overflow whatever the header says


def check_npy(path: Path, cap: int) -> None:
    """Refuse a ``.npy`` whose header declares more than ``cap`` bytes or more data than the file holds."""
    size = path.stat().st_size
    with open(path, "rb") as fp:
        head = _read_header(fp, path, None)
    if head is None:
        raise DataError(f"{path}: not a .npy file (no numpy header)", "save it with numpy.save")
    shape, dtype, header = head
    nbytes = _nbytes(shape, dtype)
    if nbytes > cap:
        raise _too_big(path, nbytes, f"shape {shape} {dtype}", cap)
    if header + nbytes > size:
        raise DataError(
            f"{path}: header declares shape {shape} {dtype} ({nbytes} bytes) but the file holds "
            f"{max(size - header, 0)} bytes of data",
            "the file is truncated or damaged; write it again",
        )


def declared_bytes(zf: zipfile.ZipFile) -> int:
    """Total uncompressed size the zip directory declares for all members (reads no member)."""
    return sum(info.file_size for info in zf.infolist())


def check_npz(path: Path, cap: int) -> None:
    """Refuse a ``.npz`` whose members declare more than ``cap`` bytes, or whose headers disagree with them."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = declared_bytes(zf)
        if total > cap:
            big = max(infos, key=lambda i: i.file_size)
            raise _too_big(path, total, f"largest member {big.filename}: {human(big.file_size)}", cap)
        for info in infos:
            with zf.open(info) as fp:  # reads (and inflates) only the first few hundred bytes
                head = _read_header(fp, path, info.filename)
            if head is None:
                continue  # raw bytes: numpy returns them as they are, bounded by file_size (checked above)
            shape, dtype, header = head
            nbytes = _nbytes(shape, dtype)
            if header + nbytes != info.file_size:
                raise DataError(
                    f"{path}: member {info.filename} declares shape {shape} {dtype} ({nbytes} bytes) but holds "
                    f"{max(info.file_size - header, 0)} bytes of data",
                    "the file is damaged or was not written by numpy; write it again",
                )


def load(path: str | os.PathLike) -> Any:
    """``numpy.load(path, allow_pickle=False)`` once the sizes the file declares are checked (see above).

    Returns an array for ``.npy``, an ``NpzFile`` (use it as a context manager) for ``.npz``. Files that
    lie about their sizes or exceed the cap raise ``DataError``; other damage raises what numpy raises.
    """
    path = Path(path)
    cap = max_bytes()
    with open(path, "rb") as fp:
        magic = fp.read(len(npy_format.MAGIC_PREFIX))
    try:
        if magic.startswith(_ZIP_MAGIC):
            check_npz(path, cap)
        elif magic == npy_format.MAGIC_PREFIX:
            check_npy(path, cap)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()
        raise DataError(
            f"{path}: unreadable ({type(exc).__name__}{': ' + msg[0] if msg else ''})", "write the file again"
        ) from None
    return np.load(path, allow_pickle=False)
