"""Mask-to-image synthesis through the engine: training (concat, ControlNet on an image base), drawing, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiobench.data import open_dataset
from cardiobench.engine import pipeline
from cardiobench.engine.checkpoints import load_checkpoint
from cardiobench.engine.sample import sample
from cardiobench.engine.segment import segment
from cardiobench.engine.synthesize import synthesize
from cardiobench.engine.train import resolve_spec, train
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import build_model


def _masks(n: int = 5):
    return open_dataset("phantom", size=16, train_patients=1, test_patients=1).load("test").masks[:n]


def test_a_concat_synthesis_model_sees_the_one_hot_mask_and_draws_grey_images(tiny_spec):
    spec = tiny_spec(representation="mri", conditioning="concat")
    model = build_model(spec)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1 + 4  # the noisy image and the one-hot label map
    result = train(spec, None, device="cpu")
    masks = _masks()
    a = synthesize(result.checkpoint, masks, sampler="ddim", steps=5, seed=3, device="cpu")
    b = synthesize(result.checkpoint, masks, sampler="ddim", steps=5, seed=3, device="cpu")
    assert a.images.shape == masks.shape and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, masks)
    assert a.float_images.dtype == np.float32 and a.float_images.max() <= 1.0
    c = synthesize(result.checkpoint, masks[::-1].copy(), sampler="ddim", steps=5, seed=3, device="cpu")
    assert not np.array_equal(c.images, a.images)  # the condition changes the images


def test_a_controlnet_synthesis_model_builds_on_an_unconditional_image_model(tiny_spec):
    spec = tiny_spec(representation="mri", conditioning="controlnet")
    model = build_model(spec)
    assert model.hint[0].in_channels == 4  # the hint encoder reads the one-hot label map
    result = train(spec, None, device="cpu")
    base = resolve_spec(spec.replace(conditioning=None, conditioning_options={}))
    assert base.representation == "mri"
    assert train(base, None, device="cpu").status == "reused"  # trained first, as the frozen base
    state = load_checkpoint(result.checkpoint)
    assert state["spec"]["representation"] == "mri"
    out = synthesize(result.checkpoint, _masks(3), sampler="ddim", steps=4, device="cpu")
    assert out.images.shape == (3, 16, 16)


def test_segmentation_and_synthesis_checkpoints_are_not_mixed_up(tiny_spec):
    synthesis = train(tiny_spec(representation="mri", conditioning="concat", steps=2), None, device="cpu")
    segmentation = train(tiny_spec(conditioning="concat", steps=2), None, device="cpu")
    masks = _masks(2)
    with pytest.raises(IncompatibleError, match="synthesis .*not a segmentation model"):
        segment(synthesis.checkpoint, masks.astype(np.float32) / 3, k=1, steps=2, device="cpu")
    with pytest.raises(IncompatibleError, match="segmentation .*not a synthesis model"):
        synthesize(segmentation.checkpoint, masks, steps=2, device="cpu")
    with pytest.raises(CardiobenchError, match="labels outside"):
        synthesize(synthesis.checkpoint, masks + 5, steps=2, device="cpu")
    with pytest.raises(IncompatibleError, match="draws MRI images .*--task synthesis"):
        sample(synthesis.checkpoint, num_samples=2, steps=2, device="cpu")


@pytest.mark.parametrize(("options", "message"), [
    ({"task": "synthesis", "conditioning": "classifier-free"}, "synthesis needs a map-conditioning"),
    ({"task": "synthesis"}, "synthesis needs a map-conditioning"),
    ({"representation": "mri"}, "diffuses MRI images: it belongs to --task synthesis"),
    ({"task": "synthesis", "conditioning": "concat", "representation": "bits"}, "synthesis diffuses the MRI image"),
    ({"task": "synthesis", "conditioning": "concat", "autoencoder": "vae"},
     "autoencoder .vae. encodes label maps; --task synthesis diffuses MRI images"),
    ({"task": "utility", "conditioning": "concat"}, "utility measures a mask generator"),
    ({"task": "utility"}, "scores with the fixed segmenter: .*multiple of 16 and >= 32, got 16"),  # tiny: 16 px
    ({"task": "synthesis", "conditioning": "concat"}, "scores with the fixed segmenter"),
    ({"task": "utility", "sets": ["data.resolution=32", "utility.segmenter={stepz=3}"]}, "utility.segmenter: .*stepz"),
])
def test_bad_synthesis_and_utility_combinations_are_refused_before_any_work(options, message):
    cfg, _ = pipeline.run_config(preset="tiny", **options)
    with pytest.raises(CardiobenchError, match=message):
        pipeline.plan_from_config(cfg)


def test_the_task_follows_the_preset_when_the_method_serves_both():
    assert pipeline.run_config(preset="synthesis", conditioning="concat")[0]["run"]["task"] == "synthesis"
    assert pipeline.run_config(conditioning="concat") == pipeline.run_config(preset="segmentation",
                                                                             conditioning="concat")
    cfg, preset = pipeline.run_config(task="synthesis", conditioning="controlnet")
    assert preset == "synthesis" and cfg["run"]["task"] == "synthesis"
    plan = pipeline.plan_from_config(cfg)
    assert plan.train.representation == "mri" and plan.spec()["eval"]["split"] == "test"
    assert "mri gaussian" in plan.label


def test_a_utility_plan_names_its_synthesis_model_and_evaluation_data():
    cfg, _ = pipeline.run_config(preset="tiny", task="utility", sets=["data.resolution=32",
                                                                     "utility.synthesis_steps=7"])
    plan = pipeline.plan_from_config(cfg)
    u = plan.utility
    assert u["synthesis"]["representation"] == "mri" and u["synthesis"]["conditioning"] == "concat"
    assert u["synthesis"]["steps"] == 7 and u["synthesis"]["resolution"] == 32
    assert plan.spec()["utility"] == u
    other, _ = pipeline.run_config(preset="tiny", task="utility", sets=["data.resolution=32",
                                                                       "utility.synthesis_steps=8"])
    assert pipeline.plan_from_config(other).spec_hash != plan.spec_hash
    with pytest.raises(CardiobenchError, match="--eval-data-root .* does not exist"):
        bad, _ = pipeline.run_config(preset="tiny", task="utility", eval_dataset="acdc",
                                     eval_data_root="/nonexistent/acdc", sets=["data.resolution=32"])
        pipeline.plan_from_config(bad)
