"""Sampling engine: label maps from a checkpoint, seeded, EMA by default, written as .npz + grid."""

import numpy as np
import pytest
import torch

from cardiobench.engine.sample import load_model, read_samples, sample, write_samples
from cardiobench.engine.train import train
from cardiobench.errors import CardiobenchError


@pytest.fixture
def checkpoint(tmp_path, tiny_spec):
    return train(tiny_spec(), tmp_path / "run").checkpoint


def test_samples_are_label_maps_and_seeded(checkpoint, tmp_path):
    a = sample(checkpoint, sampler="ddim", steps=4, num_samples=5, batch_size=2, seed=3)
    assert a.masks.shape == (5, 16, 16) and a.masks.dtype == np.uint8 and a.masks.max() <= 3
    b = sample(checkpoint, sampler="ddim", steps=4, num_samples=5, batch_size=2, seed=3)
    assert np.array_equal(a.masks, b.masks)
    files = write_samples(a, tmp_path / "out")
    masks, meta = read_samples(files["samples"])
    assert np.array_equal(masks, a.masks)
    assert meta["sample_spec"]["sampler"] == "ddim" and meta["train_hash"] == a.spec.train_hash
    assert (tmp_path / "out" / "samples.png").stat().st_size > 100


def test_ddpm_and_eta_options(checkpoint):
    r = sample(checkpoint, sampler="ddpm", steps=5, num_samples=2)
    assert r.masks.shape == (2, 16, 16)
    r = sample(checkpoint, sampler="ddim", steps=3, num_samples=2, sampler_options={"eta": 1.0})
    assert r.spec.sampler_options == {"eta": 1.0}
    with pytest.raises(CardiobenchError, match="bad option for sampler 'ddpm'"):
        sample(checkpoint, sampler="ddpm", steps=3, num_samples=2, sampler_options={"eta": 1.0})


def test_ema_weights_are_used_by_default(checkpoint):
    ema_model, _, _, state = load_model(checkpoint)
    raw_model, _, _, _ = load_model(checkpoint, use_ema=False)
    name = next(iter(state["ema"]))
    assert torch.equal(ema_model.state_dict()[name], state["ema"][name])
    assert torch.equal(raw_model.state_dict()[name], state["model"][name])
    assert not torch.equal(state["ema"][name], state["model"][name])
