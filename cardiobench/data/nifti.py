"""Reading label maps and NIfTI volumes, shared by the data sets that read files (``acdc``, ``nifti-pairs``...).

- ``read_nifti``: a 3-D ``(H, W, Z)`` array and its voxel spacing from the header (nibabel); anything
  unreadable, truncated or of the wrong dimensionality is a one-line ``DataError`` naming the file;
- ``find_nifti``: ``stem.nii.gz`` or ``stem.nii`` in a folder;
- ``broken_link``: a ``DataError`` for a symbolic link that cannot be followed (dangling, loop);
- ``integer_labels`` / ``check_labels``: a label array checked to hold integers (and, for ``check_labels``,
  ACDC's values 0..3), as ``uint8``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiobench.data.base import LABELS
from cardiobench.data.files import broken_link
from cardiobench.errors import DataError

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
#: what to do about an unreadable NIfTI of the ACDC release (the default of ``read_nifti``)
ACDC_FIX = "extract this file again from the ACDC archive"
#: what to do about a 4-D file in the ACDC release
ACDC_4D_FIX = "use the patientNNN_frameXX files (the _4d file is not read)"


def find_nifti(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``.nii``; None if neither exists; ``DataError`` for a broken symbolic link."""
    for suffix in NIFTI_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
        err = broken_link(p)
        if err is not None:
            raise err
    return None


def read_nifti(path: Path, fix: str = ACDC_FIX, fix_4d: str = ACDC_4D_FIX) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 3-D ``(H, W, Z)`` array and its voxel spacing (mm). Anything unreadable -> ``DataError``.

    ``fix`` is the hint of an unreadable file, ``fix_4d`` that of a volume with more than three axes (a
    trailing axis of length 1 is dropped; a 2-D image becomes one slice).
    """
    import nibabel as nib

    err = broken_link(path)
    if err is not None:
        raise err
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except Exception as exc:
        reason = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {reason[0]}" if reason else type(exc).__name__
        raise DataError(f"{path}: unreadable or truncated NIfTI ({reason})", fix) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3-D volume, got shape {tuple(data.shape)}", fix_4d)
    spacing = (zooms + (1.0, 1.0, 1.0))[:3]
    if not all(np.isfinite(spacing[:2])) or min(spacing[:2]) <= 0:
        raise DataError(f"{path}: invalid voxel spacing {spacing[:2]} in the header", "fix the NIfTI header's pixdim")
    return data, spacing


def integer_labels(mask: np.ndarray, path: Path, hint: str) -> np.ndarray:
    """``mask`` as an array, or ``DataError`` naming ``path`` (with ``hint``) if it does not hold integers."""
    m = np.asarray(mask)
    if m.dtype == bool or not np.issubdtype(m.dtype, np.number) or np.iscomplexobj(m):
        raise DataError(f"{path}: labels are of type {m.dtype}, not numbers", hint)
    if not np.issubdtype(m.dtype, np.integer):
        finite = np.isfinite(m)
        if not finite.all() or not np.array_equal(m, np.round(m)):
            raise DataError(f"{path}: label values are not integers", hint)
    return m


def check_labels(mask: np.ndarray, path: Path, hint: str = "is this a _gt file?") -> np.ndarray:
    """Labels as uint8, or ``DataError`` naming ``path`` if any value is not an integer in 0..3."""
    full_hint = f"ACDC labels are {', '.join(f'{k} {v}' for k, v in LABELS.items())}; {hint}"
    m = integer_labels(mask, path, full_hint)
    values = np.unique(m)
    bad = values[(values < 0) | (values > 3)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise DataError(f"{path}: label values outside 0..3 ({shown})", full_hint)
    return m.astype(np.uint8)
