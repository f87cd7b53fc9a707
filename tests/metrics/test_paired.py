"""``evaluate_synthesis`` and ``evaluate_utility`` (cardiobench.metrics.paired) on tiny data, with tiny rulers."""

from __future__ import annotations

import numpy as np
import pytest

from cardiobench.data import open_dataset
from cardiobench.data.pairs_npz import write_pairs
from cardiobench.errors import CardiobenchError
from cardiobench.metrics.paired import evaluate_synthesis, evaluate_utility
from cardiobench.testing import metrics as contract

PHANTOM = {"train_patients": 2, "test_patients": 1}


@pytest.fixture
def tiny_rulers(monkeypatch):
    contract.use_tiny_rulers(monkeypatch)


@pytest.mark.usefixtures("tiny_rulers")
def test_synthesis_scores_real_slices_as_faithful_as_the_ceiling_and_names_both_rulers():
    test = open_dataset("phantom", size=32, **PHANTOM).load("test")
    out = evaluate_synthesis(test.images, test.masks, test.images, "phantom", data_options=PHANTOM)
    m = out["metrics"]
    assert m["faithful_dice_mean"] == pytest.approx(m["faithful_ceiling_dice_mean"]) and m["faithful_ratio"] == 1.0
    assert m["image_fid"] == pytest.approx(0.0, abs=1e-6)  # the real slices against themselves
    noisy = np.clip(test.images + np.random.default_rng(0).normal(0, 0.3, test.images.shape), 0, 1)
    worse = evaluate_synthesis(noisy.astype(np.float32), test.masks, test.images, "phantom", data_options=PHANTOM)
    assert worse["metrics"]["image_fid"] > max(m["image_fid"], 0.0) + 1e-6  # a 1-epoch ruler: small, not zero
    ids = out["meta"]["evaluator_id"].split("+")
    assert ids == [out["meta"]["image_evaluator_id"], f"seg-{out['meta']['segmenter_id']}"]
    only = evaluate_synthesis(test.images, test.masks, test.images, "phantom", data_options=PHANTOM,
                              metrics=["faithfulness"])
    assert "image_fid" not in only["metrics"] and only["meta"]["image_evaluator_id"] is None
    with pytest.raises(CardiobenchError, match="share one"):
        evaluate_synthesis(test.images[:3], test.masks, test.images, "phantom", data_options=PHANTOM)


def test_utility_can_score_on_another_data_set(tmp_path):
    train = open_dataset("phantom", size=32, **PHANTOM).load("train")
    folder = write_pairs(tmp_path / "other", train.images[:40], train.masks[:40], train.groups[:40])
    synth = train.subset(slice(0, 12))
    out = evaluate_utility(synth.images, synth.masks, "phantom", data_options=PHANTOM, eval_dataset="pairs",
                           eval_options={"data_root": str(folder)}, few_patients=1,
                           segmenter=contract.TINY_SEGMENTER)
    n_test = len(open_dataset("pairs", data_root=folder, size=32).load("test"))
    assert out["meta"]["eval_dataset"] == "pairs" and out["meta"]["n_images"] == n_test
    assert out["meta"]["evaluator_id"].endswith(":pairs") and out["meta"]["distance_unit"] == "px"
    settings = out["meta"]["utility"]
    assert settings["n_synthetic"] == 12 and settings["n_real_few"] < settings["n_real_all"]
    m = out["metrics"]
    assert m["utility_gain_all_lo"] <= m["utility_gain_all"] <= m["utility_gain_all_hi"]
    assert m["utility_synth_ratio"] == pytest.approx(m["utility_synth_dice"] / m["utility_real_all_dice"])
