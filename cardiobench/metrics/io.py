"""Read generated label maps from a file or a folder, so masks made outside the toolkit can be ranked.

Formats (labels 0 background, 1 RV, 2 MYO, 3 LV):

- ``.npy``: an integer (H, W) or (N, H, W) array.
- ``.npz``: the array named ``masks`` if present, else its only array; same shapes as ``.npy``.
- ``.png``: one (H, W) label map, greyscale/palette with values 0..3, or RGB coloured with
  ``cardiobench.viz.PALETTE`` (what ``cardiobench`` writes).
- ``.nii`` / ``.nii.gz``: an (H, W) or (H, W, Z) volume, one map per slice along the last axis (the ACDC
  convention of ``cardiobench.data.acdc``).

A folder is read file by file in sorted name order (other files are ignored). Every map must be square and
all of one size. Anything wrong is a ``DataError`` naming the file. ``.npy`` / ``.npz`` files go through
``cardiobench.data.safe_npz.load``: their declared sizes are checked before anything is decompressed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cardiobench.data import safe_npz
from cardiobench.data.base import NUM_CLASSES
from cardiobench.errors import CardiobenchError, DataError

SUFFIXES = (".npy", ".npz", ".png", ".nii", ".nii.gz")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _labels(arr: np.ndarray, path: Path) -> np.ndarray:
    """Any integer-valued array -> uint8, or a DataError naming the file."""
    a = np.asarray(arr)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{path}: expected integer labels 0..{NUM_CLASSES - 1}, got dtype {a.dtype}")
    if a.size == 0:
        raise DataError(f"{path}: holds no masks (shape {a.shape})")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise DataError(f"{path}: labels must be whole numbers 0..{NUM_CLASSES - 1} (got non-integer values)")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi >= NUM_CLASSES:
        raise DataError(f"{path}: labels outside 0..{NUM_CLASSES - 1} (found {lo:g}..{hi:g})")
    return a.astype(np.uint8)


def _stack(arr: np.ndarray, path: Path, volumes: bool = False) -> np.ndarray:
    """(N, H, W) label maps (an (H, W) map gains the N axis); with ``volumes`` (arrays, not images) also
    (N, D, H, W) volumes, as a volumetric run writes them."""
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and volumes:
        return arr
    if arr.ndim != 3:
        also = " or (N, D, H, W) volumes" if volumes else ""
        raise DataError(f"{path}: wrong shape {tuple(arr.shape)}: expected (H, W) or (N, H, W) label maps{also}")
    return arr


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    from cardiobench.viz import PALETTE

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im.convert("RGB") if mode in ("RGBA", "LA") else im)
    except Exception as exc:
        raise DataError(f"{path}: unreadable PNG ({type(exc).__name__})") from None
    if arr.ndim == 3:  # colour-coded: map every pixel back through the palette
        rgb = arr[..., :3].astype(np.int32)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        pal = (PALETTE[:, 0].astype(np.int32) << 16) | (PALETTE[:, 1].astype(np.int32) << 8) | PALETTE[:, 2]
        out = np.full(codes.shape, -1, dtype=np.int64)
        for label, code in enumerate(pal):
            out[codes == code] = label
        if (out < 0).any():
            raise DataError(
                f"{path}: RGB PNG with colours outside the cardiobench palette (viz.PALETTE)",
                "save label maps as greyscale PNGs with values 0..3",
            )
        return out[None]
    return _stack(arr, path)


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    try:
        data = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as exc:
        raise DataError(f"{path}: unreadable NIfTI ({type(exc).__name__})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return data[None]
    if data.ndim != 3:
        raise DataError(f"{path}: wrong shape {tuple(data.shape)}: expected an (H, W) or (H, W, Z) volume")
    return np.moveaxis(data, -1, 0)


def read_file(path: str | os.PathLike) -> np.ndarray:
    """(N, H, W) uint8 label maps from one file ((N, D, H, W) volumes from an ``.npy`` / ``.npz`` array)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type", f"use one of: {', '.join(SUFFIXES)}")
    try:
        if suffix == ".npy":
            arr = _stack(safe_npz.load(path), path, volumes=True)
        elif suffix == ".npz":
            with safe_npz.load(path) as z:
                keys = list(z.keys())
                if "masks" in keys:
                    key = "masks"
                elif len(keys) == 1:
                    key = keys[0]
                else:
                    raise DataError(f"{path}: holds arrays {keys}; name the masks array 'masks'")
                arr = _stack(z[key], path, volumes=True)
        elif suffix == ".png":
            arr = _read_png(path)
        else:
            arr = _read_nifti(path)
    except CardiobenchError:
        raise
    except Exception as exc:
        raise DataError(
            f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if arr.shape[-2] != arr.shape[-1]:
        raise DataError(f"{path}: wrong shape {tuple(arr.shape[1:])}: masks must be square")
    return _labels(arr, path)


def read_masks(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """(N, H, W) uint8 label maps (or (N, D, H, W) volumes from ``.npy``/``.npz``) from a file or a folder, and the
    file each map came from."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _suffix(p) in SUFFIXES)
        if not files:
            raise DataError(f"{path}: no mask files ({', '.join(SUFFIXES)}) in this folder")
    else:
        files = [path]
    parts, names = [], []
    for f in files:
        m = read_file(f)
        if parts and m.shape[1:] != parts[0].shape[1:]:
            raise DataError(
                f"{f}: wrong shape {'x'.join(map(str, m.shape[1:]))}: "
                f"the other masks are {'x'.join(map(str, parts[0].shape[1:]))}"
            )
        parts.append(m)
        names.extend([f.name] * len(m))
    return np.concatenate(parts), names
