"""The seed's preprocessing: ROI crop, square pad with margin, resizing, empty slices, rotations."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from cardiobench.data.preprocess import (
    crop_pad,
    draw_angles,
    normalize_intensity,
    preprocess_slice,
    preprocess_volume,
    resize_mask,
    roi_bbox,
    square_box,
)
from cardiobench.data.splits import stratified_split, stratified_three_way


def heart(shape=(60, 80), centre=(20, 50), r=8):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(yy - centre[0], xx - centre[1])
    m = np.zeros(shape, np.uint8)
    m[(np.hypot(yy - centre[0], xx - centre[1] + r + 3) < r + 2) & (d >= r + 3)] = 1
    m[d < r + 3] = 2
    m[d < r] = 3
    return m


def test_bbox_and_square_box_centred_with_margin():
    m = np.zeros((50, 50), np.uint8)
    m[10:20, 5:35] = 2  # 10 x 30
    assert roi_bbox(m) == (10, 19, 5, 34)
    r0, c0, side = square_box(roi_bbox(m), 0.1)
    assert side == 36 and c0 == 2 and r0 == 10 - (36 - 10) // 2
    assert roi_bbox(np.zeros((4, 4), np.uint8)) is None


def test_crop_pad_fills_outside_with_zeros():
    a = np.arange(16).reshape(4, 4) + 1
    out = crop_pad(a, -1, 2, 4)
    assert out.shape == (4, 4) and (out[0] == 0).all() and (out[1:, 2:] == 0).all()
    assert out[1, 0] == a[0, 2]


@pytest.mark.parametrize("size", [32, 64, 128])
def test_preprocess_slice_square_labels_preserved_centred(size):
    m = heart()
    img = (m * 0.3).astype(np.float32)
    out = preprocess_slice(img, m, size, margin=0.1)
    assert out is not None
    oi, om, side = out
    assert om.shape == oi.shape == (size, size) and om.dtype == np.uint8 and oi.dtype == np.float32
    assert set(np.unique(om)) == {0, 1, 2, 3}
    rmin, rmax, cmin, cmax = roi_bbox(om)
    assert abs((rmin + rmax) / 2 - (size - 1) / 2) <= 1.5 and abs((cmin + cmax) / 2 - (size - 1) / 2) <= 1.5
    assert abs(max(rmax - rmin, cmax - cmin) + 1 - size / 1.2) <= 2  # the margin: 10 % each side
    assert 0.0 <= oi.min() and oi.max() <= 1.0
    assert preprocess_slice(img, np.zeros_like(m), size) is None


def test_volume_drops_empty_slices_and_scales_spacing():
    vol = np.stack([heart(), np.zeros((60, 80), np.uint8), heart(centre=(30, 40), r=12)], axis=-1)
    img = normalize_intensity(vol.astype(np.float32) * 100)
    sl = preprocess_volume(img, vol, (1.5, 1.5), 32)
    assert len(sl) == 2 and list(sl.slice_index) == [0, 2]
    side0 = square_box(roi_bbox(vol[..., 0]), 0.1)[2]
    assert np.allclose(sl.spacing[0], 1.5 * side0 / 32)
    assert sl.spacing[1, 0] > sl.spacing[0, 0]  # the bigger heart spans more mm per pixel


def test_rotation_copies_keep_labels_and_stay_centred():
    vol = heart()[..., None]
    sl = preprocess_volume(vol.astype(np.float32) / 3, vol, (1.0, 1.0), 48, angles=[[90.0, 33.0]])
    assert len(sl) == 3 and list(sl.slice_index) == [0, 0, 0]
    # a quarter turn: the same heart turned (up to a pixel of crop rounding)
    assert (sl.masks[1] == np.rot90(sl.masks[0])).mean() > 0.9
    areas = [np.bincount(m.ravel(), minlength=4)[1:] for m in sl.masks]
    assert np.allclose(areas[1], areas[0], rtol=0.15) and np.allclose(areas[2], areas[0], rtol=0.25)
    for m in sl.masks:
        assert set(np.unique(m)) == {0, 1, 2, 3}
        rmin, rmax, cmin, cmax = roi_bbox(m)
        assert abs((rmin + rmax) / 2 - 23.5) <= 1.5 and abs((cmin + cmax) / 2 - 23.5) <= 1.5


def test_resize_mask_is_nearest_neighbour():
    m = np.random.default_rng(0).integers(0, 4, (50, 50)).astype(np.uint8)
    out = resize_mask(m, 20)
    assert set(np.unique(out)) <= {0, 1, 2, 3}
    ref = resize(m, (20, 20), order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
    assert (out == ref).mean() > 0.95  # same sampling up to ties at pixel borders
    np.testing.assert_array_equal(resize_mask(m, 100)[::2, ::2], m)


def test_normalize_intensity_and_draw_angles():
    v = np.linspace(-5, 500, 1000, dtype=np.float32).reshape(10, 10, 10)
    n = normalize_intensity(v)
    assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
    assert (normalize_intensity(np.ones((3, 3, 3))) == 0).all()
    a = draw_angles(np.random.default_rng(1), 4, 2, [90, 180])
    assert len(a) == 4 and all(len(x) == 2 and set(x) <= {90.0, 180.0} for x in a)
    assert a == draw_angles(np.random.default_rng(1), 4, 2, [90, 180])
    assert draw_angles(np.random.default_rng(1), 3, 0) == [[], [], []]


def test_normalize_intensity_ignores_nan_and_inf():
    v = np.linspace(-5, 500, 1000, dtype=np.float32).reshape(10, 10, 10)
    bad = v.copy()
    bad[0, 0, 0], bad[5, 5, 5], bad[9, 9, 9] = np.nan, np.inf, -np.inf
    n = normalize_intensity(bad)
    assert np.isfinite(n).all() and n.max() == 1.0  # used to be all zeros
    assert n[0, 0, 0] == 0.0 and n[5, 5, 5] == 0.0 and n[9, 9, 9] == 0.0
    ok = np.isfinite(bad)
    # the range is that of the finite voxels, so the rest maps almost as without the bad voxels
    np.testing.assert_allclose(n[ok], normalize_intensity(v)[ok], atol=0.01)
    assert (normalize_intensity(np.full((2, 2, 2), np.nan)) == 0).all()
    big = np.array([1.0, 2.0, 1e300, 3.0]).reshape(2, 2, 1)  # beyond float32: inf, treated the same
    assert normalize_intensity(big)[1, 0, 0] == 0.0


def test_stratified_split_by_patient_seeded():
    patients = [f"p{i:03d}" for i in range(50)]
    groups = [i // 10 for i in range(50)]
    train, val = stratified_split(patients, groups, 0.2, seed=0)
    assert sorted(train + val) == patients and not set(train) & set(val)
    assert [sum(groups[patients.index(p)] == g for p in val) for g in range(5)] == [2] * 5
    assert (train, val) == stratified_split(list(reversed(patients)), list(reversed(groups)), 0.2, seed=0)
    assert val != stratified_split(patients, groups, 0.2, seed=1)[1]
    # one group's draw does not depend on the others
    sub = stratified_split(patients[:10], groups[:10], 0.2, seed=0)[1]
    assert sub == [p for p in val if groups[patients.index(p)] == 0]
    assert stratified_split(["a", "b"], [0, 0], 0.2)[1] != []  # at least one validation patient per group
    assert stratified_split(["a"], [0], 0.5)[1] == []  # never all of a group
    with pytest.raises(ValueError):
        stratified_split(["a"], [0], 1.0)


def test_stratified_three_way_split():
    patients = [f"patient{i:03d}" for i in range(1, 101)]  # ACDC's training numbering: 20 per group
    groups = [(i - 1) // 20 for i in range(1, 101)]
    train, val, test = stratified_three_way(patients, groups, 0.2, 0.2, seed=0)
    assert sorted(train + val + test) == patients
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    count = {name: [sum(groups[patients.index(p)] == g for p in ids) for g in range(5)]
             for name, ids in (("train", train), ("val", val), ("test", test))}
    assert count == {"train": [13] * 5, "val": [3] * 5, "test": [4] * 5}  # 4 test, then 20 % of the other 16
    assert (train, val, test) == stratified_three_way(patients[::-1], groups[::-1], 0.2, 0.2, seed=0)
    assert test != stratified_three_way(patients, groups, 0.2, 0.2, seed=1)[2]
    # the test draw is not the validation draw of the same seed
    assert set(test) != set(stratified_split(patients, groups, 0.2, seed=0)[1])
    assert stratified_three_way(patients, groups, 0.2, 0.0)[2] == []
    with pytest.raises(ValueError):
        stratified_three_way(patients, groups, 0.2, 1.0)
