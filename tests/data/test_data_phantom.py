"""The phantom: default data set, deterministic, five clinically different groups, sound anatomy at 32 px."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cardiobench.data import DEFAULT_DATASET, GROUPS, open_dataset
from cardiobench.data.phantom import PhantomSource
from cardiobench.data.preprocess import resize_mask
from cardiobench.errors import CardiobenchError
from cardiobench.testing.datasets import DatasetContract

SQUARE = np.ones((3, 3), bool)


class TestPhantomContract(DatasetContract):
    expect_size = 32
    check_centred = True
    require_nonempty = ("train", "val", "test")

    def make_source(self):
        return PhantomSource(size=32, train_patients=3, test_patients=1, cache=False)


@pytest.fixture(scope="module")
def small64():
    return PhantomSource(size=64, train_patients=6, test_patients=0, cache=False).build()[0]


def test_default_dataset_sizes_and_second_load(shared_cache):
    assert DEFAULT_DATASET == "phantom"
    src = open_dataset()
    desc = src.describe()
    splits = desc["splits"]
    assert splits["train"]["slices"] >= 2000
    assert 400 <= splits["val"]["slices"] <= 800 and 400 <= splits["test"]["slices"] <= 800
    for s in splits.values():
        assert all(n > 0 for n in s["groups"].values())
        assert s["phases"]["ED"] == s["phases"]["ES"]
    assert sum(s["patients"] for s in splits.values()) == 5 * (40 + 6)
    again = open_dataset()
    train = again.load("train")
    assert again.cache_hit is True and again.load_seconds < 1.0
    assert len(train) == splits["train"]["slices"]


def test_deterministic_per_seed():
    a = PhantomSource(size=32, train_patients=1, test_patients=0, cache=False).build()[0]["train"]
    b = PhantomSource(size=32, train_patients=1, test_patients=0, cache=False).build()[0]["train"]
    c = PhantomSource(size=32, train_patients=1, test_patients=0, seed=1, cache=False).build()[0]["train"]
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.masks.shape != c.masks.shape or not np.array_equal(a.masks, c.masks)


def anatomy_problems(m: np.ndarray) -> dict[str, bool]:
    lv, myo, rv = m == 3, m == 2, m == 1
    ring = lv | myo
    near_lv = ndi.binary_dilation(lv, SQUARE)
    return {
        "lv_not_enclosed": bool(lv.any() and not ring[near_lv].all()),
        "wall_1px": bool(lv.any() and ndi.distance_transform_edt(ring)[lv].min() <= 2.0),
        "holes": bool(
            (ndi.binary_fill_holes(ring) != ring).any()
            or (ndi.binary_fill_holes(lv) != lv).any()
            or (ndi.binary_fill_holes(rv) != rv).any()
        ),
        "fragments": bool(
            ndi.label(lv, SQUARE)[1] > 1 or ndi.label(myo, SQUARE)[1] != 1 or ndi.label(rv, SQUARE)[1] > 1
        ),
        "rv_detached": bool(rv.any() and not (ndi.binary_dilation(rv, SQUARE) & myo).any()),
    }


def count_problems(masks: np.ndarray) -> dict[str, int]:
    totals: dict[str, int] = {}
    for m in masks:
        for k, v in anatomy_problems(m).items():
            totals[k] = totals.get(k, 0) + int(v)
    return totals


def test_anatomy_holds_at_32px(small64):
    direct = PhantomSource(size=32, train_patients=6, test_patients=0, cache=False).build()[0]["train"].masks
    from64 = np.stack([resize_mask(m, 32) for m in small64["train"].masks])
    for masks in (direct, from64):
        problems = count_problems(masks)
        assert problems["lv_not_enclosed"] == 0 and problems["holes"] == 0
        assert problems["fragments"] == 0 and problems["rv_detached"] == 0
        assert problems["wall_1px"] <= 0.01 * len(masks)  # the wall is >= 2 px nearly everywhere


def test_groups_differ_like_in_the_clinic(small64):
    s = small64["train"]
    stats = {}
    for g, name in enumerate(GROUPS):
        m, ph = s.masks[s.groups == g], s.phases[s.groups == g]
        lv_ed, lv_es = (m[ph == "ED"] == 3).sum(), (m[ph == "ES"] == 3).sum()
        stats[name] = {
            "myo_per_lv": (m == 2).sum() / (m == 3).sum(),
            "rv_share": (m == 1).mean(),
            "mm_per_px": s.spacing[s.groups == g].mean(),
            "lv_area_ef": 1 - lv_es / lv_ed,
        }
    assert stats["HCM"]["myo_per_lv"] > stats["NOR"]["myo_per_lv"] > stats["MINF"]["myo_per_lv"]
    assert stats["MINF"]["myo_per_lv"] > stats["DCM"]["myo_per_lv"]  # dilated cavity, thin wall
    assert stats["RV"]["rv_share"] > 1.5 * max(stats[g]["rv_share"] for g in GROUPS if g != "RV")
    assert stats["DCM"]["mm_per_px"] > stats["NOR"]["mm_per_px"]  # a bigger heart
    assert stats["DCM"]["lv_area_ef"] < stats["MINF"]["lv_area_ef"] < stats["NOR"]["lv_area_ef"]
    assert stats["NOR"]["lv_area_ef"] < stats["HCM"]["lv_area_ef"]


def test_images_are_mri_like(small64):
    s = small64["train"]
    blood, myo = s.images[s.masks == 3].mean(), s.images[s.masks == 2].mean()
    assert blood - myo > 0.3
    assert s.images[s.masks == 3].std() > 0.02  # noisy, not flat


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 4}, "size must be an integer >= 8"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"train_patients": 0}, "at least 1"),
        ({"val_fraction": 1.0}, "val_fraction must be in"),
        ({"frobnicate": 1}, "unknown option 'frobnicate' for data set 'phantom'"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(CardiobenchError, match=message):
        open_dataset("phantom", **options)
