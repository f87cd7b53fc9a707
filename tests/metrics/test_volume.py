"""The ``volume`` metric: anatomy through the slices, inter-slice consistency, 3-D Dice and HD95, the plugin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from cardiobench.metrics import MetricContext, functional, metric_directions
from cardiobench.metrics.segmentation import dice_scores
from cardiobench.metrics.volume import (
    VOLUME_CHECKS,
    VOLUME_DIRECTIONS,
    interslice_consistency,
    interslice_dice,
    lv_components,
    segmentation_scores_3d,
    volume_anatomy,
    volume_checks,
    volume_diagonals,
    volume_metrics,
    volume_slices_valid,
)
from cardiobench.testing.metrics import contract_masks, contract_volumes

SPACING = (10.0, 1.5, 1.5)


def _heart(size: int = 24) -> np.ndarray:
    """(size, size) one slice: LV disk in a MYO ring with an RV beside it."""
    return contract_masks(1, size, seed=4)[0]


def _stack(depth: int = 6, size: int = 24) -> np.ndarray:
    """(depth, size, size): the same heart slice repeated, RV on every slice."""
    return np.repeat(_heart(size)[None], depth, axis=0)


# -- anatomy through the slices -----------------------------------------------------------------------------------
def test_plausible_volumes_pass_every_check():
    v = contract_volumes(6, 8, 32, seed=0)
    for check, ok in volume_checks(v).items():
        assert ok.all(), check
    assert volume_slices_valid(v, SPACING).all()
    out = volume_anatomy(v, SPACING)
    assert out["volume_valid_frac"] == 1.0 and out["volume_slices_valid_frac"] == 1.0
    assert all(out[f"volume_{c}_fail_frac"] == 0.0 for c in VOLUME_CHECKS)


def test_lv_vanishing_mid_stack_breaks_connection_and_gap():
    v = _stack()
    v[3][v[3] == 3] = 2  # slice 3: MYO where the LV was, no LV
    checks = volume_checks(v[None])
    assert not checks["lv_connected"][0] and not checks["no_gap"][0] and checks["rv_contiguous"][0]


def test_apical_myo_cap_is_not_a_gap():
    v = _stack()
    v[-1][v[-1] == 3] = 2  # the last (apical) slice: MYO only, below the cavity
    v[-1][v[-1] == 1] = 0
    checks = volume_checks(v[None])
    assert checks["no_gap"][0] and checks["lv_connected"][0] and checks["rv_contiguous"][0]


def test_an_empty_slice_mid_stack_is_a_disconnection_not_a_gap():
    v = _stack()
    v[2] = 0
    checks = volume_checks(v[None])
    assert not checks["lv_connected"][0] and checks["no_gap"][0] and not checks["rv_contiguous"][0]


def test_lv_connectivity_is_26_connected():
    v = np.zeros((1, 3, 12, 12), np.uint8)
    v[0, 0, 2:5, 2:5] = 3
    v[0, 1, 5:8, 5:8] = 3  # touches slice 0's LV only diagonally, through the slices
    assert lv_components(v)[0] == 1
    v[0, 1] = 0
    v[0, 1, 6:9, 6:9] = 3  # now one pixel apart: two components
    assert lv_components(v)[0] == 2
    v[0, 2, 1:3, 9:11] = 3  # and a third, in the next slice, away from both
    assert lv_components(v)[0] == 3
    assert lv_components(np.zeros((2, 3, 5, 5), np.uint8)).tolist() == [0, 0]


def test_lv_components_of_a_batch_equal_one_volume_at_a_time():
    rng = np.random.default_rng(0)
    v = np.stack([np.where(ndimage.gaussian_filter(rng.normal(size=(5, 16, 16)), 1.2) > 0.15, 3, 0)
                  for _ in range(7)]).astype(np.uint8)
    one_by_one = [ndimage.label(x == 3, structure=np.ones((3, 3, 3)))[1] for x in v]
    assert lv_components(v).tolist() == one_by_one and max(one_by_one) > 1


def test_rv_must_form_one_run_of_slices():
    v = _stack()
    broken, absent = v.copy(), v.copy()
    broken[2][broken[2] == 1] = 0  # RV vanishes in slice 2 and comes back
    absent[absent == 1] = 0
    assert not volume_checks(broken[None])["rv_contiguous"][0]
    assert not volume_checks(absent[None])["rv_contiguous"][0]
    ends = v.copy()
    ends[-2:][ends[-2:] == 1] = 0  # RV on the basal slices only: one run
    assert volume_checks(ends[None])["rv_contiguous"][0]


def test_a_volume_without_lv_fails():
    v = _stack()
    v[v == 3] = 2
    assert not volume_checks(v[None])["lv_connected"][0]


def test_fractions_count_the_volumes_failing_each_check():
    good = _stack()
    no_lv_gap = good.copy()
    no_lv_gap[3][no_lv_gap[3] == 3] = 2
    rv_broken = good.copy()
    rv_broken[2][rv_broken[2] == 1] = 0
    out = volume_anatomy(np.stack([good, good, no_lv_gap, rv_broken]), SPACING)
    assert out["volume_valid_frac"] == 0.5
    assert out["volume_lv_connected_fail_frac"] == 0.25 and out["volume_no_gap_fail_frac"] == 0.25
    assert out["volume_rv_contiguous_fail_frac"] == 0.25


def test_slices_valid_allows_empty_end_slices_but_not_a_broken_slice():
    v = np.zeros((3, 6, 24, 24), np.uint8)
    v[:, 1:5] = _heart()
    holed = v[1, 2].copy()
    ys, xs = np.nonzero(holed == 3)
    holed[ys[len(ys) // 2], xs[len(xs) // 2]] = 0  # a hole in the LV: the 2-D holes_in_lv criterion
    v[1, 2] = holed
    v[2] = 0  # no foreground at all
    assert volume_slices_valid(v, SPACING).tolist() == [True, False, False]


# -- inter-slice consistency -----------------------------------------------------------------------------------
def test_interslice_dice_leaves_out_pairs_where_both_lack_the_structure():
    v = _stack(5)
    v[3:][v[3:] == 1] = 0  # RV on slices 0-2 only
    v[4] = np.roll(v[4], 2, axis=1)  # the last slice moved: LV and MYO differ from slice 3
    brute = []
    for k in (1, 2, 3):
        scores = [functional.dice(v[z:z + 1], v[z + 1:z + 2], num_classes=4)[0, k - 1] for z in range(4)
                  if (v[z] == k).any() or (v[z + 1] == k).any()]
        brute.append(np.mean(scores))
    got = interslice_dice(v[None])
    np.testing.assert_allclose(got, brute, rtol=1e-12)
    # RV: pairs (0,1), (1,2) identical, (2,3) RV on one side only; (3,4) left out (counted, it would give 0.75)
    assert got[0] == pytest.approx(2 / 3)
    assert 0 < got[2] < 1


def test_interslice_dice_pools_pairs_over_volumes_and_matches_the_2d_dice():
    v = contract_volumes(4, 6, 32, seed=3)
    n, d = v.shape[:2]
    scores = dice_scores(v[:, :-1].reshape(-1, 32, 32), v[:, 1:].reshape(-1, 32, 32)).reshape(n, d - 1, 3)
    present = np.stack([(v == k).any(axis=(2, 3)) for k in (1, 2, 3)], axis=-1)
    counted = present[:, :-1] | present[:, 1:]
    expected = [scores[..., j][counted[..., j]].mean() for j in range(3)]
    np.testing.assert_allclose(interslice_dice(v), expected, rtol=1e-12)


def test_interslice_gap_is_the_mean_absolute_difference_per_structure():
    a, b = contract_volumes(3, 6, 32, seed=1), contract_volumes(3, 6, 32, seed=2)
    b[:, ::2] = np.roll(b[:, ::2], 3, axis=-1)  # every other slice moved: less consistent
    out = interslice_consistency(a, b)
    own, ref = interslice_dice(a), interslice_dice(b)
    assert out["interslice_dice_gap"] == pytest.approx(np.mean(np.abs(own - ref)), rel=1e-12)
    assert out["interslice_dice_mean"] == pytest.approx(own.mean()) and out["interslice_dice_real_mean"] < own.mean()
    no_rv = a.copy()
    no_rv[no_rv == 1] = 0
    single = interslice_consistency(no_rv)
    assert math.isnan(single["interslice_dice_rv"]) and "interslice_dice_gap" not in single
    assert single["interslice_dice_mean"] == pytest.approx(np.nanmean(interslice_dice(no_rv)))
    assert math.isnan(interslice_dice(a[:, :1])[0])  # one slice: no pairs


# -- 3-D Dice and HD95 -------------------------------------------------------------------------------------------
def test_3d_scores_use_the_functional_metrics_and_count_missing_pairs():
    pred, target = contract_volumes(4, 8, 32, seed=0), contract_volumes(4, 8, 32, seed=1)
    pred[1][pred[1] == 1] = 0  # volume 1 predicts no RV: missing
    pred[2][pred[2] == 1] = 0  # volume 2: no RV on either side: HD 0, Dice 1
    target[2][target[2] == 1] = 0
    spacing = np.array([[10.0, 1.5, 1.5], [8.0, 1.4, 1.4], [6.0, 1.7, 1.7], [10.0, 1.5, 1.5]])
    out = segmentation_scores_3d(pred, target, spacing)
    dice = functional.dice(pred, target, num_classes=4)
    hd = functional.hd95(pred, target, spacing=spacing, num_classes=4)
    assert dice[1, 0] == 0.0 and dice[2, 0] == 1.0 and np.isnan(hd[1, 0]) and hd[2, 0] == 0.0
    assert out["dice3d_rv"] == pytest.approx(dice[:, 0].mean()) and out["dice3d_mean"] == pytest.approx(dice.mean())
    assert out["hd95_3d_rv"] == pytest.approx(np.nanmean(hd[:, 0]))
    assert out["hd95_3d_mean"] == pytest.approx(np.mean([np.nanmean(hd[:, j]) for j in range(3)]))
    assert out["hd95_missing_3d"] == 1 and out["hd95_missing_3d_rv"] == 1 and out["hd95_missing_3d_lv"] == 0
    diagonal = math.sqrt((8 * 8.0) ** 2 + 2 * (32 * 1.4) ** 2)
    assert volume_diagonals(pred.shape, spacing)[1] == pytest.approx(diagonal)
    penalised = np.where(np.isnan(hd), volume_diagonals(pred.shape, spacing)[:, None], hd)
    assert out["hd95_3d_penalised_mean"] == pytest.approx(penalised.mean())
    assert out["hd95_3d_penalised_mean"] > out["hd95_3d_mean"]
    perfect = segmentation_scores_3d(target, target, spacing)
    assert perfect["dice3d_mean"] == 1.0 and perfect["hd95_3d_mean"] == 0.0 and perfect["hd95_missing_3d"] == 0


def test_volume_metrics_keys_have_directions():
    v, other = contract_volumes(3, 4, 32, seed=1), contract_volumes(3, 4, 32, seed=2)
    generation = volume_metrics(v, SPACING, real=other)
    segmentation = volume_metrics(v, SPACING, real=other, target=other)
    assert "dice3d_mean" not in generation and set(generation) < set(segmentation) == set(VOLUME_DIRECTIONS)
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_scores_3d(v, other[:, :3], SPACING)
    with pytest.raises(ValueError, match="outside 0..3"):
        volume_metrics(np.full((1, 2, 4, 4), 5), SPACING)


# -- the plugin -----------------------------------------------------------------------------------------------
def _volume_metric():
    from cardiobench.plugins import get_component

    return get_component("metric", "volume").create()


def test_plugin_reports_nothing_on_a_2d_run():
    masks = contract_masks(6, 32, seed=1)
    for task, extra in (("generation", {"real": masks}), ("segmentation", {"target": masks})):
        ctx = MetricContext(task=task, masks=masks, spacing=np.full((6, 2), 1.5), **extra)
        assert _volume_metric().compute(ctx) == {}


@pytest.mark.parametrize("task", ["generation", "segmentation"])
def test_plugin_on_a_3d_run(task):
    v, other = contract_volumes(3, 4, 32, seed=1), contract_volumes(3, 4, 32, seed=2)
    spacing = np.tile(SPACING, (3, 1))
    generation = task == "generation"
    ctx = MetricContext(task=task, masks=v.reshape(-1, 32, 32), spacing=np.full((12, 2), 1.5),
                        volumes=v, volume_spacing=spacing, options={"distance_unit": "mm"},
                        real_volumes=other if generation else None, target_volumes=None if generation else other)
    out = _volume_metric().compute(ctx)
    expected = volume_metrics(v, spacing, real=other, target=None if generation else other)
    assert out == expected and ctx.settings["volume_n"] == 3 and ctx.settings["volume_unit"] == "mm"
    assert ("dice3d_mean" in out) is (not generation) and "interslice_dice_gap" in out


def test_plugin_registration_directions_and_headline():
    from cardiobench.plugins import get_component
    from cardiobench.results.report import is_distance_metric, registry_meta

    comp = get_component("metric", "volume")
    assert comp.metadata["tasks"] == ("generation", "segmentation") and comp.metadata["default"] is True
    directions = metric_directions()
    assert all(directions[k] == v for k, v in VOLUME_DIRECTIONS.items())
    assert directions["volume_valid_frac"] == "higher" and directions["interslice_dice_gap"] == "lower"
    assert directions["interslice_dice_mean"] == "none" and directions["hd95_3d_mean"] == "lower"
    meta = registry_meta()
    assert "volume_valid_frac" in meta.headline["generation"] and "dice3d_mean" in meta.headline["segmentation"]
    assert meta.counts["hd95_3d_mean"] == "hd95_missing_3d" and meta.sort_keys["segmentation"] == "dice_mean"
    # the leaderboard's unit labels: 3-D HD95 figures are distances, their missing counts are not
    assert is_distance_metric("hd95_3d_lv") and not is_distance_metric("hd95_missing_3d_lv")


def test_leaderboard_ranks_2d_and_3d_segmentation_rows_together():
    """A 3-D row carries the 2-D values of its slices and the volume values; a 2-D row only the former. On one
    board both rank by ``dice_mean``; the 3-D figures are headline columns, in the board's unit, with the missing
    count beside the 3-D HD95."""
    from cardiobench.results.report import build_boards
    from cardiobench.results.store import RunRecord

    directions = metric_directions()

    def row(method: str, metrics: dict) -> RunRecord:
        return RunRecord(task="segmentation", dataset="acdc-h5", noise="gaussian", sampler="ddim", backbone="unet",
                         conditioning=method, spec={"sample": {"num_samples": 64}}, metrics=metrics,
                         directions={k: directions[k] for k in metrics}, evaluator_id="seg-acdc-1",
                         context={"n_samples": 64, "distance_unit": "mm"})

    flat = {"dice_mean": 0.84, "hd95_mean": 3.1, "hd95_missing": 0, "anatomy_valid_frac": 0.9}
    volumetric = {**flat, "dice_mean": 0.86, "dice3d_mean": 0.88, "hd95_3d_mean": 7.5, "hd95_missing_3d": 2,
                  "volume_valid_frac": 0.95}
    [board] = build_boards([row("concat", flat), row("controlnet", volumetric)], headline_only=True)
    assert board.sort_metric == "dice_mean" and [r.conditioning for r in board.rows] == ["controlnet", "concat"]
    shown = [m.name for m in board.metrics]
    assert {"dice3d_mean", "volume_valid_frac"} <= set(shown) and "hd95_missing_3d" not in shown
    [full] = build_boards([row("concat", flat), row("controlnet", volumetric)], details=False)
    hd3d = full.metric("hd95_3d_mean")
    assert hd3d.unit == "mm" and hd3d.count == "hd95_missing_3d"
