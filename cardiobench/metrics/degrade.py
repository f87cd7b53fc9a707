"""Morphological damage to real label maps: seeded, documented transforms for rulers and degradation ladders.

Every transform takes (N, H, W) label maps (0 background, 1 RV, 2 MYO, 3 LV), returns a new uint8 array of
the same shape (the input is never modified) and is deterministic: the same masks, strength and ``seed`` give
the same output on every machine. Transforms without randomness (``erode``, ``dilate``, ``missing_rv``) take
``seed`` too, so that every entry of ``TRANSFORMS`` has the signature ``f(masks, *, strength, seed)``.

``strength`` is a positive integer (1 = the default damage); each transform says what it scales. Radii are in
pixels of the maps' own resolution and grow with it (``default_radius``), so "eroded" means the same anatomy
loss at 32, 64 or 128 px.

- ``erode``: every foreground structure loses a rim of ``strength * default_radius(H)`` pixels (binary erosion
  with a disk); what it loses becomes background (walls thin, gaps open between LV and MYO).
- ``dilate``: every foreground structure grows by that radius into the background only (grey dilation of the
  label map, the highest label winning a contested pixel; no structure eats another).
- ``holes``: ``3 * strength`` background disks of radius ``default_radius(H)`` punched at foreground pixels
  picked at random (seeded) in each map: holes in the LV, MYO or RV.
- ``missing_rv``: the RV is removed (label 1 set to background); a map without RV is unchanged.
- ``mixed_damage``: each map gets exactly one of the four above, assigned by a seeded permutation so that each
  transform damages a quarter of the maps (the "damaged" set of the evaluator's ordering test).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from cardiobench.metrics.segmentation import as_label_maps

RV, MYO, LV = 1, 2, 3
FOREGROUND: tuple[int, ...] = (RV, MYO, LV)


def default_radius(size: int) -> int:
    """The damage radius in pixels at resolution ``size``: 2 px at 64 px (1 at 32, 4 at 128)."""
    return max(1, round(size / 32))


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy**2 + xx**2) <= radius**2


def _check_strength(strength: int) -> int:
    if int(strength) != strength or strength < 1:
        raise ValueError(f"strength must be a positive integer, got {strength!r}")
    return int(strength)


def erode(masks, *, strength: int = 1, seed: int = 0) -> np.ndarray:
    """Each structure eroded by ``strength * default_radius(H)`` px (disk); lost pixels become background.

    Deterministic (``seed`` is accepted for a uniform signature and ignored).
    """
    m = as_label_maps(masks)
    radius = _check_strength(strength) * default_radius(m.shape[-1])
    fp = _disk(radius)[None]  # (1, k, k): no erosion across the maps of the stack
    out = np.zeros_like(m)
    for label in FOREGROUND:
        # border_value=1: a structure touching the image edge is not eaten from outside the image
        kept = ndi.binary_erosion(m == label, structure=fp, border_value=1)
        out[kept] = label
    return out


def dilate(masks, *, strength: int = 1, seed: int = 0) -> np.ndarray:
    """Each structure grown by ``strength * default_radius(H)`` px (disk) into the background only.

    A background pixel within reach of several structures takes the highest label (LV > MYO > RV).
    Deterministic (``seed`` is accepted for a uniform signature and ignored).
    """
    m = as_label_maps(masks)
    radius = _check_strength(strength) * default_radius(m.shape[-1])
    grown = ndi.grey_dilation(m, footprint=_disk(radius)[None], mode="constant", cval=0)
    return np.where(m == 0, grown, m).astype(np.uint8)


def holes(masks, *, strength: int = 1, seed: int = 0) -> np.ndarray:
    """``3 * strength`` background disks of radius ``default_radius(H)`` per map, centred on foreground
    pixels drawn at random (``seed``); a map without foreground is unchanged."""
    m = as_label_maps(masks)
    n_holes = 3 * _check_strength(strength)
    size = m.shape[-1]
    radius = default_radius(size)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: m.shape[1], : m.shape[2]]
    out = m.copy()
    for i in range(len(m)):
        fg = np.flatnonzero(m[i] > 0)
        if fg.size == 0:
            continue
        centres = rng.choice(fg, size=n_holes, replace=fg.size < n_holes)
        cy, cx = np.unravel_index(centres, m.shape[1:])
        punch = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2 <= radius**2).any(0)
        out[i][punch] = 0
    return out


def missing_rv(masks, *, strength: int = 1, seed: int = 0) -> np.ndarray:
    """The RV removed (label 1 -> background). ``strength`` and ``seed`` are accepted and ignored."""
    m = as_label_maps(masks)
    _check_strength(strength)
    return np.where(m == RV, 0, m).astype(np.uint8)


#: name -> transform ``f(masks, *, strength, seed)``, in the order ``mixed_damage`` assigns them
TRANSFORMS: dict[str, Callable[..., np.ndarray]] = {
    "erode": erode,
    "dilate": dilate,
    "holes": holes,
    "missing_rv": missing_rv,
}


def degrade(masks, kind: str, *, strength: int = 1, seed: int = 0) -> np.ndarray:
    """Apply the transform named ``kind`` (a key of ``TRANSFORMS``)."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown damage {kind!r}; use one of: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[kind](masks, strength=strength, seed=seed)


def mixed_damage(masks, *, strength: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each map damaged by one transform: ``(damaged (N, H, W) uint8, kind (N,) index into TRANSFORMS)``.

    Map ``i`` gets transform ``perm[i] % 4`` for a permutation drawn with ``seed``: a quarter of the maps each.
    """
    m = as_label_maps(masks)
    rng = np.random.default_rng(seed)
    kinds = rng.permutation(len(m)) % len(TRANSFORMS)
    out = m.copy()
    for k, fn in enumerate(TRANSFORMS.values()):
        sel = np.flatnonzero(kinds == k)
        if sel.size:
            out[sel] = fn(m[sel], strength=strength, seed=seed + k)
    return out, kinds
