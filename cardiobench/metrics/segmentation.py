"""Dice and HD95 per structure (RV, MYO, LV) over a batch of 2-D label maps, vectorised over the batch.

Conventions (ACDC, Bernard et al., IEEE TMI 2018):

- Dice = 2|P ∩ G| / (|P| + |G|) per structure; both masks empty -> 1, exactly one empty -> 0.
- HD95 is the symmetric 95th-percentile Hausdorff distance between the *edges* of the two masks, in the
  unit of the spacing (pixel offsets times the pixel spacing: mm for a data set that knows its voxel
  spacing, px for one that does not; ``spacing=None`` gives pixels): the 95th percentile of the
  distances from every edge pixel of P to the nearest edge pixel of G, the same from G to P, and the
  larger of the two. Both masks empty -> 0; exactly one empty -> NaN (reported as missing and counted).
- HD95 means (``hd95_rv``, ..., ``hd95_mean``) leave the missing pairs out and say how many there were
  (``hd95_missing``, per structure ``hd95_missing_rv``...): a method that misses a structure is not
  punished by the mean, so the count is shown beside every HD95 figure. ``hd95_penalised_mean`` is the
  variant common in challenge reports: a missing pair scores the image diagonal (the largest distance
  the image holds, ``hypot(H * sy, W * sx)``) and every pair counts. That penalty is a convention, not a
  rule: BraTS 2023's lesion-wise HD95 scores a missed or spurious lesion 374 mm, about the diagonal of
  its 240 x 240 x 155 mm volume (github.com/rachitsaluja/BraTS-2023-Metrics, ``eval.py``); the
  ToothFairy2 organisers adopted "the diagonal of the volume" for an empty prediction or reference
  (AImageLab-zip/ToothFairy issue 5); MetricsReloaded returns NaN and asks for the worst case at
  aggregation (Project-MONAI/MetricsReloaded pull request 55); MONAI returns inf or NaN, and pymia's
  maintainers decline to pick a value because there is no consensus (rundherum/pymia issue 45).

Edge and percentile definitions are MONAI's ``compute_hausdorff_distance(percentile=95)`` (the tests
reproduce its values bit for bit): an edge pixel is a foreground pixel that a binary erosion with the
4-connected cross removes, pixels outside the image counting as background; the percentile is
``torch.quantile``'s linear interpolation on float32 distances. MONAI returns NaN when both masks are
empty and inf when one is; here those are 0 and NaN.

How it is fast (MONAI loops over every (case, structure) pair in Python and crops each with a transform):

- Dice: one ``bincount`` of ``case * 16 + pred * 4 + target`` gives every case's 4x4 confusion matrix.
- Edges of all three structures at once from the label map: a labelled pixel whose 4-neighbour (or the
  image outside) carries another label.
- Distances: one KD-tree per direction over the edge pixels of *all* pairs, each point lifted to
  ``(pair_id * BIG, y * sy, x * sx)`` with BIG larger than any in-image distance, so a nearest neighbour is
  always found in its own pair and the distance formula is exactly MONAI's (which queries a KD-tree per
  pair). Edge pixels shared by both masks have distance 0 and skip the query.
- Percentiles: one ``torch.nanquantile`` over a NaN-padded (pairs, points) table.

Inputs may be numpy arrays or torch tensors (moved to the CPU); the work is numpy/scipy on the CPU, where
it measured 3x faster than the same element-wise torch code on the reference 2-core machine.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from cardiobench.data.base import NUM_CLASSES, STRUCTURES

#: metric-name suffix of each foreground structure, in label order 1..3 (RV, MYO, LV)
STRUCTURE_KEYS: tuple[str, ...] = tuple(s.lower() for s in STRUCTURES)
#: the units a distance may be in: millimetres (the data set knows its voxel spacing) or pixels (it does not)
DISTANCE_UNITS: tuple[str, ...] = ("mm", "px")


def distance_unit(unit: str | None, spacing=None) -> str:
    """The unit of distances measured with ``spacing``: ``unit`` when given (checked: one of ``DISTANCE_UNITS``),
    else ``"mm"`` with a spacing and ``"px"`` without one (``spacing=None`` measures in pixels)."""
    if unit is None:
        return "px" if spacing is None else "mm"
    if unit not in DISTANCE_UNITS:
        raise ValueError(f"distance unit {unit!r} is not one of {', '.join(DISTANCE_UNITS)}")
    return unit


def as_label_maps(x, name: str = "masks") -> np.ndarray:
    """(N, H, W) or (H, W) integer labels 0..3, numpy or torch -> (N, H, W) uint8 numpy."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) label maps, got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() >= NUM_CLASSES):
            raise ValueError(f"{name} holds labels outside 0..{NUM_CLASSES - 1}")
        a = a.astype(np.uint8)
    elif a.size and a.max() >= NUM_CLASSES:
        raise ValueError(f"{name} holds labels outside 0..{NUM_CLASSES - 1}")
    return a


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_label_maps(pred, "pred"), as_label_maps(target, "target")
    if p.shape != g.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {g.shape}")
    return p, g


def spacing_array(spacing, n: int, axes: int = 2) -> np.ndarray:
    """None | number | one spacing per axis | (N, axes) -> (N, axes) float64 (None = 1 per pixel or voxel).

    ``axes`` 2: (rows, cols) of slices; 3: (slice, rows, cols) of volumes."""
    names = "(rows, cols)" if axes == 2 else "(slice, rows, cols)"
    what = "spacing" if axes == 2 else "volume spacing"
    if spacing is None:
        return np.ones((n, axes), dtype=np.float64)
    s = np.asarray(spacing, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(axes, float(s))
    if s.ndim == 1 and s.shape[0] == axes:
        s = np.broadcast_to(s, (n, axes))
    if s.shape != (n, axes):
        raise ValueError(f"{what} must be a number, {names} or ({n}, {axes}), got shape {np.shape(spacing)}")
    if not np.all(s > 0):
        raise ValueError(f"{what} must be positive")
    return np.ascontiguousarray(s)


def dice_scores(pred, target) -> np.ndarray:
    """(N, H, W) label maps -> (N, 3) float64 Dice per structure (RV, MYO, LV); both empty 1, one empty 0.

    Per structure k: ``2 |P_k & G_k| / (|P_k| + |G_k|)``, counted with byte masks and ``count_nonzero`` (no
    widened copies of the label maps: 1.5x faster than a bincount of the joint codes).
    """
    p, g = _pair(pred, target)
    n = len(p)
    p, g = p.reshape(n, -1), g.reshape(n, -1)
    inter = np.empty((n, NUM_CLASSES - 1), dtype=np.float64)
    total = np.empty((n, NUM_CLASSES - 1), dtype=np.float64)
    for k in range(1, NUM_CLASSES):
        pk, gk = p == k, g == k
        total[:, k - 1] = np.count_nonzero(pk, axis=1) + np.count_nonzero(gk, axis=1)
        np.logical_and(pk, gk, out=pk)
        inter[:, k - 1] = np.count_nonzero(pk, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2.0 * inter / total
    return np.where(total == 0, 1.0, dice)


def edge_map(labels: np.ndarray) -> np.ndarray:
    """(N, H, W) labels -> (N, H, W) bool: foreground pixels with a 4-neighbour of another label or the outside.

    For every structure k, ``edge_map(m) & (m == k)`` equals MONAI's edge of the binary mask ``m == k``
    (``binary_erosion(mask) ^ mask``, cross structuring element, border value 0).
    """
    pad = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=255)
    edge = pad[:, :-2, 1:-1] != labels
    edge |= pad[:, 2:, 1:-1] != labels
    edge |= pad[:, 1:-1, :-2] != labels
    edge |= pad[:, 1:-1, 2:] != labels
    edge &= labels > 0
    return edge


def _grouped_quantile(groups: np.ndarray, values: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """``torch.quantile(values[groups == g], q)`` for every g (NaN where empty), as one float32 call."""
    counts = np.bincount(groups, minlength=n_groups)
    table = np.full((n_groups, max(int(counts.max(initial=0)), 1)), np.nan, dtype=np.float32)
    if len(values):
        order = np.argsort(groups, kind="stable")
        g = groups[order]
        pos = np.arange(len(g)) - (np.cumsum(counts) - counts)[g]
        table[g, pos] = values[order]
    return torch.nanquantile(torch.from_numpy(table), q, dim=1).numpy()


def _directed(
    q_group: np.ndarray, q_pts: np.ndarray, q_shared: np.ndarray, t_group: np.ndarray, t_pts: np.ndarray, big: float
) -> np.ndarray:
    """float32 distance from each query point to the nearest target point of the same group (0 if shared)."""
    out = np.zeros(len(q_group), dtype=np.float32)
    ask = ~q_shared
    if ask.any():
        tree = cKDTree(np.column_stack([t_group * big, t_pts]), leafsize=32, balanced_tree=False, compact_nodes=False)
        dist, _ = tree.query(np.column_stack([q_group[ask] * big, q_pts[ask]]), k=1, workers=-1)
        out[ask] = dist.astype(np.float32)
    return out


def hd95_distances(pred, target, spacing=None, percentile: float = 95.0) -> np.ndarray:
    """(N, H, W) label maps -> (N, 3) float32 percentile-Hausdorff distance per structure (RV, MYO, LV).

    In mm with ``spacing`` (None, a number, (rows, cols) or (N, 2)), else in pixels. Both empty -> 0;
    exactly one empty -> NaN.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0..100, got {percentile}")
    p, g = _pair(pred, target)
    n, h, w = p.shape
    sp = spacing_array(spacing, n)
    ep, eg = edge_map(p), edge_map(g)
    shared = ep & eg & (p == g)  # edge pixel of the same structure in both: distance 0 both ways

    def points(labels: np.ndarray, edges: np.ndarray):
        b, y, x = np.nonzero(edges)
        group = b * 3 + labels[b, y, x].astype(np.int64) - 1
        pts = np.column_stack([y * sp[b, 0], x * sp[b, 1]])
        return group, pts, shared[b, y, x]

    gp, pp, sp_p = points(p, ep)
    gg, pg, sp_g = points(g, eg)
    n_groups = n * 3
    has_p = np.bincount(gp, minlength=n_groups) > 0
    has_g = np.bincount(gg, minlength=n_groups) > 0
    result = np.full(n_groups, np.nan, dtype=np.float32)
    result[~has_p & ~has_g] = 0.0
    both = has_p & has_g
    if both.any():
        keep_p, keep_g = both[gp], both[gg]
        gp, pp, sp_p = gp[keep_p], pp[keep_p], sp_p[keep_p]
        gg, pg, sp_g = gg[keep_g], pg[keep_g], sp_g[keep_g]
        big = 4.0 * (h + w) * float(sp.max()) + 1.0  # farther than any two pixels of one image
        q = percentile / 100.0
        forward = _grouped_quantile(gp, _directed(gp, pp, sp_p, gg, pg, big), n_groups, q)
        backward = _grouped_quantile(gg, _directed(gg, pg, sp_g, gp, pp, big), n_groups, q)
        result[both] = np.maximum(forward, backward)[both]
    return result.reshape(n, 3)


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.astype(np.float64).mean()) if len(x) else float("nan")


def image_diagonals(shape: tuple[int, ...], spacing=None) -> np.ndarray:
    """(N,) float64: the diagonal of each (H, W) image in the unit of ``spacing``, ``hypot(H * sy, W * sx)``:
    the distance a missing structure scores in ``hd95_penalised_mean``."""
    n, h, w = shape
    sp = spacing_array(spacing, n)
    return np.hypot(h * sp[:, 0], w * sp[:, 1])


def penalised_hd95(hd: np.ndarray, diagonals: np.ndarray) -> np.ndarray:
    """(N, 3) HD95 with every missing (NaN) pair replaced by its image's diagonal (``image_diagonals``)."""
    hd = np.asarray(hd, dtype=np.float64)
    return np.where(np.isnan(hd), np.asarray(diagonals, dtype=np.float64)[:, None], hd)


def segmentation_scores(pred, target, spacing=None, per_case: bool = False, unit: str | None = None) -> dict:
    """Dice and HD95 per structure and their means over a batch of (N, H, W) label maps.

    Returns a flat dict: ``dice_rv, dice_myo, dice_lv`` (mean over cases), ``dice_mean`` (mean of the
    three), ``hd95_rv, hd95_myo, hd95_lv`` (mean over the cases where it is defined, in the unit of
    ``spacing``), ``hd95_mean`` (mean of the three), ``hd95_missing`` (the number of (case, structure)
    pairs where exactly one mask is empty: left out of those means), ``hd95_missing_rv, hd95_missing_myo,
    hd95_missing_lv`` (the same per structure), ``hd95_penalised_mean`` (the mean over every pair, a missing
    one scoring its image's diagonal: the challenge-report convention, see the module docstring),
    ``n_cases`` and ``hd95_unit``. ``unit`` is the unit ``spacing`` is in (``"mm"`` or ``"px"``, e.g. a data
    set without voxel spacing gives a spacing in pixels); ``None``: mm with a spacing, px without (see
    ``distance_unit``). With ``per_case=True`` also ``dice`` and ``hd95`` as (N, 3) nested lists (NaN for
    missing).
    """
    unit = distance_unit(unit, spacing)
    p = as_label_maps(pred, "pred")
    dice = dice_scores(p, target)
    hd = hd95_distances(p, target, spacing)
    out: dict = {}
    for j, key in enumerate(STRUCTURE_KEYS):
        out[f"dice_{key}"] = float(dice[:, j].mean()) if len(dice) else float("nan")
    out["dice_mean"] = float(np.mean([out[f"dice_{k}"] for k in STRUCTURE_KEYS]))
    for j, key in enumerate(STRUCTURE_KEYS):
        out[f"hd95_{key}"] = _nanmean(hd[:, j])
    per_structure = np.array([out[f"hd95_{k}"] for k in STRUCTURE_KEYS])
    out["hd95_mean"] = _nanmean(per_structure)
    out["hd95_missing"] = int(np.isnan(hd).sum())
    for j, key in enumerate(STRUCTURE_KEYS):
        out[f"hd95_missing_{key}"] = int(np.isnan(hd[:, j]).sum())
    penalised = penalised_hd95(hd, image_diagonals(p.shape, spacing))
    out["hd95_penalised_mean"] = float(penalised.mean()) if penalised.size else float("nan")
    out["n_cases"] = int(len(dice))
    out["hd95_unit"] = unit
    if per_case:
        out["dice"] = dice.tolist()
        out["hd95"] = hd.astype(np.float64).tolist()
    return out
