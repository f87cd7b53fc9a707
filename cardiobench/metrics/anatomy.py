"""Anatomical plausibility of short-axis label maps, after Painchaud et al. (2020).

N. Painchaud, Y. Skandarani, T. Judge, O. Bernard, A. Lalande, P.-M. Jodoin, "Cardiac segmentation with
strong anatomical guarantees", IEEE TMI 39(11), 2020 (arXiv 2006.08825), Table I: sixteen criteria per 2-D
short-axis slice; a slice is anatomically valid when it breaks none. Thresholds are the paper's (and its
public code's): concavity at most 4 mm (LV), 30 mm (RV), 0 mm (MYO, holes filled), circularity at least
0.2 (LV, MYO); every count or gap must be 0. A structure that is absent passes the criteria about it.

Definitions (``8-conn``: the 3x3 neighbourhood; labels 1 RV, 2 MYO, 3 LV):

- ``holes_in_{lv,rv,myo}``: pixels not of the structure that it encloses (8-conn components of its
  complement that do not reach the image border); for MYO the LV cavity it encloses is not a hole.
- ``disconnected_{lv,rv,myo}``: pixels outside the largest 8-conn component of the structure.
- ``holes_between_lv_and_myo`` / ``holes_between_rv_and_myo``: pixels enclosed by the union of the two
  structures (plus each one's own holes that do not contain the other) that belong to neither, 4-conn;
  an error above H*W/2^14 pixels (the paper code's allowance for tiny artefacts).
- ``rv_disconnected_from_myo``: the gap (mm, or px: see Units) between the RV (dilated by one pixel) and the
  MYO; error if > 0.
- ``frontier_lv_rv`` / ``frontier_lv_background``: LV pixels 8-adjacent to RV / to background; error if > 1.
- ``{lv,rv,myo}_concavity``: depth (mm, or px: see Units) of the deepest concavity: the largest distance to
  the outside of the convex hull reached by a pixel of (convex hull minus the hole-filled structure),
  eroded by 3x3.
- ``{lv,myo}_circularity``: 4*pi*area / perimeter^2 of the hole-filled structure (perimeter with
  ``skimage.measure.perimeter``, 4-neighbourhood, in pixels).
- ``empty`` (a cardiobench addition, not in the paper): a map with no foreground at all is invalid, so an
  all-background generator cannot score 100 %.

Units: the distance criteria (``rv_disconnected_from_myo`` and the three concavities) are measured in the
unit of the spacing. In mm (a data set with voxel spacing) they are compared with the paper's thresholds.
In px (a data set without voxel spacing, e.g. ``acdc-h5``) the mm thresholds are converted with a nominal
pixel of ``NOMINAL_PIXEL_MM`` = 1.5 mm, the middle of ACDC's in-plane spacing range (1.37-1.68 mm): LV
concavity at most 4 / 1.5 = 2.67 px, RV 30 / 1.5 = 20 px; the zero thresholds (MYO concavity, RV gap) are
the same in every unit. Every other criterion counts pixels or is a ratio, and needs no unit.

Differences from the paper's code: holes in the MYO exclude the LV pixels it encloses rather than
subtracting the LV area (the same on every map where LV sits inside the MYO ring); "outside" is every
region that reaches the image border, not the region that holds pixel (0, 0).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import perimeter
from skimage.morphology import convex_hull_image

from cardiobench.metrics.segmentation import as_label_maps, spacing_array

RV, MYO, LV = 1, 2, 3
_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)

#: criterion -> (kind, threshold): "count" errs when value > threshold, "min" errs when value < threshold
CRITERIA: dict[str, tuple[str, float]] = {
    "holes_in_lv": ("count", 0),
    "holes_in_rv": ("count", 0),
    "holes_in_myo": ("count", 0),
    "disconnected_lv": ("count", 0),
    "disconnected_rv": ("count", 0),
    "disconnected_myo": ("count", 0),
    "holes_between_lv_and_myo": ("count", 0),  # the per-image allowance is applied when measuring
    "holes_between_rv_and_myo": ("count", 0),
    "rv_disconnected_from_myo": ("count", 0),
    "frontier_lv_rv": ("count", 1),
    "frontier_lv_background": ("count", 1),
    "lv_concavity": ("count", 4.0),
    "rv_concavity": ("count", 30.0),
    "myo_concavity": ("count", 0.0),
    "lv_circularity": ("min", 0.2),
    "myo_circularity": ("min", 0.2),
    "empty": ("count", 0),
}
#: criteria whose values are distances, in the unit of the spacing; their thresholds above are in mm
DISTANCE_CRITERIA: tuple[str, ...] = ("rv_disconnected_from_myo", "lv_concavity", "rv_concavity", "myo_concavity")
#: mm per pixel assumed when distances are in px (the data set has no voxel spacing): the middle of ACDC's
#: in-plane spacing range, 1.37-1.68 mm, so a threshold of T mm becomes T / 1.5 px
NOMINAL_PIXEL_MM = 1.5


def criteria(unit: str = "mm") -> dict[str, tuple[str, float]]:
    """``CRITERIA`` with the distance thresholds in ``unit``: ``"mm"`` as published, ``"px"`` divided by
    ``NOMINAL_PIXEL_MM``."""
    if unit == "mm":
        return dict(CRITERIA)
    if unit != "px":
        raise ValueError(f"distance unit {unit!r} is not one of mm, px")
    return {name: (kind, threshold / NOMINAL_PIXEL_MM if name in DISTANCE_CRITERIA else threshold)
            for name, (kind, threshold) in CRITERIA.items()}


def _enclosed(outside_is: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Pixels of ``outside_is`` (bool) in components (by ``structure``) that do not reach the image border."""
    padded = np.pad(outside_is, 1, constant_values=True)
    lab, _ = ndimage.label(padded, structure=structure)
    return ((lab != lab[0, 0]) & (lab > 0))[1:-1, 1:-1]


def _disconnected(mask: np.ndarray) -> int:
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return 0
    sizes = np.bincount(lab.ravel())[1:]
    return int(sizes.sum() - sizes.max())


def _holes_between(a: np.ndarray, b: np.ndarray, allowance: float) -> int:
    def own_holes(x: np.ndarray, other: np.ndarray) -> np.ndarray:
        lab, _ = ndimage.label(np.pad(~x, 1, constant_values=True), structure=_FOUR)
        lab = lab[1:-1, 1:-1].copy()
        outside = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])).tolist())
        touching_other = set(np.unique(lab[other]).tolist())
        keep = [h for h in np.unique(lab) if h and h not in outside and h not in touching_other]
        return np.isin(lab, keep)

    union = a | b | own_holes(a, b) | own_holes(b, a)
    count = int(_enclosed(~union, _FOUR).sum())
    return count if count > allowance else 0


def _frontier(a: np.ndarray, b: np.ndarray) -> int:
    count = int((a & ndimage.binary_dilation(b, structure=_EIGHT)).sum())
    return count if count > 1 else 0


def _concavity(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    filled = ndimage.binary_fill_holes(mask)
    if not filled.any():
        return float("nan")
    hull = convex_hull_image(filled)
    diff = ndimage.binary_erosion(hull & ~filled, structure=_EIGHT, border_value=1)
    if not diff.any():
        return 0.0
    depth = ndimage.distance_transform_edt(hull, sampling=spacing)
    return float(depth[diff].max())


def _circularity(mask: np.ndarray) -> float:
    filled = ndimage.binary_fill_holes(mask)
    area = float(filled.sum())
    if area == 0:
        return float("nan")
    per = float(perimeter(filled, neighborhood=4))
    return 4.0 * np.pi * area / per**2 if per > 1e-6 else float("nan")


def _rv_gap(rv: np.ndarray, myo: np.ndarray, spacing: tuple[float, float]) -> float:
    if not rv.any() or not myo.any():
        return 0.0
    rv_grown = ndimage.binary_dilation(rv, structure=_EIGHT)
    distance = ndimage.distance_transform_edt(~myo, sampling=spacing)
    return float(distance[rv_grown].min())


def slice_criteria(labels: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> dict[str, float]:
    """Every criterion's value for one (H, W) label map (NaN where the structure is absent)."""
    h, w = labels.shape
    fg = labels > 0
    if not fg.any():
        values = {name: 0.0 for name in CRITERIA}
        for name in ("lv_concavity", "rv_concavity", "myo_concavity", "lv_circularity", "myo_circularity"):
            values[name] = float("nan")
        values["empty"] = 1.0
        return values
    # work on the foreground's bounding box plus a 2-pixel margin (all criteria are local to it)
    rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
    m = labels[max(rows[0] - 2, 0) : rows[-1] + 3, max(cols[0] - 2, 0) : cols[-1] + 3]
    rv, myo, lv, bg = m == RV, m == MYO, m == LV, m == 0
    sp = (float(spacing[0]), float(spacing[1]))
    allowance = h * w / 2**14
    return {
        "holes_in_lv": float(_enclosed(~lv, _EIGHT).sum()) if lv.any() else 0.0,
        "holes_in_rv": float(_enclosed(~rv, _EIGHT).sum()) if rv.any() else 0.0,
        "holes_in_myo": float((_enclosed(~myo, _EIGHT) & ~lv).sum()) if myo.any() else 0.0,
        "disconnected_lv": float(_disconnected(lv)),
        "disconnected_rv": float(_disconnected(rv)),
        "disconnected_myo": float(_disconnected(myo)),
        "holes_between_lv_and_myo": float(_holes_between(lv, myo, allowance)),
        "holes_between_rv_and_myo": float(_holes_between(rv, myo, allowance)),
        "rv_disconnected_from_myo": _rv_gap(rv, myo, sp),
        "frontier_lv_rv": float(_frontier(lv, rv)),
        "frontier_lv_background": float(_frontier(lv, bg)),
        "lv_concavity": _concavity(lv, sp),
        "rv_concavity": _concavity(rv, sp),
        "myo_concavity": _concavity(myo, sp),
        "lv_circularity": _circularity(lv),
        "myo_circularity": _circularity(myo),
        "empty": 0.0,
    }


def _breaks(name: str, value: float, table: dict[str, tuple[str, float]] = CRITERIA) -> bool:
    if np.isnan(value):  # structure absent: optional
        return False
    kind, threshold = table[name]
    return value < threshold if kind == "min" else value > threshold


def anatomy_table(masks, spacing=None, unit: str = "mm") -> dict[str, np.ndarray]:
    """Per-slice values and errors: ``{criterion: (N,) float values}``, ``errors: {criterion: (N,) bool}``,
    ``valid: (N,) bool``. ``spacing``: None (pixels of 1 ``unit``), a number, (rows, cols) or (N, 2) in
    ``unit``: ``"mm"``, or ``"px"`` (distance thresholds converted with ``NOMINAL_PIXEL_MM``, see ``criteria``)."""
    table = criteria(unit)
    labels = as_label_maps(masks)
    sp = spacing_array(spacing, len(labels))
    values = {name: np.empty(len(labels)) for name in CRITERIA}
    for i, m in enumerate(labels):
        for name, v in slice_criteria(m, sp[i]).items():
            values[name][i] = v
    errors = {name: np.array([_breaks(name, v, table) for v in values[name]], dtype=bool) for name in CRITERIA}
    valid = ~np.any(np.stack(list(errors.values())), axis=0) if len(labels) else np.zeros(0, dtype=bool)
    return {"values": values, "errors": errors, "valid": valid}


def evaluate_anatomy(masks, spacing=None, unit: str = "mm") -> dict:
    """``anatomy_valid_frac`` (fraction of maps breaking no criterion) and ``anatomy_<criterion>``: how many
    maps break each criterion; plus ``anatomy_n``. ``spacing`` and ``unit``: see ``anatomy_table``."""
    table = anatomy_table(masks, spacing, unit)
    n = len(table["valid"])
    out: dict = {"anatomy_valid_frac": float(table["valid"].mean()) if n else float("nan")}
    for name, err in table["errors"].items():
        out[f"anatomy_{name}"] = int(err.sum())
    out["anatomy_n"] = n
    return out
