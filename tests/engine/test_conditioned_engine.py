"""The engine with conditioning: training (CFG, concat, ControlNet on its base), sampling and segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiobench.engine.checkpoints import load_checkpoint
from cardiobench.engine.sample import read_samples, sample, write_samples
from cardiobench.engine.segment import segment
from cardiobench.engine.train import resolve_spec, train
from cardiobench.errors import CardiobenchError


def test_controlnet_trains_on_the_cached_base_and_never_changes_it(tiny_spec):
    spec = tiny_spec(conditioning="controlnet")
    result = train(spec, None, device="cpu")
    base_spec = resolve_spec(spec.replace(conditioning=None, conditioning_options={}))
    base = load_checkpoint(train(base_spec, None, device="cpu").checkpoint)
    assert train(base_spec, None, device="cpu").status == "reused"  # trained once, as the base
    state = load_checkpoint(result.checkpoint)
    for key, value in base["ema"].items():
        assert torch.equal(state["model"][f"base.{key}"], value), key
        assert torch.equal(state["ema"][f"base.{key}"], value), key
    assert result.spec.backbone_options == base_spec.backbone_options


def test_cfg_training_continues_bit_for_bit(tiny_spec, tmp_path):
    spec = tiny_spec(conditioning="classifier-free", steps=6)
    whole = train(spec, tmp_path / "whole", device="cpu")
    part = train(spec, tmp_path / "part", device="cpu", stop_after=3, retrain=True)
    assert part.step == 3
    done = train(spec, tmp_path / "part", device="cpu")
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(done.checkpoint)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_cfg_samples_balanced_classes_and_stores_the_labels(tiny_spec, tmp_path):
    ckpt = train(tiny_spec(conditioning="classifier-free"), None, device="cpu").checkpoint
    res = sample(ckpt, sampler="ddim", steps=3, num_samples=10, batch_size=4, guidance_scale=2.0, device="cpu")
    assert res.labels.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert res.spec.guidance_scale == 2.0
    write_samples(res, tmp_path)
    masks, meta = read_samples(tmp_path / "samples.npz")
    with np.load(tmp_path / "samples.npz") as data:
        assert data["labels"].tolist() == res.labels.tolist()
    again = sample(ckpt, sampler="ddim", steps=3, num_samples=10, batch_size=4, guidance_scale=2.0, device="cpu")
    assert np.array_equal(again.masks, res.masks)


def test_unconditional_checkpoint_rejects_labels(tiny_spec):
    ckpt = train(tiny_spec(), None, device="cpu").checkpoint
    with pytest.raises(CardiobenchError, match="unconditional"):
        sample(ckpt, num_samples=2, labels=[0, 1], steps=2, device="cpu")


def test_segment_ensembles_k_samples_per_image(tiny_spec):
    from cardiobench.data import open_dataset

    spec = tiny_spec(conditioning="concat")
    ckpt = train(spec, None, device="cpu").checkpoint
    test = open_dataset("phantom", size=16, **spec.dataset_options).load("test")
    images = test.images[:5]
    res = segment(ckpt, images, k=3, sampler="ddim", steps=3, batch_size=6, seed=1, device="cpu")
    assert res.samples.shape == (5, 3, 16, 16) and res.votes.shape == (5, 16, 16)
    assert res.uncertainty.min() >= 0 and res.uncertainty.max() <= 1
    counts = (res.samples == res.votes[:, None]).sum(1)
    assert np.allclose(res.uncertainty, 1 - counts / 3)
    again = segment(ckpt, images, k=3, sampler="ddim", steps=3, batch_size=6, seed=1, device="cpu")
    assert np.array_equal(again.samples, res.samples)
    with pytest.raises(CardiobenchError, match="not image-conditioned"):
        segment(train(tiny_spec(), None, device="cpu").checkpoint, images, device="cpu")
    with pytest.raises(CardiobenchError, match="trained at"):
        segment(ckpt, np.zeros((2, 8, 8), np.float32), device="cpu")
