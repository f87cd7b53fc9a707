"""Segmentation and mask-to-image synthesis in an autoencoder's latent: ``run --task segmentation|synthesis
--autoencoder NAME`` trains the autoencoder, then the latent model, draws, decodes, scores and shows the ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cardiobench as cb
from cardiobench.engine import pipeline
from cardiobench.errors import CardiobenchError

pytestmark = pytest.mark.usefixtures("one_thread")

#: a tiny autoencoder (about 2 s on one thread) and a short denoiser: the plumbing, not the quality
AE_SETS = ["autoencoder.options.size=tiny", "autoencoder.steps=100", "autoencoder.batch_size=16",
           "autoencoder.lr=3e-3"]
SHORT = ["train.steps=30", "eval.num_samples=8", "eval.ensemble_k=2"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["concat", "controlnet"])
def test_latent_segmentation_runs_end_to_end_with_its_ceiling(tmp_path, method):
    outcome = cb.run("gaussian", "ddim", preset="tiny", task="segmentation", conditioning=method, autoencoder="vae",
                     sets=[*AE_SETS, *SHORT, "sample.steps=3"], results=tmp_path / "r.db", out=tmp_path)
    rec = outcome.record
    assert rec.task == "segmentation" and rec.spec["train"]["representation"] == "latent"
    assert 0.0 <= rec.metrics["dice_mean"] <= 1.0
    # the ceiling: the true masks of the segmented images through the autoencoder, scored as segmentations
    assert rec.metrics["ceiling_recon_dice_mean"] >= 0.75 and rec.metrics["ceiling_dice_mean"] >= 0.75
    assert "ceiling_hd95_mean" in rec.metrics and "ceiling_dice_mean" not in rec.directions  # shown, never ranked
    meta = json.loads((outcome.out_dir / "metrics.json").read_text())["meta"]
    assert meta["latent_ceiling"]["n"] == 8 and meta["latent_ceiling"]["latent_shape"] == [4, 4, 4]
    seg = np.load(outcome.out_dir / "segmentations.npz")
    assert seg["votes"].shape == (8, 16, 16) and seg["samples"].shape == (8, 2, 16, 16)  # decoded to the mask size
    if method == "controlnet":  # its frozen base is the unconditional latent model of the same autoencoder
        assert meta["base_model"]


def test_a_latent_segmentation_plan_brings_the_slice_to_the_latent_grid():
    cfg, _ = pipeline.run_config(preset="tiny", task="segmentation", conditioning="concat", autoencoder="vae",
                                 sets=AE_SETS)
    plan = pipeline.plan_from_config(cfg)
    assert plan.train.representation == "latent"
    method = pipeline.build_conditioning(plan.train)
    assert method.map_downsampling == 4 and method.image_channels == 1


@pytest.mark.parametrize(("task", "conditioning", "autoencoder", "message"), [
    ("synthesis", "concat", "vae", "autoencoder 'vae' encodes label maps; --task synthesis diffuses MRI images"),
    ("segmentation", "concat", "image-vae",
     "autoencoder 'image-vae' encodes MRI images; --task segmentation diffuses label maps"),
    ("generation", None, "image-vae", "autoencoder 'image-vae' encodes MRI images; --task generation diffuses"),
])
def test_an_autoencoder_of_the_other_half_is_refused_before_any_work(task, conditioning, autoencoder, message):
    cfg, _ = pipeline.run_config(preset="tiny", task=task, conditioning=conditioning, autoencoder=autoencoder)
    with pytest.raises(CardiobenchError, match=message):
        pipeline.plan_from_config(cfg)
