"""Dice and HD95 against MONAI (test-only dependency) and the ACDC empty-mask conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cardiobench.metrics.segmentation import (
    dice_scores,
    edge_map,
    hd95_distances,
    segmentation_scores,
    spacing_array,
)
from cardiobench.testing.metrics import contract_masks

monai_metrics = pytest.importorskip("monai.metrics")


def onehot(m: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(m).long(), 4).permute(0, 3, 1, 2).float()


def perturbed(masks: np.ndarray, seed: int) -> np.ndarray:
    """Shifted copies with a few random squares of random labels painted in (scattered errors)."""
    rng = np.random.default_rng(seed)
    out = masks.copy()
    size = masks.shape[-1]
    for i in range(len(out)):
        out[i] = np.roll(out[i], tuple(rng.integers(-2, 3, 2)), (0, 1))
        for _ in range(rng.integers(0, 4)):
            y, x = rng.integers(2, size - 5, 2)
            out[i, y : y + 3, x : x + 3] = rng.integers(0, 4)
    return out


def monai_reference(pred, target, spacing):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = monai_metrics.compute_dice(onehot(pred), onehot(target), include_background=False, ignore_empty=False)
        h = monai_metrics.compute_hausdorff_distance(
            onehot(pred), onehot(target), include_background=False, percentile=95, spacing=spacing
        )
    return d.numpy(), h.numpy()


@pytest.mark.parametrize("spacing", [None, [1.5625, 1.5625], [1.37, 1.61]])
def test_matches_monai_on_perturbed_hearts(spacing):
    target = contract_masks(60, 64, seed=0)
    pred = perturbed(target, seed=1)
    d_ref, h_ref = monai_reference(pred, target, spacing)
    assert np.abs(dice_scores(pred, target) - d_ref).max() < 1e-5
    h = hd95_distances(pred, target, spacing)
    assert np.isfinite(h_ref).all()
    np.testing.assert_array_equal(h, h_ref)  # bit for bit (float32)


def test_matches_monai_on_random_label_fields():
    rng = np.random.default_rng(3)
    from scipy.ndimage import gaussian_filter

    def field(seed):
        f = gaussian_filter(np.random.default_rng(seed).standard_normal((30, 4, 48, 48)), (0, 0, 2.5, 2.5))
        return f.argmax(1).astype(np.uint8)

    pred, target = field(4), field(5)
    spacing = rng.uniform(1.2, 1.8, size=2).tolist()
    d_ref, h_ref = monai_reference(pred, target, spacing)
    assert np.abs(dice_scores(pred, target) - d_ref).max() < 1e-5
    np.testing.assert_array_equal(hd95_distances(pred, target, spacing), h_ref)


def test_per_case_spacing_matches_monai_per_case():
    target = contract_masks(6, 48, seed=7)
    pred = perturbed(target, seed=8)
    spacing = np.array([[1.1, 1.3], [1.5, 1.5], [2.0, 1.0], [1.37, 1.37], [0.9, 1.7], [1.25, 1.25]])
    h = hd95_distances(pred, target, spacing)
    for i in range(len(target)):
        _, h_ref = monai_reference(pred[i : i + 1], target[i : i + 1], spacing[i].tolist())
        np.testing.assert_array_equal(h[i], h_ref[0])


def test_hand_made_single_pixels_and_border():
    a = np.zeros((1, 16, 16), np.uint8)
    b = np.zeros((1, 16, 16), np.uint8)
    a[0, 0, 0] = 3  # LV: one pixel in the corner
    b[0, 3, 4] = 3  # 5 px away
    a[0, 2:10, 2:10] = 2  # MYO squares, one shifted by 2 rows
    b[0, 4:12, 2:10] = 2
    a[0, 0, 0] = 3
    d_ref, h_ref = monai_reference(a, b, None)
    h = hd95_distances(a, b)
    assert h[0, 2] == pytest.approx(5.0) and h[0, 1] == pytest.approx(2.0)
    np.testing.assert_array_equal(h[:, 1:], h_ref[:, 1:])
    assert np.abs(dice_scores(a, b)[:, 1:] - d_ref[:, 1:]).max() < 1e-6


def test_acdc_empty_conventions():
    empty = np.zeros((1, 8, 8), np.uint8)
    lv = empty.copy()
    lv[0, 2:5, 2:5] = 3
    d = dice_scores(empty, empty)
    assert (d == 1).all()
    assert (hd95_distances(empty, empty) == 0).all()
    d = dice_scores(lv, empty)
    assert d[0, 2] == 0 and d[0, 0] == 1
    h = hd95_distances(lv, empty)
    assert np.isnan(h[0, 2]) and h[0, 0] == 0
    out = segmentation_scores(np.concatenate([lv, lv]), np.concatenate([empty, lv]), spacing=1.5)
    assert out["hd95_missing"] == 1 and out["hd95_lv"] == 0.0 and out["hd95_unit"] == "mm"
    assert out["dice_lv"] == pytest.approx(0.5)


def test_edges_are_monai_edges():
    from scipy.ndimage import binary_erosion

    m = contract_masks(4, 32, seed=2)
    e = edge_map(m)
    for k in (1, 2, 3):
        for i in range(len(m)):
            mask = m[i] == k
            np.testing.assert_array_equal(e[i] & mask, binary_erosion(mask) ^ mask)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        dice_scores(np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="outside"):
        dice_scores(np.full((1, 8, 8), 4, np.uint8), np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="spacing"):
        spacing_array([1.0, 2.0, 3.0], 2)
    with pytest.raises(ValueError, match="percentile"):
        hd95_distances(np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 8), np.uint8), percentile=101)


# -- the unit travels with the number ---------------------------------------------------------------------
def test_hd95_unit_is_the_spacing_s_unit():
    pred, target = contract_masks(3, 32, seed=1), contract_masks(3, 32, seed=2)
    in_px = segmentation_scores(pred, target, spacing=1.0, unit="px")  # e.g. acdc-h5: spacing in source pixels
    assert in_px["hd95_unit"] == "px"
    assert segmentation_scores(pred, target, spacing=1.0)["hd95_unit"] == "mm"  # a spacing, no unit: mm
    assert segmentation_scores(pred, target)["hd95_unit"] == "px"  # no spacing: pixels
    assert segmentation_scores(pred, target, unit="px")["hd95_mean"] == in_px["hd95_mean"]
    with pytest.raises(ValueError, match="distance unit 'cm' is not one of mm, px"):
        segmentation_scores(pred, target, spacing=1.0, unit="cm")


def test_evaluate_segmentation_records_the_distance_unit_in_meta():
    from cardiobench.errors import DataError
    from cardiobench.metrics.api import evaluate_segmentation

    pred, target = contract_masks(3, 32, seed=1), contract_masks(3, 32, seed=2)
    mm = evaluate_segmentation(pred, target, 1.5, metrics=["hd95"])
    px = evaluate_segmentation(pred, target, 1.0, metrics=["hd95", "anatomy"], distance_unit="px")
    assert mm["meta"]["distance_unit"] == mm["meta"]["hd95_unit"] == "mm"
    assert px["meta"]["distance_unit"] == px["meta"]["hd95_unit"] == "px"
    assert evaluate_segmentation(pred, target, metrics=["hd95"])["meta"]["distance_unit"] == "px"
    assert px["metrics"]["hd95_mean"] == pytest.approx(mm["metrics"]["hd95_mean"] / 1.5)
    with pytest.raises(DataError, match="distance unit 'inch'"):
        evaluate_segmentation(pred, target, 1.0, distance_unit="inch")


# -- a missed structure: counted beside every HD95 figure, penalised in hd95_penalised_mean ----------------
def test_missing_pairs_are_counted_per_structure_and_penalised_with_the_image_diagonal():
    from cardiobench.metrics.segmentation import image_diagonals

    target = np.zeros((2, 8, 8), np.uint8)
    target[:, 1:4, 1:4] = 1  # RV in both images
    target[:, 4:7, 4:7] = 3  # LV in both images
    pred = target.copy()
    pred[1][pred[1] == 3] = 0  # image 1: LV missed
    out = segmentation_scores(pred, target, spacing=(1.5, 2.0))
    diagonal = float(np.hypot(8 * 1.5, 8 * 2.0))  # 20 mm: the farthest the image holds
    assert image_diagonals((2, 8, 8), (1.5, 2.0)).tolist() == [diagonal, diagonal]
    assert (out["hd95_missing"], out["hd95_missing_rv"], out["hd95_missing_myo"], out["hd95_missing_lv"]) == (
        1, 0, 0, 1)
    assert out["hd95_lv"] == 0.0 and out["hd95_mean"] == 0.0  # the miss is left out of the means...
    assert out["hd95_penalised_mean"] == pytest.approx(diagonal / 6)  # ...and scores the diagonal here
    assert segmentation_scores(target, target, spacing=1.0)["hd95_penalised_mean"] == 0.0


def test_the_hd95_plugin_reports_the_counts_and_the_penalised_mean_with_directions():
    from cardiobench.metrics.api import evaluate_segmentation

    target = contract_masks(3, 32, seed=1)
    pred = target.copy()
    pred[0][pred[0] == 2] = 0  # MYO missed in one image
    out = evaluate_segmentation(pred, target, 1.5, metrics=["hd95"])
    m, d = out["metrics"], out["directions"]
    assert m["hd95_missing_myo"] == m["hd95_missing"] == 1
    assert m["hd95_penalised_mean"] > m["hd95_mean"]
    assert d["hd95_penalised_mean"] == d["hd95_missing_myo"] == "lower"
