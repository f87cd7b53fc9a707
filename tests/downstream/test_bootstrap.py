"""The paired bootstrap of a mean difference of per-slice scores."""

from __future__ import annotations

import numpy as np
import pytest

from cardiobench.downstream import paired_bootstrap
from cardiobench.errors import CardiobenchError


def test_a_large_known_shift_is_inside_the_interval_and_zero_is_outside():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 0.9, 400)
    b = a + 0.05 + rng.normal(0, 0.02, 400)
    out = paired_bootstrap(a, b, n_boot=2000, seed=0)
    d = b - a
    assert out["n"] == 400 and out["mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert out["lo"] < 0.05 < out["hi"] and out["lo"] > 0 and out["p_not_better"] == 0.0
    # the percentile interval of a mean is close to the normal one: mean +- 1.96 sd / sqrt(n)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert out["hi"] - out["lo"] == pytest.approx(2 * half, rel=0.15)
    assert out["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)), rel=0.1)


def test_identical_systems_give_a_zero_width_interval_at_zero():
    a = np.linspace(0, 1, 50)
    out = paired_bootstrap(a, a.copy())
    assert out["mean_diff"] == out["lo"] == out["hi"] == 0.0 and out["n"] == 50


def test_nan_pairs_are_dropped():
    a = np.array([0.1, np.nan, 0.3, 0.4, 0.5])
    b = np.array([0.2, 0.9, np.nan, 0.6, 0.8])
    out = paired_bootstrap(a, b, n_boot=500)
    assert out["n"] == 3
    assert out["mean_diff"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    # every resample is a mean of the 3 kept differences: the interval stays within their range
    assert 0.1 - 1e-12 <= out["lo"] <= out["mean_diff"] <= out["hi"] <= 0.3 + 1e-12
    empty = paired_bootstrap(np.array([np.nan]), np.array([1.0]))
    assert empty["n"] == 0 and np.isnan(empty["mean_diff"]) and np.isnan(empty["lo"])


def test_two_slices_match_the_hand_computed_distribution():
    """d = (0, 1): the resampled means are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4."""
    out = paired_bootstrap(np.zeros(2), np.array([0.0, 1.0]), n_boot=20000, seed=3, level=0.4)
    assert out["mean_diff"] == 0.5 and out["lo"] == out["hi"] == 0.5  # the central 40 % is all 1/2
    wide = paired_bootstrap(np.zeros(2), np.array([0.0, 1.0]), n_boot=20000, seed=3, level=0.9)
    assert (wide["lo"], wide["hi"]) == (0.0, 1.0)
    assert wide["p_not_better"] == pytest.approx(0.25, abs=0.02)


def test_the_seed_fixes_the_result_and_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    a, b = rng.random(30), rng.random(30)
    assert paired_bootstrap(a, b, seed=4) == paired_bootstrap(a, b, seed=4)
    assert paired_bootstrap(a, b, seed=4)["lo"] != paired_bootstrap(a, b, seed=5)["lo"]
    for kwargs in ({"n_boot": 0}, {"level": 1.0}, {"level": 0.0}):
        with pytest.raises(CardiobenchError):
            paired_bootstrap(a, b, **kwargs)
    with pytest.raises(CardiobenchError):
        paired_bootstrap(a, b[:-1])
