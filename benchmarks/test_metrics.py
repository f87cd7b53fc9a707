"""Dice and HD95 on 1,000 pairs of 128x128 label maps; domain-evaluator features (the FID ruler) of 1,000 masks."""

from __future__ import annotations

import numpy as np

from cardiobench.metrics.evaluator import ASSETS, load_evaluator_file
from cardiobench.metrics.segmentation import dice_scores, hd95_distances, segmentation_scores


def test_dice_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(dice_scores, args=(pred, target), rounds=5, warmup_rounds=1)
    assert out.shape == (1000, 3) and np.all((out > 0) & (out <= 1))


def test_hd95_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(hd95_distances, args=(pred, target), rounds=3, warmup_rounds=1)
    assert out.shape == (1000, 3) and np.all(np.isfinite(out))


def test_dice_and_hd95_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(segmentation_scores, args=(pred, target), rounds=3, warmup_rounds=1)
    assert out["n_cases"] == 1000 and out["hd95_missing"] == 0


def test_fid_features_1000(benchmark, mask_pairs):
    """The phantom evaluator's 128-d features (what FID/KID/PR compare) of 1,000 masks, resized to 64x64."""
    benchmark.group = "FID feature extraction (1,000 masks)"
    ev = load_evaluator_file(ASSETS / "phantom-evaluator.pt")
    masks = mask_pairs[0]
    feats, logits = benchmark.pedantic(ev.predict, args=(masks,), rounds=3, warmup_rounds=1)
    assert feats.shape == (1000, ev.config.features) and np.all(np.isfinite(feats))
