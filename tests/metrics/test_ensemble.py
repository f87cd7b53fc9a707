"""Majority vote and disagreement of segmentation ensembles, against a brute-force per-pixel Counter."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from cardiobench.errors import DataError
from cardiobench.metrics import METRIC_DIRECTIONS
from cardiobench.metrics.ensemble import ensemble_summary, label_counts, majority_vote


def _brute_force(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k, h, w = samples.shape
    votes = np.zeros((n, h, w), np.uint8)
    dis = np.zeros((n, h, w), np.float64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                c = Counter(samples[i, :, y, x].tolist())
                top = max(c.values())
                votes[i, y, x] = min(label for label, count in c.items() if count == top)
                dis[i, y, x] = 1 - top / k
    return votes, dis


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_matches_brute_force(k):
    rng = np.random.default_rng(k)
    # skewed label frequencies so that both clear majorities and ties occur
    samples = rng.choice(4, size=(3, k, 9, 11), p=[0.4, 0.3, 0.2, 0.1]).astype(np.uint8)
    votes, dis = majority_vote(samples)
    ref_votes, ref_dis = _brute_force(samples)
    assert votes.dtype == np.uint8 and dis.dtype == np.float32
    assert votes.shape == dis.shape == (3, 9, 11)
    np.testing.assert_array_equal(votes, ref_votes)
    np.testing.assert_allclose(dis, ref_dis, atol=1e-7)
    if k > 1:
        assert dis.max() > 0  # the random data does disagree somewhere
    assert dis.max() <= 1 - np.ceil(k / 4) / k + 1e-7


def test_single_sample_agrees_with_itself():
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 4, size=(4, 1, 16, 16), dtype=np.uint8)
    votes, dis = majority_vote(samples)
    np.testing.assert_array_equal(votes, samples[:, 0])
    assert not dis.any()


def test_ties_go_to_the_lowest_label():
    pixels = [
        [3, 3, 1, 1],  # 2-2 tie between RV and LV -> RV
        [0, 2, 2, 0],  # background vs MYO -> background
        [2, 1, 2, 1],  # -> 1
        [3, 2, 1, 3],  # clear majority -> 3
        [3, 2, 1, 0],  # four-way tie -> 0
    ]
    samples = np.array(pixels, np.uint8).T[None, :, :, None]  # (1, k=4, 5 pixels, 1)
    votes, dis = majority_vote(samples)
    assert votes[0, :, 0].tolist() == [1, 0, 1, 3, 0]
    np.testing.assert_allclose(dis[0, :, 0], [0.5, 0.5, 0.5, 0.5, 0.75])


def test_torch_input_and_counts():
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 4, size=(2, 5, 6, 6), dtype=np.uint8)
    v_np, d_np = majority_vote(samples)
    v_t, d_t = majority_vote(torch.from_numpy(samples).long())
    np.testing.assert_array_equal(v_np, v_t)
    np.testing.assert_array_equal(d_np, d_t)
    counts = label_counts(samples)
    assert counts.shape == (2, 6, 6, 4) and np.all(counts.sum(-1) == 5)


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.zeros((2, 8, 8), np.uint8), r"\(N, k, H, W\)"),
        (np.zeros((2, 0, 8, 8), np.uint8), "at least one sample"),
        (np.full((1, 3, 4, 4), 4, np.uint8), "outside 0..3"),
        (np.zeros((1, 3, 4, 4), np.float32), "integer labels"),
    ],
)
def test_bad_input(samples, match):
    with pytest.raises(DataError, match=match):
        majority_vote(samples)


def test_summary():
    votes = np.zeros((1, 2, 2), np.uint8)
    votes[0, 0, 0] = 3
    dis = np.array([[[0.4, 0.2], [0.0, 0.2]]], np.float32)
    out = ensemble_summary(dis, votes)
    assert out["uncertainty_mean"] == pytest.approx(0.2)
    assert out["uncertainty_fg"] == pytest.approx(0.4)
    assert np.isnan(ensemble_summary(dis, np.zeros_like(votes))["uncertainty_fg"])
    assert METRIC_DIRECTIONS["uncertainty_mean"] == METRIC_DIRECTIONS["uncertainty_fg"] == "none"
    with pytest.raises(DataError, match="shapes differ"):
        ensemble_summary(dis, votes[:, :1])
