"""Painchaud et al. (2020) criteria: clean masks pass, planted defects are flagged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cardiobench.metrics.anatomy import CRITERIA, anatomy_table, evaluate_anatomy, slice_criteria
from cardiobench.testing.metrics import contract_masks

RV, MYO, LV = 1, 2, 3


def test_hand_made_hearts_are_valid():
    out = evaluate_anatomy(contract_masks(8, 64), spacing=1.5)
    assert out["anatomy_valid_frac"] == 1.0
    assert all(out[f"anatomy_{c}"] == 0 for c in CRITERIA)


def test_clean_phantom_passes(phantom64, phantom32):
    for sets in (phantom64, phantom32):
        test = sets["test"].subset(slice(0, None, 3))  # every third slice: all groups, phases and levels
        out = evaluate_anatomy(test.masks, test.spacing)
        # the paper's RV concavity limit (30 mm) is exceeded by a few wide crescents of the RV group
        assert out["anatomy_valid_frac"] >= 0.9, out
        for c in CRITERIA:
            if c != "rv_concavity":
                assert out[f"anatomy_{c}"] <= 0.02 * len(test), (c, out)


@pytest.fixture
def heart(phantom64):
    """A valid 64-px phantom slice with all three structures and a thick enough wall."""
    test = phantom64["test"]
    for i in range(len(test)):
        m = test.masks[i]
        core = ndimage.binary_erosion(m == MYO, structure=np.ones((3, 3)))
        if (m == RV).sum() > 40 and core.any() and (m == LV).sum() > 30 and not errors(m, test.spacing[i]):
            return m.copy(), tuple(test.spacing[i])
    pytest.fail("no suitable phantom slice")


def errors(m, spacing):
    table = anatomy_table(m[None], spacing)
    return {c for c, e in table["errors"].items() if e[0]}


def test_hole_in_myocardium(heart):
    m, sp = heart
    core = np.argwhere(ndimage.binary_erosion(m == MYO, structure=np.ones((3, 3))))
    y, x = core[len(core) // 2]
    m[y, x] = 0
    assert "holes_in_myo" in errors(m, sp)


def test_detached_rv(heart):
    m, sp = heart
    near_myo = ndimage.binary_dilation(m == MYO, iterations=3)
    m[(m == RV) & near_myo] = 0
    assert "rv_disconnected_from_myo" in errors(m, sp)


def test_lv_touching_background(heart):
    m, sp = heart
    cy, cx = (int(v) for v in np.argwhere(m == LV).mean(0).round())
    band = np.zeros_like(m, dtype=bool)
    band[cy - 1 : cy + 2, cx:] = True
    m[band & (m == MYO)] = 0  # cut the ring: the LV cavity now opens onto background
    m[band & (m == RV)] = 0
    assert "frontier_lv_background" in errors(m, sp)


def test_lv_touching_rv(heart):
    m, sp = heart
    cy, cx = (int(v) for v in np.argwhere(m == LV).mean(0).round())
    m[cy - 1 : cy + 2, cx - 1 : cx + 2] = RV  # an RV island inside the LV cavity
    assert "frontier_lv_rv" in errors(m, sp)


def test_disconnected_lv_and_concavity():
    m = contract_masks(1, 64)[0]
    m[2:5, 2:5] = LV  # a stray LV fragment
    assert slice_criteria(m, (1.5, 1.5))["disconnected_lv"] == 9
    c = contract_masks(1, 64)[0]
    cy, cx = (int(v) for v in np.argwhere(c == LV).mean(0).round())
    c[cy - 2 : cy + 3, cx:] = np.where(c[cy - 2 : cy + 3, cx:] == LV, MYO, c[cy - 2 : cy + 3, cx:])  # notch
    assert slice_criteria(c, (1.5, 1.5))["lv_concavity"] > 4.0


def test_empty_map_is_invalid():
    out = evaluate_anatomy(np.zeros((2, 16, 16), np.uint8))
    assert out["anatomy_valid_frac"] == 0.0 and out["anatomy_empty"] == 2


# -- distances in px (a data set without voxel spacing) ------------------------------------------------------
def notched_heart(depth: int) -> np.ndarray:
    """A hand-made heart whose LV cavity has a notch ``depth`` pixels deep (3 rows high) from its right edge."""
    m = contract_masks(1, 64)[0]
    cy = int(np.argwhere(m == LV).mean(0).round()[0])
    xmax = int(np.argwhere(m[cy] == LV)[:, 0].max())
    band = m[cy - 1 : cy + 2, xmax - depth + 1 : xmax + 1]
    band[band == LV] = MYO
    return m


def test_px_thresholds_are_the_mm_ones_at_a_nominal_pixel():
    from cardiobench.metrics.anatomy import DISTANCE_CRITERIA, NOMINAL_PIXEL_MM, criteria

    assert NOMINAL_PIXEL_MM == 1.5 and criteria("mm") == CRITERIA
    px = criteria("px")
    assert px["lv_concavity"] == ("count", pytest.approx(4.0 / 1.5))
    assert px["rv_concavity"] == ("count", pytest.approx(20.0)) and px["myo_concavity"] == ("count", 0.0)
    assert px["rv_disconnected_from_myo"] == ("count", 0.0)
    assert {c for c in CRITERIA if px[c] != CRITERIA[c]} == {"lv_concavity", "rv_concavity"} <= set(DISTANCE_CRITERIA)
    with pytest.raises(ValueError, match="distance unit 'cm'"):
        criteria("cm")


def test_a_concavity_in_px_is_judged_as_if_a_pixel_were_1_5_mm():
    from cardiobench.metrics.anatomy import NOMINAL_PIXEL_MM

    m = notched_heart(5)
    assert slice_criteria(m, (1.0, 1.0))["lv_concavity"] == pytest.approx(3.0)
    as_mm = evaluate_anatomy(m[None], 1.0, "mm")  # 3 mm deep: within the paper's 4 mm
    as_px = evaluate_anatomy(m[None], 1.0, "px")  # 3 px deep = 4.5 mm at the nominal pixel: too deep
    assert as_mm["anatomy_valid_frac"] == 1.0 and as_mm["anatomy_lv_concavity"] == 0
    assert as_px["anatomy_valid_frac"] == 0.0 and as_px["anatomy_lv_concavity"] == 1
    for depth in (3, 4, 5, 6, 7):  # px at spacing 1 == mm at spacing 1.5, criterion by criterion
        m = notched_heart(depth)
        assert evaluate_anatomy(m[None], 1.0, "px") == evaluate_anatomy(m[None], NOMINAL_PIXEL_MM, "mm"), depth


def test_the_anatomy_metric_takes_its_unit_from_the_context():
    from cardiobench.metrics.base import MetricContext
    from cardiobench.metrics.plugin import AnatomyMetric
    from cardiobench.metrics.segmentation import spacing_array

    masks = notched_heart(5)[None]
    results = {}
    for unit in ("mm", "px", None):
        ctx = MetricContext(task="generation", masks=masks, spacing=spacing_array(1.0, 1),
                            options={} if unit is None else {"distance_unit": unit})
        results[unit] = AnatomyMetric().compute(ctx)["anatomy_valid_frac"]
        assert ctx.settings["anatomy_unit"] == (unit or "mm")
    assert results == {"mm": 1.0, "px": 0.0, None: 1.0}  # no unit given: mm, as before units were recorded
