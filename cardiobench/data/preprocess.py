"""Per-slice preprocessing shared by every built-in data set (the seed report, sections 3.2-3.3).

For each 2-D short-axis slice of a volume:

1. drop it if its mask is empty (all background);
2. find the region of interest: the bounding box of the non-background pixels (the rows and columns
   that are not all background);
3. take a square of side ``max(h, w) * (1 + 2 * margin)`` centred on that box, padding with zeros
   where it leaves the image, so the heart sits in the middle and is never distorted;
4. resize the square to ``size x size``: nearest neighbour for the mask (labels stay integers 0..3),
   linear interpolation with anti-aliasing for the image (scikit-image ``resize``);
5. record the pixel spacing after resizing, ``native spacing * side / size`` (mm), so distances such
   as the Hausdorff distance can be reported in millimetres.

Optional rotation augmentation (section 3.3) rotates a slice about the centre of its region of
interest at the native resolution (``skimage.transform.rotate``; nearest neighbour for the mask) and
then runs the same steps, so rotated hearts are centred and complete too.

Images are normalised per volume first (``normalize_intensity``): the 0.5th-99.5th percentile range
maps to [0, 1], so every slice of a volume shares one intensity scale. NaN and infinite voxels are left
out of the percentiles and set to 0 (black); ``VolumeSource`` warns about them, naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize, rotate

#: bump when the output of this module changes, so cached sets are rebuilt
#: (2: NaN / infinite voxels no longer turn a whole volume black)
PREPROCESS_VERSION = 2
#: default margin on each side of the region of interest, as a fraction of its larger side
DEFAULT_MARGIN = 0.1


@dataclass
class Slices:
    """Preprocessed slices of one volume (all arrays share the first axis)."""

    masks: np.ndarray  # (n, size, size) uint8
    images: np.ndarray  # (n, size, size) float32 in [0, 1]
    spacing: np.ndarray  # (n, 2) float32, mm after resizing
    slice_index: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.masks)


def normalize_intensity(volume: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Float32 copy of ``volume`` with its ``[low, high]`` percentile range mapped to [0, 1] (clipped).

    The percentiles are those of the finite voxels; NaN and infinite voxels become 0 (black). A volume
    without finite voxels, or of one constant value, becomes all 0.
    """
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, treated as non-finite
        v = np.asarray(volume, dtype=np.float32)
    if v.size == 0:
        return v.copy()
    finite = np.isfinite(v)
    all_finite = bool(finite.all())
    values = v.reshape(-1) if all_finite else v[finite]
    if values.size == 0:
        return np.zeros_like(v)
    sample = values[:: max(1, values.size // 200_000)]  # a regular subsample is plenty for two percentiles
    lo, hi = np.percentile(sample, [low, high])
    if hi - lo < 1e-6:
        return np.zeros_like(v)
    out = np.clip((v - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    if not all_finite:
        out[~finite] = 0.0
    return out


def roi_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(rmin, rmax, cmin, cmax)`` (inclusive) of the non-background pixels, or None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def square_box(bbox: tuple[int, int, int, int], margin: float) -> tuple[int, int, int]:
    """``(r0, c0, side)``: the square of side ``ceil(max(h, w) * (1 + 2 margin))`` centred on ``bbox``."""
    rmin, rmax, cmin, cmax = bbox
    h, w = rmax - rmin + 1, cmax - cmin + 1
    side = max(h, w, int(math.ceil(max(h, w) * (1.0 + 2.0 * margin) - 1e-9)))
    return rmin - (side - h) // 2, cmin - (side - w) // 2, side


def crop_pad(array: np.ndarray, r0: int, c0: int, side: int) -> np.ndarray:
    """The ``side x side`` window of a 2-D array at ``(r0, c0)``; zeros where it leaves the array."""
    out = np.zeros((side, side), dtype=array.dtype)
    h, w = array.shape
    sr0, sc0 = max(r0, 0), max(c0, 0)
    sr1, sc1 = min(r0 + side, h), min(c0 + side, w)
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = array[sr0:sr1, sc0:sc1]
    return out


def nearest_indices(side: int, size: int) -> np.ndarray:
    """Source index of each of ``size`` output pixels when resampling ``side`` pixels (pixel centres)."""
    return np.minimum(((np.arange(size) + 0.5) * (side / size)).astype(np.int64), side - 1)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square label map: every output pixel copies the source pixel under its
    centre, so labels stay exactly 0..3 (what ``skimage.transform.resize(order=0)`` does, without its overhead)."""
    idx = nearest_indices(mask.shape[0], size)
    return np.ascontiguousarray(mask[np.ix_(idx, idx)]).astype(np.uint8, copy=False)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square image and mask -> ``size x size``: smooth (linear, anti-aliased) image, nearest-neighbour mask."""
    side = mask.shape[0]
    if side == size:
        return image.astype(np.float32, copy=False), mask.astype(np.uint8, copy=False)
    img = resize(image, (size, size), order=1, mode="edge", anti_aliasing=side > size, preserve_range=True)
    return np.clip(img, 0.0, 1.0).astype(np.float32), resize_mask(mask, size)


def rotate_about_roi(image: np.ndarray, mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a slice by ``angle`` degrees (counter-clockwise) about the centre of its region of interest.

    Only a square around the region (its diagonal, so nothing is cut off) is rotated; the result is that
    square, ready for ``preprocess_slice``'s crop. Nearest neighbour for the mask, linear for the image.
    """
    bbox = roi_bbox(mask)
    if bbox is None:
        return image, mask
    rmin, rmax, cmin, cmax = bbox
    h, w = rmax - rmin + 1, cmax - cmin + 1
    side = int(math.ceil(math.hypot(h, w))) + 4
    r0, c0 = rmin - (side - h) // 2, cmin - (side - w) // 2
    img = crop_pad(image.astype(np.float32, copy=False), r0, c0, side)
    msk = crop_pad(mask, r0, c0, side)
    img = rotate(img, angle, order=1, mode="constant", cval=0.0, preserve_range=True)
    msk = rotate(msk, angle, order=0, mode="constant", cval=0, preserve_range=True)
    return img.astype(np.float32), msk.astype(np.uint8)


def preprocess_slice(
    image: np.ndarray, mask: np.ndarray, size: int, margin: float = DEFAULT_MARGIN
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """One slice -> ``(image, mask, side)`` at ``size x size``, or None if the mask is empty.

    ``side`` is the crop's side in source pixels, so the spacing after resizing is ``spacing * side / size``.
    """
    bbox = roi_bbox(mask)
    if bbox is None:
        return None
    r0, c0, side = square_box(bbox, margin)
    img, msk = resize_pair(crop_pad(image, r0, c0, side), crop_pad(mask, r0, c0, side), size)
    return img, msk, side


def preprocess_volume(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: Sequence[float],
    size: int,
    margin: float = DEFAULT_MARGIN,
    angles: Sequence[Sequence[float]] | None = None,
) -> Slices:
    """Every non-empty slice of an ``(H, W, Z)`` volume (image already normalised to [0, 1]).

    ``angles[k]`` (optional) lists extra rotated copies of slice ``k`` (degrees); the unrotated slice is
    always kept first. Copies share the slice's ``slice_index``.
    """
    if image.shape != mask.shape or image.ndim != 3:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be the same (H, W, Z) shape")
    sp = np.asarray(spacing, dtype=np.float64)[:2]
    masks, images, spacings, index = [], [], [], []
    for k in range(mask.shape[2]):
        m = mask[:, :, k]
        if not m.any():
            continue
        img = image[:, :, k]
        variants = [(img, m)]
        for angle in angles[k] if angles is not None else ():
            variants.append(rotate_about_roi(img, m, float(angle)))
        for vi, vm in variants:
            out = preprocess_slice(vi, vm, size, margin)
            if out is None:  # a rotation cannot empty a mask, but stay safe
                continue
            oi, om, side = out
            masks.append(om)
            images.append(oi)
            spacings.append(sp * side / size)
            index.append(k)
    n = len(masks)
    return Slices(
        masks=np.stack(masks) if n else np.zeros((0, size, size), np.uint8),
        images=np.stack(images) if n else np.zeros((0, size, size), np.float32),
        spacing=np.asarray(spacings, dtype=np.float32).reshape(n, 2),
        slice_index=np.asarray(index, dtype=np.int64),
    )


def draw_angles(
    rng: np.random.Generator, n_slices: int, copies: int, choices: Sequence[float] | None = None
) -> list[list[float]]:
    """``copies`` rotation angles per slice: from ``choices`` if given, else uniform in [-180, 180)."""
    if copies <= 0:
        return [[] for _ in range(n_slices)]
    if choices:
        picked = rng.choice(np.asarray(choices, dtype=np.float64), size=(n_slices, copies))
    else:
        picked = rng.uniform(-180.0, 180.0, size=(n_slices, copies))
    return [[float(a) for a in row] for row in picked]
