"""Hostile ``.npz`` / ``.npy`` files for the size-check tests, written without holding them in memory."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

MIB = 1 << 20


def write_zero_bomb(path: Path, mib: int, member: str = "masks.npy") -> Path:
    """A ``.npz`` whose one member is ``mib`` MiB of zeros, (mib * 16, 256, 256) uint8: ~1 KB per MiB on disk."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (mib * 16, 256, 256)}
    chunk = bytes(MIB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(member, "w", force_zip64=True) as f:
        npy_format.write_array_header_1_0(f, header)
        for _ in range(mib):
            f.write(chunk)
    return path


def lying_header(shape: tuple[int, ...], data: bytes = bytes(16)) -> bytes:
    """A ``.npy`` stream whose header declares ``shape`` uint8 but which holds only ``data``."""
    import io

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def write_lying_npz(path: Path, shape: tuple[int, ...], member: str = "masks.npy") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, lying_header(shape))
    return path


def write_lying_npy(path: Path, shape: tuple[int, ...]) -> Path:
    path.write_bytes(lying_header(shape))
    return path


def small_npz(path: Path) -> Path:
    """A genuine little ``samples.npz``-like file."""
    np.savez_compressed(path, masks=np.zeros((3, 8, 8), np.uint8), metadata=np.array('{"ok": true}'))
    return path
