"""Whole short-axis stacks as fixed-size volumes: the 3-D counterpart of ``preprocess_volume`` (``--dims 3``).

One phase of one patient, an ``(H, W, Z)`` image and mask, becomes one ``(D, S, S)`` volume:

1. **through-plane extent**: the slices from the first to the last that hold a label (base to apex); slices
   outside it are dropped, an unlabelled slice inside it is kept (empty);
2. **in-plane ROI over the whole stack**: the bounding box of every labelled pixel of every slice, made square
   with the same margin as a slice (``square_box``), so one crop frames the whole heart and the slices stay
   registered to each other (the 2-D path crops each slice on its own);
3. **in-plane resize** to ``S x S``: linear with anti-aliasing for the image, nearest neighbour for the mask
   (``resize_pair``), as for slices;
4. **through-plane to D slices** (``depth_mode``):

   - ``"resample"`` (the default): nearest neighbour along the slice axis, the output slice ``j`` copying the
     source slice under its centre (``nearest_indices(n, D)``). Every heart fills the D slices base to apex,
     whatever its 6 to 18 source slices; the slice spacing becomes ``thickness * n / D``. Nearest, not
     linear, because ACDC's slices are 5 to 10 mm apart: a blend of two such slices is not an anatomy.
   - ``"pad"``: the n slices kept at their spacing, centred in D with empty slices around them; a stack of
     more than D slices loses its outermost ones (counted in ``describe()``). Real geometry, but hearts of
     different lengths then fill the box differently.

Spacing per volume is ``(slice, rows, cols)``: the in-plane spacing after resizing (``spacing * side / S``),
and the slice spacing after step 4. A source that stores no slice thickness (``acdc-h5``) measures the slice
axis in source slices (``spacing_unit`` ``"px"`` means source voxels on every axis) unless the data set is
given ``slice_spacing``.

Rotation augmentation rotates every slice of the stack by the same angle about the centre of the stack's
ROI, then runs steps 2 to 4, so a rotated heart stays one rigid volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.transform import rotate

from cardiobench.data.preprocess import crop_pad, nearest_indices, resize_pair, roi_bbox, square_box

#: how a stack of n slices becomes D slices
DEPTH_MODES: tuple[str, ...] = ("resample", "pad")


@dataclass
class Stack:
    """One preprocessed volume."""

    mask: np.ndarray  # (D, S, S) uint8
    image: np.ndarray  # (D, S, S) float32 in [0, 1]
    spacing: np.ndarray  # (3,) float32: slice, rows, cols
    source_slices: int  # n, the labelled extent in the source (before step 4)
    dropped: int  # slices lost by "pad" when n > D


def heart_extent(mask: np.ndarray) -> tuple[int, int] | None:
    """``(first, last)`` slice of an ``(H, W, Z)`` mask that holds a label (inclusive), or None."""
    labelled = np.flatnonzero(mask.reshape(-1, mask.shape[-1]).any(axis=0))
    if labelled.size == 0:
        return None
    return int(labelled[0]), int(labelled[-1])


def _rotate_stack(image: np.ndarray, mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate every slice of an ``(H, W, n)`` stack by ``angle`` degrees about the centre of the stack's ROI;
    returns the rotated square around it (its diagonal, so nothing is cut off), ``(side, side, n)``."""
    rmin, rmax, cmin, cmax = roi_bbox(mask.any(axis=2))  # type: ignore[misc]  # the caller checked non-empty
    h, w = rmax - rmin + 1, cmax - cmin + 1
    side = int(math.ceil(math.hypot(h, w))) + 4
    r0, c0 = rmin - (side - h) // 2, cmin - (side - w) // 2
    imgs, msks = [], []
    for k in range(mask.shape[2]):
        img = crop_pad(image[:, :, k].astype(np.float32, copy=False), r0, c0, side)
        msk = crop_pad(mask[:, :, k], r0, c0, side)
        imgs.append(rotate(img, angle, order=1, mode="constant", cval=0.0, preserve_range=True))
        msks.append(rotate(msk, angle, order=0, mode="constant", cval=0, preserve_range=True))
    return np.stack(imgs, axis=2).astype(np.float32), np.stack(msks, axis=2).astype(np.uint8)


def _to_depth(a: np.ndarray, depth: int, mode: str) -> tuple[np.ndarray, int]:
    """(n, S, S) -> (depth, S, S) and the number of slices dropped."""
    n = len(a)
    if mode == "resample":
        return a[nearest_indices(n, depth)], 0
    out = np.zeros((depth, *a.shape[1:]), dtype=a.dtype)
    if n <= depth:
        start = (depth - n) // 2
        out[start:start + n] = a
        return out, 0
    start = (n - depth) // 2
    return a[start:start + depth].copy(), n - depth


def preprocess_stack(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: Sequence[float],
    thickness: float,
    size: int,
    depth: int,
    margin: float,
    mode: str = "resample",
    angles: Sequence[float] = (),
) -> list[Stack]:
    """An ``(H, W, Z)`` volume (image normalised to [0, 1]) -> its stack, then one rotated copy per angle.

    ``spacing`` is the in-plane (rows, cols) spacing, ``thickness`` the distance between source slices, both
    in the source's unit. An all-background volume gives ``[]``.
    """
    if image.shape != mask.shape or image.ndim != 3:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be the same (H, W, Z) shape")
    if mode not in DEPTH_MODES:
        raise ValueError(f"depth_mode must be one of {', '.join(DEPTH_MODES)}, got {mode!r}")
    extent = heart_extent(mask)
    if extent is None:
        return []
    k0, k1 = extent
    img0, msk0 = image[:, :, k0:k1 + 1], mask[:, :, k0:k1 + 1]
    n = k1 - k0 + 1
    sp = np.asarray(spacing, dtype=np.float64)[:2]
    out = []
    for angle in (None, *angles):
        img, msk = (img0, msk0) if angle is None else _rotate_stack(img0, msk0, float(angle))
        r0, c0, side = square_box(roi_bbox(msk.any(axis=2)), margin)  # type: ignore[arg-type]
        pairs = [resize_pair(crop_pad(img[:, :, k], r0, c0, side), crop_pad(msk[:, :, k], r0, c0, side), size)
                 for k in range(n)]
        vol_img, dropped = _to_depth(np.stack([p[0] for p in pairs]), depth, mode)
        vol_msk, _ = _to_depth(np.stack([p[1] for p in pairs]), depth, mode)
        step = thickness * n / depth if mode == "resample" else thickness
        out.append(Stack(mask=vol_msk, image=vol_img,
                         spacing=np.array([step, *(sp * side / size)], dtype=np.float32),
                         source_slices=n, dropped=dropped))
    return out
