"""Volumetric runs (``--dims 3``) through the engine: planning, refusals, training, drawing and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cardiobench.data import open_dataset
from cardiobench.engine import pipeline
from cardiobench.engine.sample import read_samples, sample, write_samples
from cardiobench.engine.segment import segment
from cardiobench.engine.train import train
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import build_model, build_variable
from cardiobench.results.store import ResultStore

DEPTH = 4
VOLUMES = {"train_patients": 1, "test_patients": 1, "depth": DEPTH}


def test_dims_and_depth_set_the_data_depth():
    cfg, _ = pipeline.run_config(preset="tiny", dims=3)
    assert cfg["data"]["depth"] == 8  # --dims 3 alone: the CPU default
    assert pipeline.train_spec_from_config(cfg).spatial_shape == (8, 16, 16)
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=4)
    assert pipeline.train_spec_from_config(cfg).dataset_options["depth"] == 4
    cfg, _ = pipeline.run_config(preset="volume-cpu", dims=2)  # a volume preset, read as slices
    assert pipeline.train_spec_from_config(cfg).spatial_shape == (32, 32)
    assert pipeline.train_spec_from_config(pipeline.run_config(preset="volume-cpu")[0]).spatial_dims == 3
    with pytest.raises(CardiobenchError, match="--dims is 2"):
        pipeline.run_config(preset="tiny", dims=2, depth=4)
    with pytest.raises(CardiobenchError, match="--dims must be 2"):
        pipeline.run_config(preset="tiny", dims=4)


@pytest.mark.parametrize(("options", "message"), [
    ({"task": "synthesis", "conditioning": "concat"}, "2-D slices only"),
    ({"conditioning": "classifier-guidance"}, "conditioning 'classifier-guidance' works on 2-D"),
])
def test_what_is_2d_only_is_refused_before_any_work(options, message):
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=DEPTH, **options)
    with pytest.raises(IncompatibleError, match=message):
        pipeline.plan_from_config(cfg)


def test_a_backbone_that_does_not_declare_3d_is_refused(register_plugin):
    from cardiobench.hookspecs import hookimpl
    from cardiobench.models.plugin import unet

    class Flat:
        @hookimpl
        def register_backbones(self, register):
            register("flat-net", unet)  # no spatial_dims metadata: 2-D only

    register_plugin(Flat(), "flat")
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=DEPTH, backbone="flat-net")
    with pytest.raises(IncompatibleError, match="backbone 'flat-net' works on 2-D data, not 3-D"):
        pipeline.plan_from_config(cfg)


def test_an_autoencoder_that_does_not_declare_3d_is_refused(register_plugin):
    from cardiobench.autoencoders.vae import MaskVAE
    from cardiobench.hookspecs import hookimpl

    class FlatAE:
        @hookimpl
        def register_autoencoders(self, register):
            register("flat-vae", MaskVAE, data="mask")  # no spatial_dims metadata: 2-D only

    register_plugin(FlatAE(), "flat-ae")
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=DEPTH, autoencoder="flat-vae")
    with pytest.raises(IncompatibleError, match="autoencoder 'flat-vae' works on 2-D data, not 3-D"):
        pipeline.plan_from_config(cfg)


def test_a_volume_model_trains_and_samples_volumes(tiny_spec, tmp_path):
    spec = tiny_spec(dataset_options=VOLUMES)
    variable = build_variable(spec)
    assert variable.shape(2) == (2, 4, DEPTH, 16, 16)
    model = build_model(spec)
    assert model.spatial_dims == 3
    assert any(isinstance(m, torch.nn.Conv3d) for m in model.modules())
    result = train(spec, None, device="cpu")
    out = sample(result.checkpoint, sampler="ddim", steps=4, num_samples=3, seed=1, device="cpu")
    assert out.masks.shape == (3, DEPTH, 16, 16) and out.masks.dtype == np.uint8
    files = write_samples(out, tmp_path)
    with Image.open(files["grid"]) as grid:  # one row per volume, its 4 slices side by side
        assert grid.width > grid.height
    np.testing.assert_array_equal(read_samples(files["samples"])[0], out.masks)


def test_class_conditional_volumes(tiny_spec):
    spec = tiny_spec(dataset_options=VOLUMES, conditioning="classifier-free")
    result = train(spec, None, device="cpu")
    out = sample(result.checkpoint, sampler="ddim", steps=3, num_samples=5, seed=0, device="cpu",
                 guidance_scale=2.0, labels=np.arange(5))
    assert list(out.labels) == [0, 1, 2, 3, 4]
    assert out.masks.shape == (5, DEPTH, 16, 16)


@pytest.mark.parametrize("method", ["concat", "controlnet"])
def test_volumes_are_segmented_from_mri_volumes(tiny_spec, method):
    spec = tiny_spec(dataset_options=VOLUMES, conditioning=method)
    result = train(spec, None, device="cpu")
    test = open_dataset("phantom", size=16, **VOLUMES).load("test")
    out = segment(result.checkpoint, test.images[:2], k=2, sampler="ddim", steps=3, device="cpu")
    assert out.votes.shape == (2, DEPTH, 16, 16) and out.samples.shape == (2, 2, DEPTH, 16, 16)
    assert out.uncertainty.shape == out.votes.shape
    with pytest.raises(CardiobenchError, match="trained at 4x16x16"):
        segment(result.checkpoint, test.images[:2, :2], k=1, steps=2, device="cpu")


def test_blurring_on_volumes_uses_the_physical_slice_spacing():
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=DEPTH, noise="blurring")
    options = pipeline.train_spec_from_config(cfg).noise_options
    assert options["image_size"] == [DEPTH, 16, 16]
    source = open_dataset("phantom", size=16, **{**cfg["data"]["options"], "depth": DEPTH})
    sp = np.median(source.load("train").spacing, axis=0)
    assert options["spacing"] == pytest.approx([sp[0] / sp[1:].mean(), 1.0, 1.0], rel=1e-3)
    assert options["spacing"][0] > 1.0  # slices are further apart than pixels
    cfg2, _ = pipeline.run_config(preset="tiny", noise="blurring")
    assert "spacing" not in pipeline.train_spec_from_config(cfg2).noise_options  # 2-D specs are unchanged


def test_a_volumetric_run_end_to_end(tmp_path):
    cfg, _ = pipeline.run_config(preset="tiny", dims=3, depth=DEPTH)
    plan = pipeline.plan_from_config(cfg)
    outcome = pipeline.execute(plan, ResultStore(tmp_path / "r.db"), tmp_path, gif=True)
    samples = np.load(outcome.record.artefacts["samples"])["masks"]
    assert samples.shape[1:] == (DEPTH, 16, 16)
    meta = outcome.meta
    assert meta["dims"] == 3 and meta["depth"] == DEPTH and meta["n_slices"] == DEPTH * meta["n_samples"]
    assert len(meta["volume_spacing"]) == 3
    assert "fid" in outcome.record.metrics and "anatomy_valid_frac" in outcome.record.metrics
    assert (tmp_path / "runs" / plan.spec_hash[:12] / "grid.png").is_file()
    assert (tmp_path / "runs" / plan.spec_hash[:12] / "reverse.gif").is_file()
