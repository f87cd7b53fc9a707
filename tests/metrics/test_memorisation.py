"""All-pairs Dice by matrix products, nearest-neighbour Dice, copies and diversity."""

from __future__ import annotations

import numpy as np
import pytest

from cardiobench.metrics.memorisation import diversity, evaluate_memorisation, pairwise_dice
from cardiobench.metrics.segmentation import dice_scores
from cardiobench.testing.metrics import contract_masks


def test_pairwise_matches_per_pair_dice():
    a, b = contract_masks(5, 32, seed=1), contract_masks(7, 32, seed=2)
    a[0] = 0  # an empty map: Dice 1 per absent structure pair
    d = pairwise_dice(a, b, chunk=2).numpy()
    ref = np.array([[dice_scores(a[i], b[j]).mean() for j in range(len(b))] for i in range(len(a))])
    np.testing.assert_allclose(d, ref, atol=1e-6)


def test_copies_and_diversity():
    train = contract_masks(20, 32, seed=3)
    copies = evaluate_memorisation(train[:5], train)
    assert copies["nn_dice_mean"] == pytest.approx(1.0) and copies["copy_frac"] == 1.0
    fresh = evaluate_memorisation(contract_masks(5, 32, seed=4), train)
    assert fresh["nn_dice_mean"] < 1.0
    assert diversity(np.repeat(train[:1], 4, axis=0)) == pytest.approx(0.0)
    assert 0 < diversity(train) < 1
    assert np.isnan(diversity(train[:1]))
