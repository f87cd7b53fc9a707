"""Functional segmentation metrics for any number of classes, in 2-D or 3-D: ``dice`` and ``hd95``.

    import cardiobench as cb
    cb.metrics.dice(pred, target)                       # (B, C-1): one column per foreground class
    cb.metrics.hd95(pred, target, spacing=(10, 1.5, 1.5))  # per-axis spacing (D, H, W) in mm

Inputs (as MONAI's ``compute_dice`` / ``compute_hausdorff_distance`` take them, or as label maps):

- integer arrays/tensors are **label maps** ``(B, *spatial)`` with values ``0..num_classes-1``
  (``num_classes`` defaults to the largest label present + 1, at least 2);
- floating or boolean arrays/tensors are **one-hot** ``(B, C, *spatial)`` (a float input is thresholded at
  0.5 as MONAI does; give scores to ``argmax`` yourself first).

``spatial`` is 2-D ``(H, W)`` or 3-D ``(D, H, W)``. Class 0 is background and left out unless
``include_background=True`` (MONAI's default includes it: pass ``include_background=True`` to compare).
Results are ``(B, C')`` float64 (``C' = C - 1`` without background), numpy for numpy input and a CPU
torch tensor for torch input.

Conventions (the ACDC challenge's, as the benchmark's 2-D metrics in ``cardiobench.metrics.segmentation``):
Dice of two empty masks is 1 and of exactly one empty mask 0 (MONAI: ``ignore_empty=False``); HD95 is the
larger of the two directed 95th-percentile distances between the masks' *edges* (a foreground voxel that
an erosion with the face-connected cross removes, the outside counting as background: MONAI's edges), in
the unit of ``spacing`` (``None``: voxels). Two empty masks score 0, exactly one empty mask NaN (MONAI:
inf or NaN), so a mean over cases must say how many were missing (see ``docs/metrics.md``).

Distances are exact Euclidean distances between edge voxels scaled by the spacing (what MONAI gets from
``distance_transform_edt`` with the spacing as sampling), found with one KD-tree over every case and class at once
(``scipy.spatial.cKDTree``; the cases and classes set apart along an extra axis), as the fast 2-D metrics do; the
percentile is linear interpolation (``torch.quantile``'s and ``numpy.percentile``'s default).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["dice", "hd95", "one_hot"]


def _to_numpy(x: Any) -> tuple[np.ndarray, bool]:
    """``(array, was_torch)``."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch for numpy callers
        return x.detach().cpu().numpy(), True
    return np.asarray(x), False


def one_hot(x: Any, num_classes: int | None = None) -> np.ndarray:
    """``(B, *spatial)`` labels or ``(B, C, *spatial)`` one-hot/probabilities -> ``(B, C, *spatial)`` bool."""
    a, _ = _to_numpy(x)
    if a.dtype.kind in "fb":  # one-hot already
        if a.ndim not in (4, 5):
            raise ValueError(f"one-hot input must be (B, C, H, W) or (B, C, D, H, W), got shape {a.shape}")
        return a > 0.5 if a.dtype.kind == "f" else a.astype(bool)
    if a.dtype.kind not in "iu":
        raise ValueError(f"label maps must be integers, got dtype {a.dtype}")
    if a.ndim not in (3, 4):
        raise ValueError(f"label maps must be (B, H, W) or (B, D, H, W), got shape {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(a.min())}")
    k = int(num_classes) if num_classes is not None else max(2, int(a.max(initial=0)) + 1)
    if a.size and a.max() >= k:
        raise ValueError(f"label {int(a.max())} is outside 0..{k - 1} (num_classes={k})")
    return np.moveaxis(np.arange(k) == a[..., None], -1, 1)


def _pair(pred: Any, target: Any, num_classes: int | None, include_background: bool
          ) -> tuple[np.ndarray, np.ndarray, bool]:
    p, torch_in = _to_numpy(pred)
    t, torch_t = _to_numpy(target)
    if num_classes is None and p.dtype.kind in "iu" and t.dtype.kind in "iu":
        num_classes = max(2, int(max(p.max(initial=0), t.max(initial=0))) + 1)
    p1, t1 = one_hot(p, num_classes), one_hot(t, num_classes)
    if p1.shape != t1.shape:
        raise ValueError(f"prediction {p1.shape} and target {t1.shape} differ in shape (B, C, *spatial)")
    first = 0 if include_background else 1
    return p1[:, first:], t1[:, first:], torch_in or torch_t


def _out(values: np.ndarray, as_torch: bool) -> Any:
    if as_torch:
        import torch

        return torch.from_numpy(values)
    return values


def dice(pred: Any, target: Any, *, num_classes: int | None = None, include_background: bool = False) -> Any:
    """Dice ``2|P ∩ G| / (|P| + |G|)`` per case and class: ``(B, C')`` float64 (both empty: 1; one empty: 0)."""
    p, t, as_torch = _pair(pred, target, num_classes, include_background)
    axes = tuple(range(2, p.ndim))
    inter = np.logical_and(p, t).sum(axes).astype(np.float64)
    total = p.sum(axes).astype(np.float64) + t.sum(axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2.0 * inter / total, 1.0)
    return _out(scores, as_torch)


def _spacings(spacing: Any, batch: int, ndim: int) -> np.ndarray:
    """None | number | per-axis (ndim,) | per-case (B, ndim) -> (B, ndim) float64."""
    if spacing is None:
        return np.ones((batch, ndim))
    s = np.asarray(spacing, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(ndim, float(s))
    if s.ndim == 1:
        if s.shape[0] != ndim:
            raise ValueError(f"spacing needs {ndim} values (one per spatial axis), got {s.shape[0]}")
        s = np.broadcast_to(s, (batch, ndim))
    if s.shape != (batch, ndim):
        raise ValueError(f"spacing must be a number, ({ndim},) or ({batch}, {ndim}), got shape {s.shape}")
    if not np.all(s > 0):
        raise ValueError("spacing must be > 0")
    return s


def _edges(m: np.ndarray) -> np.ndarray:
    """(B, C, *spatial) bool -> the voxels an erosion with the face-connected cross removes (outside = background),
    every case and class at once: foreground with a face neighbour outside the mask."""
    nd = m.ndim - 2
    pad = np.pad(m, [(0, 0), (0, 0)] + [(1, 1)] * nd, constant_values=False)
    inner = m.copy()
    for axis in range(2, m.ndim):
        for offset in (-1, 1):
            idx = [slice(None), slice(None)] + [slice(1, -1)] * nd
            idx[axis] = slice(1 + offset, pad.shape[axis] - 1 + offset)
            inner &= pad[tuple(idx)]
    return m & ~inner


def _points(edges: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge voxels of (B, C, *spatial) as ``(group, coordinates)``: group ``b * C + c``, coordinates in the unit
    of ``spacing`` (B, ndim)."""
    idx = np.nonzero(edges)
    group = idx[0] * edges.shape[1] + idx[1]
    coords = np.stack(idx[2:], axis=1).astype(np.float64) * spacing[idx[0]]
    return group, coords


def _nearest(q_group: np.ndarray, q_pts: np.ndarray, t_group: np.ndarray, t_pts: np.ndarray, big: float
             ) -> np.ndarray:
    """Distance from each query point to the nearest target point of its own group: one KD-tree over every group,
    the groups shifted ``big`` apart along the first axis (``big`` exceeds the first axis's extent plus any distance
    within a group, so a point of another group is never the nearest)."""
    shift = np.zeros_like(t_pts)
    shift[:, 0] = t_group * big
    tree = cKDTree(t_pts + shift, leafsize=32, balanced_tree=False, compact_nodes=False)
    shift = np.zeros_like(q_pts)
    shift[:, 0] = q_group * big
    dist, _ = tree.query(q_pts + shift, k=1, workers=-1)
    return dist


def _grouped_percentile(group: np.ndarray, values: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """``np.percentile(values[group == g], 100 q)`` (linear interpolation) for every group g; NaN where empty."""
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    out = np.full(n_groups, np.nan)
    has = counts > 0
    pos = q * (counts[has] - 1)  # the fractional rank within each group
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    base = starts[has]
    out[has] = v[base + lo] + (pos - lo) * (v[base + hi] - v[base + lo])
    return out


def hd95(pred: Any, target: Any, *, spacing: Any = None, percentile: float = 95.0, num_classes: int | None = None,
         include_background: bool = False) -> Any:
    """Symmetric percentile Hausdorff distance between edges per case and class: ``(B, C')`` float64.

    ``spacing``: voxel size per spatial axis (``(H, W)`` or ``(D, H, W)`` order), one for all cases or
    ``(B, ndim)``; ``None`` measures in voxels. Both empty: 0; exactly one empty: NaN.
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    p, t, as_torch = _pair(pred, target, num_classes, include_background)
    b, c = p.shape[:2]
    sp = _spacings(spacing, b, p.ndim - 2)
    q = float(percentile) / 100.0
    ep, et = _edges(p), _edges(t)
    has_p, has_t = ep.reshape(b * c, -1).any(1), et.reshape(b * c, -1).any(1)
    out = np.full(b * c, np.nan)
    out[~has_p & ~has_t] = 0.0
    both = has_p & has_t
    if both.any():
        keep = both.reshape(b, c)[(slice(None), slice(None)) + (None,) * (p.ndim - 2)]
        gp, pp = _points(ep & keep, sp)
        gt, pt = _points(et & keep, sp)
        big = 4.0 * float(sum(p.shape[2:])) * float(sp.max()) + 1.0
        forward = _grouped_percentile(gp, _nearest(gp, pp, gt, pt, big), b * c, q)
        backward = _grouped_percentile(gt, _nearest(gt, pt, gp, pp, big), b * c, q)
        out[both] = np.maximum(forward, backward)[both]
    out = out.reshape(b, c)
    return _out(out, as_torch)
