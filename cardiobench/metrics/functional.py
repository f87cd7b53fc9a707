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

Distances are exact Euclidean distances between edge voxels scaled by the spacing (what MONAI gets from its
KD-tree over the scaled edge coordinates); the percentile is linear interpolation (``torch.quantile``'s and
``numpy.percentile``'s default) of the float64 distances.

How it is fast (MONAI loops over every (case, class) pair in Python and builds a KD-tree for each):

- Label maps stay label maps: Dice from one ``bincount`` per case of the joint codes ``pred * C + target``
  (every case's C x C confusion matrix); edges of all classes from one comparison of neighbours per axis (a
  voxel whose face neighbour, or the outside, carries another label). One-hot input takes the per-class path.
- Most distances need no search. Each edge voxel of one mask looks for an edge voxel of the same class of the
  other mask on rings of in-plane offsets around it, in its own slice (the last two axes), nearest ring first:
  the same voxel (a shared edge, distance 0), then the 4 face neighbours, the 4 diagonals, and so on to offsets
  of ``dy^2 + dx^2 = 18`` (``RINGS``), looked up in a per-voxel bit mask of the classes whose edge passes
  there. The first ring that holds one bounds the distance; with square pixels its offsets are all equally
  far, and when nothing outside the rings searched so far can be nearer (the next rings, the pixels beyond
  them, and in 3-D the neighbouring slices, one slice spacing away) that bound *is* the distance.
- A distance that is only bounded need not be known either: the percentile needs only the two order
  statistics around rank ``q (n - 1)`` of its (case, class), and points ranked below them are only counted.
  Per (case, class) the largest ring level whose points all rank below the percentile is taken (when no point
  outside those rings can be as near as their bound); its points are counted, and the others that have no
  distance yet go to one KD-tree (``scipy.spatial.cKDTree``) per direction over the edge voxels of the pairs
  that still need one, the pairs set apart along the first axis. If a queried or known distance lies within
  the bound after all, the percentile might fall among the counted points: that pair's counted points are
  queried too. The result is the same order statistic of the same distances as a KD-tree over every point
  gives; on 20 short-axis stacks of 16 x 64 x 64 voxels (two different hearts per pair, spacing 10 x 1.5 x
  1.5 mm) under 5 % of the edge voxels are queried.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["dice", "hd95", "one_hot"]

#: the bound levels of ``hd95``, as squared in-plane radii in pixels: level l holds the query points that have an
#: edge of the other mask (same class, same slice) within the in-plane disk of radius sqrt(RINGS[l]) pixels, and
#: none within the disk of level l - 1 (level 0: at the same voxel, distance 0)
RINGS: tuple[int, ...] = (0, 1, 2, 4, 5, 8, 9, 10, 13, 16, 17, 18)
#: the in-plane offsets (rows, cols) of each ring: dy^2 + dx^2 == RINGS[l]
_RING_OFFSETS: tuple[np.ndarray, ...] = tuple(
    np.array([(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if dy * dy + dx * dx == r]).reshape(-1, 2)
    for r in RINGS)
_REACH = 4  # the largest |dy| or |dx| of any ring


def _to_numpy(x: Any) -> tuple[np.ndarray, bool]:
    """``(array, was_torch)``."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch for numpy callers
        return x.detach().cpu().numpy(), True
    return np.asarray(x), False


def _check_labels(a: np.ndarray, num_classes: int | None) -> int:
    """Check ``(B, H, W)`` or ``(B, D, H, W)`` integer labels; returns the number of classes."""
    if a.dtype.kind not in "iu":
        raise ValueError(f"label maps must be integers, got dtype {a.dtype}")
    if a.ndim not in (3, 4):
        raise ValueError(f"label maps must be (B, H, W) or (B, D, H, W), got shape {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(a.min())}")
    k = int(num_classes) if num_classes is not None else max(2, int(a.max(initial=0)) + 1)
    if a.size and a.max() >= k:
        raise ValueError(f"label {int(a.max())} is outside 0..{k - 1} (num_classes={k})")
    return k


def one_hot(x: Any, num_classes: int | None = None) -> np.ndarray:
    """``(B, *spatial)`` labels or ``(B, C, *spatial)`` one-hot/probabilities -> ``(B, C, *spatial)`` bool."""
    a, _ = _to_numpy(x)
    if a.dtype.kind in "fb":  # one-hot already
        if a.ndim not in (4, 5):
            raise ValueError(f"one-hot input must be (B, C, H, W) or (B, C, D, H, W), got shape {a.shape}")
        return a > 0.5 if a.dtype.kind == "f" else a.astype(bool)
    k = _check_labels(a, num_classes)
    return np.moveaxis(np.arange(k) == a[..., None], -1, 1)


class _Pair(NamedTuple):
    """Prediction and target ready to score: integer label maps ``(B, *spatial)`` (``labels`` true), or one-hot
    ``(B, C', *spatial)`` bool without the left-out background class (``labels`` false)."""

    pred: np.ndarray
    target: np.ndarray
    labels: bool  # True: integer label maps with ``num_classes`` classes; False: one-hot
    num_classes: int  # C (label maps) or C' (one-hot)
    first: int  # the first class scored: 0 with background, else 1
    as_torch: bool


def _pair(pred: Any, target: Any, num_classes: int | None, include_background: bool) -> _Pair:
    p, torch_p = _to_numpy(pred)
    t, torch_t = _to_numpy(target)
    first = 0 if include_background else 1
    if p.dtype.kind in "iu" and t.dtype.kind in "iu":  # label maps: scored as they are
        if num_classes is None:
            num_classes = max(2, int(max(p.max(initial=0), t.max(initial=0))) + 1)
        k = _check_labels(p, num_classes)
        _check_labels(t, k)
        if p.shape != t.shape:
            raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape (B, *spatial)")
        return _Pair(p, t, True, k, first, torch_p or torch_t)
    p1, t1 = one_hot(p, num_classes), one_hot(t, num_classes)
    if p1.shape != t1.shape:
        raise ValueError(f"prediction {p1.shape} and target {t1.shape} differ in shape (B, C, *spatial)")
    return _Pair(p1[:, first:], t1[:, first:], False, p1.shape[1] - first, first, torch_p or torch_t)


def _out(values: np.ndarray, as_torch: bool) -> Any:
    if as_torch:
        import torch

        return torch.from_numpy(values)
    return values


def _code_dtype(n: int) -> type:
    """The smallest unsigned integer type that holds ``0..n-1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dtype).max + 1:
            return dtype
    return np.uint64


def _confusion(p: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """``(B, *spatial)`` label maps -> ``(B, k, k)`` int64 confusion matrices ``[case, pred, target]``: one
    ``bincount`` per case of the joint codes ``p * k + t`` (in the smallest type that holds them)."""
    dtype = _code_dtype(k * k)
    codes = (p.astype(dtype) * dtype(k) + t.astype(dtype)).reshape(len(p), int(np.prod(p.shape[1:])))
    out = np.zeros((len(p), k * k), dtype=np.int64)
    for i, row in enumerate(codes):
        out[i] = np.bincount(row, minlength=k * k)
    return out.reshape(len(p), k, k)


def dice(pred: Any, target: Any, *, num_classes: int | None = None, include_background: bool = False) -> Any:
    """Dice ``2|P ∩ G| / (|P| + |G|)`` per case and class: ``(B, C')`` float64 (both empty: 1; one empty: 0)."""
    pair = _pair(pred, target, num_classes, include_background)
    if pair.labels:
        conf = _confusion(pair.pred, pair.target, pair.num_classes)
        inter = np.diagonal(conf, axis1=1, axis2=2)[:, pair.first:].astype(np.float64)
        total = conf.sum(2)[:, pair.first:].astype(np.float64) + conf.sum(1)[:, pair.first:]
    else:
        axes = tuple(range(2, pair.pred.ndim))
        inter = np.logical_and(pair.pred, pair.target).sum(axes).astype(np.float64)
        total = pair.pred.sum(axes).astype(np.float64) + pair.target.sum(axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2.0 * inter / total, 1.0)
    return _out(scores, pair.as_torch)


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


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """(B, *spatial) labels -> (B, *spatial) bool: voxels with a face neighbour of another label or the outside.
    For every class c, ``_label_edges(a) & (a == c)`` is ``_edges`` of the mask ``a == c``. One comparison of
    neighbours per spatial axis marks both voxels of every differing pair; the first and last voxel along an
    axis touch the outside."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in range(1, labels.ndim):
        lower, upper = [slice(None)] * labels.ndim, [slice(None)] * labels.ndim
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        differ = labels[tuple(upper)] != labels[tuple(lower)]
        edge[tuple(lower)] |= differ
        edge[tuple(upper)] |= differ
        lower[axis], upper[axis] = 0, -1
        edge[tuple(lower)] = True
        edge[tuple(upper)] = True
    return edge


class _Points(NamedTuple):
    """Edge voxels of one mask, every case and class: ``group`` = case * C' + class, ``voxel`` the flat index into
    (B, *spatial), ``cls`` the class index 0..C'-1, ``flags`` (B, *spatial): bit c set where the voxel is an edge
    of class c (``None`` beyond 64 classes); ``spacing`` (B, ndim) and ``spatial`` give coordinates."""

    group: np.ndarray
    voxel: np.ndarray
    cls: np.ndarray
    flags: np.ndarray | None
    spacing: np.ndarray
    spatial: tuple[int, ...]

    def coords(self, which: np.ndarray) -> np.ndarray:
        """(len(which), ndim) float64 coordinates of the points ``which`` (indices or a mask), in the unit of the
        spacing: voxel index times the case's spacing."""
        case, within = np.divmod(self.voxel[which], int(np.prod(self.spatial)))
        out = np.stack(np.unravel_index(within, self.spatial), axis=1).astype(np.float64)
        out *= self.spacing[0] if (self.spacing == self.spacing[0]).all() else self.spacing[case]
        return out

    def subset(self, keep: np.ndarray) -> _Points:
        """The points where ``keep`` (P,) bool is true."""
        return self._replace(group=self.group[keep], voxel=self.voxel[keep], cls=self.cls[keep])


def _flag_dtype(n_classes: int) -> type | None:
    """An unsigned type with a bit per class, ``None`` beyond 64 classes (no bounds then)."""
    return next((d for d in (np.uint8, np.uint16, np.uint32, np.uint64) if n_classes <= 8 * np.dtype(d).itemsize),
                None)


def _bits(cls: np.ndarray, dtype: type) -> np.ndarray:
    """(P,) class indices -> their bits ``1 << c`` in ``dtype``."""
    return np.left_shift(dtype(1), cls.astype(dtype))


def _points(pair: _Pair, which: int, spacing: np.ndarray) -> _Points:
    """The edge voxels of ``pair.pred`` (``which=0``) or ``pair.target`` (1); ``spacing`` (B, ndim)."""
    m = pair.pred if which == 0 else pair.target
    b = len(m)
    if pair.labels:
        n_classes, spatial = pair.num_classes - pair.first, m.shape[1:]
        size = int(np.prod(spatial))
        edge = _label_edges(m)
        if pair.first:
            edge &= m >= pair.first
        flat = np.flatnonzero(edge)
        cls = m.reshape(-1)[flat].astype(np.int64) - pair.first
        edges = None
    else:
        n_classes, spatial = pair.num_classes, m.shape[2:]
        size = int(np.prod(spatial))
        edges = _edges(m).reshape(b, n_classes, size)
        case, cls, within = np.unravel_index(np.flatnonzero(edges), edges.shape)
        flat = case * size + within
    dtype = _flag_dtype(n_classes)
    flags = None
    if dtype is not None:
        if edges is None:  # label maps: one class per voxel
            flags = np.zeros(b * size, dtype=dtype)
            flags[flat] = _bits(cls, dtype)
        else:
            flags = np.zeros((b, size), dtype=dtype)
            for c in range(n_classes):
                flags |= edges[:, c].astype(dtype) << dtype(c)
        flags = flags.reshape(b, *spatial)
    return _Points(flat // size * n_classes + cls, flat, cls, flags, spacing, tuple(spatial))


class _Levels(NamedTuple):
    """What the rings tell about a distance, per case and level (both (B, len(RINGS)), in the unit of the spacing).

    ``bound``: a point of level l is at most this far (the farthest offset of rings 0..l); ``inf`` where the level
    is not used for counting, i.e. where an edge voxel outside rings 0..l could be as close (an offset of a later
    ring, any offset beyond the rings, at least ``sqrt(RINGS[-1] + 1) * min(s_rows, s_cols)`` away, or, in 3-D,
    a voxel of another slice, at least the slice spacing away). ``exact``: the distance of every point of level l
    where it is known without a query (NaN elsewhere): the offsets of ring l are all equally far (square pixels)
    and nothing outside rings 0..l-1 can be nearer.
    """

    bound: np.ndarray
    exact: np.ndarray


def _level_table(spacing: np.ndarray) -> _Levels:
    """``_Levels`` for ``spacing`` (B, ndim)."""
    offsets = np.concatenate(_RING_OFFSETS)
    ring = np.concatenate([np.full(len(o), i) for i, o in enumerate(_RING_OFFSETS)])
    dist = np.hypot(offsets[:, 0] * spacing[:, -2, None], offsets[:, 1] * spacing[:, -1, None])  # (B, offsets)
    far = np.stack([dist[:, ring == i].max(1) for i in range(len(RINGS))], axis=1)
    near = np.stack([dist[:, ring == i].min(1) for i in range(len(RINGS))], axis=1)
    outside = np.sqrt(RINGS[-1] + 1.0) * spacing[:, -2:].min(1)
    if spacing.shape[1] > 2:  # an edge voxel in another slice
        outside = np.minimum(outside, spacing[:, :-2].min(1))
    later = np.minimum.accumulate(near[:, ::-1], axis=1)[:, ::-1]  # later[:, l]: the nearest offset of rings >= l
    closest = np.minimum(np.concatenate([later[:, 1:], np.full((len(spacing), 1), np.inf)], axis=1), outside[:, None])
    bound = np.maximum.accumulate(far, axis=1)
    return _Levels(bound=np.where(bound < closest, bound, np.inf),
                   exact=np.where((near == far) & (far <= closest), far, np.nan))


def _levels(query: _Points, other_flags: np.ndarray | None, lo: np.ndarray, table: _Levels) -> np.ndarray:
    """(P,) int64 level of each query point: the first ring of in-plane offsets (``RINGS``) at which the other mask
    has an edge voxel of the point's class; ``len(RINGS)`` when none, or when no later level can help.

    Ring by ring, only the points still unplaced are looked up, in the other mask's bit flags padded in-plane by
    ``_REACH`` (so an offset never leaves its slice). A group (``table`` per group) stops searching when its next
    level has no exact distance and either cannot be counted or would not be: the points it has placed without
    an exact distance already outnumber ``lo`` (n_groups,), the rank below the percentile (see ``_directed``)."""
    n_groups = len(lo)
    level = np.full(len(query.group), len(RINGS), dtype=np.int64)
    if other_flags is None or not len(level):
        return level
    h, w = other_flags.shape[-2:]
    padded = np.pad(other_flags, [(0, 0)] * (other_flags.ndim - 2) + [(_REACH, _REACH)] * 2).reshape(-1)
    plane, within = np.divmod(query.voxel, h * w)
    y, x = np.divmod(within, w)
    row = w + 2 * _REACH
    base = (plane * (h + 2 * _REACH) + y) * row + x  # the voxel, shifted back by the largest offset (-_REACH, -_REACH)
    if len(padded) < 2**31:  # narrower indices: less memory to move in the lookups
        base = base.astype(np.int32)
    bit = _bits(query.cls, other_flags.dtype.type)
    exact = np.isfinite(table.exact)
    todo = np.arange(len(level))
    placed = np.zeros(n_groups, dtype=np.int64)  # points placed at a level without an exact distance
    for lvl, offsets in enumerate(_RING_OFFSETS):
        at = base[todo]
        seen = np.zeros(len(todo), dtype=padded.dtype)  # the classes with an edge voxel on this ring
        for dy, dx in offsets:  # a view that starts at the offset: lookups without index arithmetic
            seen |= np.take(padded[(dy + _REACH) * row + dx + _REACH:], at)
        hit = (seen & bit[todo]) != 0
        level[todo[hit]] = lvl
        if not exact[:, lvl].all():
            placed += np.bincount(query.group[todo[hit]], minlength=n_groups) * ~exact[:, lvl]
        todo = todo[~hit]
        if lvl + 1 == len(RINGS) or not len(todo):
            break
        searching = exact[:, lvl + 1] | ((placed <= lo) & np.isfinite(table.bound[:, lvl + 1]))
        todo = todo[searching[query.group[todo]]]
    return level


def _workers() -> int:
    """KD-tree query threads: torch's thread count when torch is loaded (cardiobench's ``--threads`` policy), else
    every CPU."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else -1


class _Tree:
    """Nearest-neighbour distances to the edge voxels of one mask, within each group (case and class).

    Each query builds one KD-tree over the points of the groups it asks about, the groups shifted ``big`` apart
    along the first axis (``big`` exceeds the first axis's extent plus any distance within a group, so a point
    of another group is never the nearest)."""

    def __init__(self, points: _Points, big: float):
        self.points, self.big = points, big

    def _shifted(self, group: np.ndarray, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] += group * self.big
        return coords

    def nearest(self, query: _Points, which: np.ndarray) -> np.ndarray:
        """(len(which),) float64 distance from each query point ``which`` (a mask) to the nearest point of its
        group."""
        group = query.group[which]
        if not len(group):
            return np.zeros(0)
        wanted = np.zeros(int(max(group.max(), self.points.group.max(initial=0))) + 1, dtype=bool)
        wanted[group] = True
        mine = wanted[self.points.group]
        tree = cKDTree(self._shifted(self.points.group[mine], self.points.coords(mine)), leafsize=32,
                       balanced_tree=False, compact_nodes=False)
        dist, _ = tree.query(self._shifted(group, query.coords(which)), k=1, workers=_workers())
        return dist


def _directed(query: _Points, other_flags: np.ndarray | None, tree: _Tree, table: _Levels, q: float) -> np.ndarray:
    """(n_groups,) the ``q`` quantile (linear interpolation) of the distances from the query points to the tree's
    points of their group; NaN for a group without query points.

    ``other_flags``: the bit flags of the tree's mask (``_Points.flags``); ``table``: ``_Levels`` per group. Points
    of a level with an exact distance take it; per group, the others up to the largest countable level whose
    points all rank below the percentile are only counted; the rest are queried (see the module docstring)."""
    group = query.group
    n_groups = len(table.bound)
    n = np.bincount(group, minlength=n_groups)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    level = _levels(query, other_flags, lo, table)
    n_levels = len(RINGS)
    padded_exact = np.concatenate([table.exact, np.full((n_groups, 1), np.nan)], axis=1)
    value = padded_exact[group, level]
    exact = ~np.isnan(value)
    # per group and level: points up to that level without an exact distance, and all points up to it
    per_level = np.bincount(group * (n_levels + 1) + level, minlength=n_groups * (n_levels + 1))
    upto = np.cumsum(per_level.reshape(n_groups, n_levels + 1), axis=1)[:, :n_levels]
    inexact = np.bincount((group * (n_levels + 1) + level)[~exact], minlength=n_groups * (n_levels + 1))
    inexact_upto = np.cumsum(inexact.reshape(n_groups, n_levels + 1), axis=1)[:, :n_levels]
    countable = np.logical_and.accumulate((upto <= lo[:, None]) & np.isfinite(table.bound), axis=1)
    chosen = countable.sum(1) - 1  # the largest level whose points all rank below lo; -1: none
    rows = np.arange(n_groups)
    skipped = np.where(chosen >= 0, inexact_upto[rows, np.maximum(chosen, 0)], 0)
    bound = table.bound[rows, np.maximum(chosen, 0)]
    asked = ~exact & (level > chosen[group])
    dist = np.where(exact, value, 0.0)
    dist[asked] = tree.nearest(query, asked)
    known = exact | asked
    # a known distance within the bound: the percentile may lie among the counted points; query them too
    within = np.bincount(group[known & (dist <= bound[group])], minlength=n_groups)
    redo = (skipped > 0) & (lo < skipped + within)
    if redo.any():
        extra = ~known & redo[group]
        dist[extra] = tree.nearest(query, extra)
        asked |= extra
        skipped[redo] = 0
    # the known distances in order: a queried point is one item, the points of an exact level one item with
    # their count as weight (they share one distance); rank r of a group is its item holding known rank
    # r - skipped (the counted points rank first)
    counts = np.bincount((group * (n_levels + 1) + level)[exact], minlength=n_groups * (n_levels + 1))
    held = np.flatnonzero(counts)
    items_group = np.concatenate([held // (n_levels + 1), group[asked]])
    items_value = np.concatenate([padded_exact.reshape(-1)[held], dist[asked]])
    items_weight = np.concatenate([counts[held], np.ones(int(asked.sum()), dtype=np.int64)])
    order = np.lexsort((items_value, items_group))
    v, cum = items_value[order], np.cumsum(items_weight[order])
    n_known = np.bincount(items_group, weights=items_weight, minlength=n_groups).astype(np.int64)
    first = np.cumsum(n_known) - n_known - skipped  # the cumulative weight before each group's rank 0
    out = np.full(n_groups, np.nan)
    has = n > 0
    at_lo = np.searchsorted(cum, first[has] + lo[has], side="right")
    at_hi = np.searchsorted(cum, first[has] + hi[has], side="right")
    out[has] = v[at_lo] + (pos[has] - lo[has]) * (v[at_hi] - v[at_lo])
    return out


def hd95(pred: Any, target: Any, *, spacing: Any = None, percentile: float = 95.0, num_classes: int | None = None,
         include_background: bool = False) -> Any:
    """Symmetric percentile Hausdorff distance between edges per case and class: ``(B, C')`` float64.

    ``spacing``: voxel size per spatial axis (``(H, W)`` or ``(D, H, W)`` order), one for all cases or
    ``(B, ndim)``; ``None`` measures in voxels. Both empty: 0; exactly one empty: NaN.
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    pair = _pair(pred, target, num_classes, include_background)
    spatial = pair.pred.shape[1:] if pair.labels else pair.pred.shape[2:]
    b = len(pair.pred)
    c = pair.num_classes - pair.first if pair.labels else pair.num_classes
    sp = _spacings(spacing, b, len(spatial))
    q = float(percentile) / 100.0
    pp, pt = _points(pair, 0, sp), _points(pair, 1, sp)
    n_groups = b * c
    has_p = np.bincount(pp.group, minlength=n_groups) > 0
    has_t = np.bincount(pt.group, minlength=n_groups) > 0
    out = np.full(n_groups, np.nan)
    out[~has_p & ~has_t] = 0.0
    both = has_p & has_t
    if both.any():
        big = 4.0 * float(sum(spatial)) * float(sp.max()) + 1.0
        table = _Levels(*(np.repeat(a, c, axis=0) for a in _level_table(sp)))  # per group
        sub_p = pp if both.all() else pp.subset(both[pp.group])
        sub_t = pt if both.all() else pt.subset(both[pt.group])
        forward = _directed(sub_p, pt.flags, _Tree(sub_t, big), table, q)
        backward = _directed(sub_t, pp.flags, _Tree(sub_p, big), table, q)
        out[both] = np.maximum(forward, backward)[both]
    return _out(out.reshape(b, c), pair.as_torch)
