"""What only volumes can measure: anatomy through the slices, consistency between neighbouring slices, and
Dice and HD95 in 3-D.

Volumes are label maps ``(N, D, H, W)`` (labels 0 background, 1 RV, 2 MYO, 3 LV; D short-axis slices, base
first) with a voxel spacing ``(N, 3)`` = (slice, rows, cols) in the run's distance unit (mm, or px for a data
set without spacing). A volumetric run also scores the N*D slices with the 2-D metrics; this module adds:

**Volume anatomy** (``volume_checks``, one boolean per volume and check; a volume is valid when it passes all):

- ``lv_connected``: the LV (label 3) is exactly one 3-D connected component, 26-connected (the 3x3x3
  neighbourhood: 8-connected within a slice, as the 2-D ``disconnected_lv`` criterion, and across slices any
  voxel of the 3x3 patch at the same place in the neighbouring slice). Slices are 5-10 mm apart against
  1.4-1.7 mm pixels, so what joins the LV of two neighbouring slices is that their cross-sections overlap
  in-plane or touch within one pixel; 26 rather than 6 because real stacks are not perfectly registered (the
  slices come from separate breath-holds): at native resolution one real ACDC volume of 200 fails with
  26-connectivity, two with 6-connectivity, whose apical LV pieces lie side by side (at 32 or 64 px the two
  agree). A volume without LV fails (every ACDC stack holds one).
- ``no_gap``: no slice that holds MYO but no LV lies between two slices that hold both (the LV cavity does not
  vanish mid-stack while the myocardium goes on; the apical slices below the cavity, MYO only, lie outside
  that range and pass).
- ``rv_contiguous``: the slices that hold RV form one unbroken run (the RV extends from the base towards the
  apex and ends once; it does not vanish and reappear). A volume without RV fails.

The checks hold on real hearts: of the 200 ACDC training volumes (100 patients x ED/ES, ``acdc-ssl4mis``), as
8 x 32 x 32 stacks (``cardiobench.data.stacks``, resampled) one fails ``lv_connected`` and none fails the others;
at native resolution also one (see ``docs/metrics.md``).

``volume_slices_valid``: every slice of the volume passes the 2-D anatomy criteria
(``cardiobench.metrics.anatomy``, Painchaud et al. 2020) except ``empty``, and at least one slice holds
foreground: slices above the base and below the apex are legitimately empty in a stack.

**Inter-slice consistency** (``interslice_dice``): the Dice of each structure between neighbouring slices
``z`` and ``z + 1`` of a volume, averaged over every volume and pair where at least one of the two slices holds
the structure (pairs where both lack it are left out: the structure has ended, which says nothing about
consistency; an all-empty pair would otherwise score 1). A structure without any such pair is NaN.

**3-D Dice and HD95** (segmentation): ``cardiobench.metrics.functional.dice`` / ``hd95`` on the whole volumes
with the anisotropic voxel spacing (MONAI's ``compute_dice`` / ``compute_hausdorff_distance(percentile=95,
spacing=...)``, edges by the face-connected 3-D erosion), with the ACDC empty conventions of the 2-D metrics:
both empty Dice 1 and HD95 0; one empty Dice 0 and HD95 missing, left out of the means and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from cardiobench.data.base import NUM_CLASSES
from cardiobench.metrics import functional
from cardiobench.metrics.anatomy import anatomy_table
from cardiobench.metrics.segmentation import STRUCTURE_KEYS, dice_scores, spacing_array

RV, MYO, LV = 1, 2, 3
#: the volume anatomy checks, in order (see the module docstring)
VOLUME_CHECKS: tuple[str, ...] = ("lv_connected", "no_gap", "rv_contiguous")

#: the LV's 3-D connectivity (slice, rows, cols): 26-connected, the 3 x 3 x 3 neighbourhood
LV_STRUCTURE = np.ones((3, 3, 3), dtype=bool)

#: every value the ``volume`` metric reports -> its direction
VOLUME_DIRECTIONS: dict[str, str] = {
    "volume_valid_frac": "higher",
    **{f"volume_{check}_fail_frac": "lower" for check in VOLUME_CHECKS},
    "volume_slices_valid_frac": "higher",
    # how alike neighbouring slices are: shown, not ranked (a stack of copies of one slice scores 1)
    **{f"interslice_dice_{k}": "none" for k in (*STRUCTURE_KEYS, "mean")},
    **{f"interslice_dice_real_{k}": "none" for k in (*STRUCTURE_KEYS, "mean")},
    "interslice_dice_gap": "lower",
    **{f"dice3d_{k}": "higher" for k in (*STRUCTURE_KEYS, "mean")},
    **{f"hd95_3d_{k}": "lower" for k in (*STRUCTURE_KEYS, "mean")},
    "hd95_3d_penalised_mean": "lower",
    "hd95_missing_3d": "lower",
    **{f"hd95_missing_3d_{k}": "lower" for k in STRUCTURE_KEYS},
}


def as_volumes(x: Any, name: str = "volumes") -> np.ndarray:
    """(N, D, H, W) or (D, H, W) integer labels 0..3, numpy or torch -> (N, D, H, W) uint8."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"{name} must be (N, D, H, W) label maps, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer labels, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= NUM_CLASSES):
        raise ValueError(f"{name} holds labels outside 0..{NUM_CLASSES - 1}")
    return a.astype(np.uint8, copy=False)


def volume_spacing(spacing: Any, n: int) -> np.ndarray:
    """None | number | (slice, rows, cols) | (N, 3) -> (N, 3) float64 (None: 1 per voxel)."""
    return spacing_array(spacing, n, axes=3)


# -- anatomy through the slices -----------------------------------------------------------------------------------
def _present(volumes: np.ndarray, label: int) -> np.ndarray:
    """(N, D, H, W) -> (N, D) bool: the slices that hold ``label``."""
    return (volumes == label).any(axis=(2, 3))


def lv_components(volumes: np.ndarray) -> np.ndarray:
    """(N, D, H, W) -> (N,) int64: the number of 3-D connected components of the LV (``LV_STRUCTURE``), all
    volumes in one ``ndimage.label`` call (the volumes stacked along an axis the structure does not connect)."""
    v = as_volumes(volumes)
    structure = np.zeros((3, 3, 3, 3), dtype=bool)
    structure[1] = LV_STRUCTURE
    labels, count = ndimage.label(v == LV, structure=structure)
    owner = [box[0].start for box in ndimage.find_objects(labels, max_label=count)]  # each component's volume
    return np.bincount(np.asarray(owner, dtype=np.int64), minlength=len(v)).astype(np.int64)


def _runs(present: np.ndarray) -> np.ndarray:
    """(N, D) bool -> (N,) int64: the number of unbroken runs of True along the slices."""
    starts = present.copy()
    starts[:, 1:] &= ~present[:, :-1]
    return starts.sum(axis=1)


def volume_checks(volumes: Any) -> dict[str, np.ndarray]:
    """``{check: (N,) bool}`` for every check of ``VOLUME_CHECKS``: True where the volume passes it."""
    v = as_volumes(volumes)
    has_lv, has_myo = _present(v, LV), _present(v, MYO)
    both = has_lv & has_myo
    after_first = np.cumsum(both, axis=1) > 0
    before_last = np.cumsum(both[:, ::-1], axis=1)[:, ::-1] > 0
    gap = after_first & before_last & has_myo & ~has_lv
    return {
        "lv_connected": lv_components(v) == 1,
        "no_gap": ~gap.any(axis=1),
        "rv_contiguous": _runs(_present(v, RV)) == 1,
    }


def volume_slices_valid(volumes: Any, spacing: Any = None, unit: str = "mm") -> np.ndarray:
    """(N,) bool: every slice passes the 2-D anatomy criteria except ``empty``, and some slice holds foreground.

    ``spacing``: the volumes' (N, 3) spacing (its in-plane part is the slices' spacing), as ``volume_spacing``
    takes it; ``unit``: mm or px (the 2-D thresholds, ``cardiobench.metrics.anatomy.criteria``)."""
    v = as_volumes(volumes)
    n, d, h, w = v.shape
    sp = volume_spacing(spacing, n)
    table = anatomy_table(v.reshape(n * d, h, w), np.repeat(sp[:, 1:], d, axis=0), unit)
    broken = np.zeros(n * d, dtype=bool)
    for name, errors in table["errors"].items():
        if name != "empty":
            broken |= errors
    return ~broken.reshape(n, d).any(axis=1) & (v > 0).any(axis=(1, 2, 3))


def volume_anatomy(volumes: Any, spacing: Any = None, unit: str = "mm") -> dict[str, float]:
    """``volume_valid_frac`` (all checks pass), ``volume_<check>_fail_frac`` per check and
    ``volume_slices_valid_frac`` (``volume_slices_valid``); NaN for no volumes."""
    v = as_volumes(volumes)
    checks = volume_checks(v)
    nan = float("nan")
    if not len(v):
        return {"volume_valid_frac": nan, **{f"volume_{c}_fail_frac": nan for c in VOLUME_CHECKS},
                "volume_slices_valid_frac": nan}
    valid = np.logical_and.reduce([checks[c] for c in VOLUME_CHECKS])
    return {
        "volume_valid_frac": float(valid.mean()),
        **{f"volume_{c}_fail_frac": float((~checks[c]).mean()) for c in VOLUME_CHECKS},
        "volume_slices_valid_frac": float(volume_slices_valid(v, spacing, unit).mean()),
    }


# -- consistency between neighbouring slices ------------------------------------------------------------------------
def interslice_dice(volumes: Any) -> np.ndarray:
    """(3,) float64: per structure (RV, MYO, LV), the mean Dice between slices z and z + 1 over every volume and
    neighbouring pair where at least one of the two holds the structure; NaN where there is no such pair.

    One ``dice_scores`` call (``cardiobench.metrics.segmentation``) on the N*(D-1) pairs."""
    v = as_volumes(volumes)
    n, d, h, w = v.shape
    if d < 2 or n == 0:
        return np.full(len(STRUCTURE_KEYS), np.nan)
    scores = dice_scores(v[:, :-1].reshape(-1, h, w), v[:, 1:].reshape(-1, h, w))  # (N*(D-1), 3)
    present = np.stack([_present(v, k) for k in range(1, NUM_CLASSES)], axis=-1)  # (N, D, 3)
    counted = (present[:, :-1] | present[:, 1:]).reshape(-1, len(STRUCTURE_KEYS))
    total = np.where(counted, scores, 0.0).sum(axis=0)
    pairs = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, total / pairs, np.nan)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


def interslice_consistency(volumes: Any, real: Any = None) -> dict[str, float]:
    """``interslice_dice_{rv,myo,lv}`` and ``interslice_dice_mean`` (the mean of the structures that have a value)
    of ``volumes``; with ``real`` volumes also ``interslice_dice_real_*`` and ``interslice_dice_gap``: the mean over
    structures of ``|interslice_dice_k - interslice_dice_real_k|`` (structures where either is NaN left out)."""
    own = interslice_dice(volumes)
    out = {f"interslice_dice_{k}": float(own[j]) for j, k in enumerate(STRUCTURE_KEYS)}
    out["interslice_dice_mean"] = _nanmean(own)
    if real is not None:
        ref = interslice_dice(real)
        out.update({f"interslice_dice_real_{k}": float(ref[j]) for j, k in enumerate(STRUCTURE_KEYS)})
        out["interslice_dice_real_mean"] = _nanmean(ref)
        out["interslice_dice_gap"] = _nanmean(np.abs(own - ref))
    return out


# -- 3-D Dice and HD95 --------------------------------------------------------------------------------------------
def volume_diagonals(shape: tuple[int, ...], spacing: Any = None) -> np.ndarray:
    """(N,) float64: the diagonal of each (D, H, W) volume in the unit of ``spacing``,
    ``sqrt((D sz)^2 + (H sy)^2 + (W sx)^2)``: what a missing structure scores in ``hd95_3d_penalised_mean``."""
    n, d, h, w = shape
    sp = volume_spacing(spacing, n)
    return np.sqrt((d * sp[:, 0]) ** 2 + (h * sp[:, 1]) ** 2 + (w * sp[:, 2]) ** 2)


def segmentation_scores_3d(pred: Any, target: Any, spacing: Any = None) -> dict[str, float | int]:
    """3-D Dice and HD95 per structure of (N, D, H, W) predicted and true volumes, ``spacing`` (N, 3) or (3,).

    ``dice3d_{rv,myo,lv}`` (mean over volumes) and ``dice3d_mean`` (of the three); ``hd95_3d_{rv,myo,lv}`` (mean
    over the volumes where it is defined) and ``hd95_3d_mean`` (of the three); ``hd95_missing_3d`` and
    ``hd95_missing_3d_{rv,myo,lv}``: (volume, structure) pairs with exactly one side empty, left out of those
    means; ``hd95_3d_penalised_mean``: the mean over every pair, a missing one scoring the volume's diagonal
    (``volume_diagonals``). The semantics of ``cardiobench.metrics.segmentation.segmentation_scores`` in 3-D."""
    p, t = as_volumes(pred, "pred"), as_volumes(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target volumes differ in shape: {p.shape} vs {t.shape}")
    sp = volume_spacing(spacing, len(p))
    nan = float("nan")
    dice = functional.dice(p, t, num_classes=NUM_CLASSES)
    hd = functional.hd95(p, t, spacing=sp, num_classes=NUM_CLASSES)
    out: dict[str, float | int] = {}
    for j, k in enumerate(STRUCTURE_KEYS):
        out[f"dice3d_{k}"] = float(dice[:, j].mean()) if len(p) else nan
    out["dice3d_mean"] = _nanmean([out[f"dice3d_{k}"] for k in STRUCTURE_KEYS])
    for j, k in enumerate(STRUCTURE_KEYS):
        out[f"hd95_3d_{k}"] = _nanmean(hd[:, j])
    out["hd95_3d_mean"] = _nanmean([out[f"hd95_3d_{k}"] for k in STRUCTURE_KEYS])
    penalised = np.where(np.isnan(hd), volume_diagonals(p.shape, sp)[:, None], hd)
    out["hd95_3d_penalised_mean"] = float(penalised.mean()) if penalised.size else nan
    out["hd95_missing_3d"] = int(np.isnan(hd).sum())
    for j, k in enumerate(STRUCTURE_KEYS):
        out[f"hd95_missing_3d_{k}"] = int(np.isnan(hd[:, j]).sum())
    return out


def volume_metrics(volumes: Any, spacing: Any = None, *, unit: str = "mm", real: Any = None,
                   target: Any = None) -> dict[str, float | int]:
    """Every value of the ``volume`` metric for (N, D, H, W) ``volumes`` with spacing (N, 3): anatomy, inter-slice
    consistency (against ``real`` volumes when given) and, with ``target`` volumes (segmentation), 3-D Dice and
    HD95. Keys and directions: ``VOLUME_DIRECTIONS``."""
    v = as_volumes(volumes)
    out: dict[str, float | int] = {**volume_anatomy(v, spacing, unit), **interslice_consistency(v, real)}
    if target is not None:
        out.update(segmentation_scores_3d(v, target, spacing))
    return out


__all__ = [
    "LV_STRUCTURE",
    "VOLUME_CHECKS",
    "VOLUME_DIRECTIONS",
    "as_volumes",
    "interslice_consistency",
    "interslice_dice",
    "lv_components",
    "segmentation_scores_3d",
    "volume_anatomy",
    "volume_checks",
    "volume_diagonals",
    "volume_metrics",
    "volume_slices_valid",
    "volume_spacing",
]
