"""Morphological damage transforms: seeded, input untouched, and each does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from cardiobench.metrics.degrade import (
    LV,
    MYO,
    RV,
    TRANSFORMS,
    default_radius,
    degrade,
    dilate,
    erode,
    holes,
    missing_rv,
    mixed_damage,
)
from cardiobench.testing.metrics import contract_masks


@pytest.fixture
def hearts() -> np.ndarray:
    return contract_masks(8, 64, seed=3)


def _area(m: np.ndarray, label: int) -> np.ndarray:
    return (m == label).sum((1, 2))


def test_radius_scales_with_resolution():
    assert [default_radius(s) for s in (16, 32, 64, 128)] == [1, 1, 2, 4]


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_is_seeded_and_leaves_its_input_alone(hearts, name):
    before = hearts.copy()
    a = degrade(hearts, name, seed=4)
    b = degrade(hearts, name, seed=4)
    assert a.dtype == np.uint8 and a.shape == hearts.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(hearts, before)
    assert not np.array_equal(a, hearts), f"{name} changed nothing"
    assert a.max() <= 3


def test_erode_shrinks_every_structure_and_only_adds_background(hearts):
    out = erode(hearts)
    for label in (RV, MYO, LV):
        assert (_area(out, label) < _area(hearts, label)).all(), label
    changed = out != hearts
    assert (out[changed] == 0).all()  # lost pixels become background, no label becomes another
    assert (_area(erode(hearts, strength=2), RV) < _area(out, RV)).all()  # stronger: more lost


def test_dilate_grows_into_background_only(hearts):
    out = dilate(hearts)
    assert (_area(out, RV) > _area(hearts, RV)).all() and (_area(out, MYO) > _area(hearts, MYO)).all()
    fg = hearts > 0
    np.testing.assert_array_equal(out[fg], hearts[fg])  # no structure eats another
    assert (_area(out, 0) < _area(hearts, 0)).all()


def test_holes_punch_background_into_the_foreground(hearts):
    out = holes(hearts, seed=1)
    changed = out != hearts
    assert changed.any(axis=(1, 2)).all()  # every map got holes
    assert (out[changed] == 0).all() and (hearts[changed] > 0).all()
    assert not np.array_equal(out, holes(hearts, seed=2))  # the seed places them
    assert (holes(hearts, strength=3, seed=1) == 0).sum() > (out == 0).sum()
    empty = np.zeros((2, 32, 32), np.uint8)
    np.testing.assert_array_equal(holes(empty), empty)


def test_missing_rv_removes_the_rv_and_nothing_else(hearts):
    out = missing_rv(hearts)
    assert _area(out, RV).sum() == 0
    keep = hearts != RV
    np.testing.assert_array_equal(out[keep], hearts[keep])


def test_mixed_damage_gives_each_transform_a_quarter(hearts):
    out, kinds = mixed_damage(hearts, seed=0)
    assert np.bincount(kinds, minlength=4).tolist() == [2, 2, 2, 2]
    for k, name in enumerate(TRANSFORMS):
        sel = kinds == k
        np.testing.assert_array_equal(out[sel], TRANSFORMS[name](hearts[sel], seed=k))
    again, kinds2 = mixed_damage(hearts, seed=0)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(kinds, kinds2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown damage"):
        degrade(contract_masks(2, 32), "melt")
    with pytest.raises(ValueError, match="positive integer"):
        erode(contract_masks(2, 32), strength=0)
