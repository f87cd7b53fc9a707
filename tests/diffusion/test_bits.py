"""The ``bits`` representation (analog bits, Chen, Zhang & Hinton 2023): its formulas, the decoding of codes
that name no label, and a model trained and sampled on it end to end with no engine edit.

The generic representation contract runs on it in tests/test_contracts_all_kinds.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cardiobench.diffusion.bits import AnalogBitsRepresentation, bit_count
from cardiobench.factories import model_channels
from cardiobench.plugins import get_component
from cardiobench.specs import TrainSpec

KS = (2, 3, 4, 5, 8)


@pytest.mark.parametrize("k", KS)
def test_channels_are_ceil_log2_k(k):
    rep = AnalogBitsRepresentation(num_classes=k)
    assert rep.channels == bit_count(k) == math.ceil(math.log2(k))
    assert rep.shape(8) == (rep.channels, 8, 8)
    assert [bit_count(n) for n in (2, 3, 4, 5, 8, 9, 16, 17)] == [1, 2, 2, 3, 3, 4, 4, 5]


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("scale", [1.0, 0.25, 3.0])
def test_exact_round_trip_of_every_label(k, scale):
    rep = AnalogBitsRepresentation(num_classes=k, scale=scale)
    labels = torch.arange(k).reshape(1, 1, k)  # (B=1, H=1, W=K)
    x = rep.encode(labels)
    assert x.shape == (1, rep.channels, 1, k) and x.dtype == torch.float32
    assert set(x.unique().tolist()) <= {-scale, scale}
    assert torch.equal(rep.decode(x).long(), labels)


def test_encoding_is_the_binary_number_most_significant_bit_first():
    rep = AnalogBitsRepresentation(num_classes=4)
    x = rep.encode(torch.arange(4).reshape(1, 1, 4))[0, :, 0]  # (C=2, K=4)
    # label:            0        1        2        3
    expected = [[-1, -1, 1, 1],   # channel 0: bit 1
                [-1, 1, -1, 1]]   # channel 1: bit 0
    assert x.tolist() == expected
    x5 = AnalogBitsRepresentation(num_classes=5, scale=2.0).encode(torch.tensor([[[4]]]))
    assert x5.flatten().tolist() == [2.0, -2.0, -2.0]  # 4 = 100b


def test_decode_thresholds_at_zero():
    rep = AnalogBitsRepresentation(num_classes=4, scale=2.0)
    # channel values -> bits: (>0) is 1, (<=0) is 0, whatever the magnitude (the scale plays no part)
    x = torch.tensor([[0.1, -1e-6, 5.0, 0.0], [1e-6, 3.0, -0.2, 0.0]])[None, :, None, :]  # (1, 2, 1, 4)
    assert rep.decode(x).flatten().tolist() == [3, 1, 2, 0]


def _decode_point(rep, values):
    return int(rep.decode(torch.tensor(values, dtype=torch.float32).reshape(1, -1, 1, 1)))


def test_invalid_codes_decode_to_the_nearest_valid_encoding():
    """Documented rule: a code >= K decodes to argmax_{k<K} <x, e_k> (the nearest encoding; the least confident
    bits flip first; ties go to the lower label)."""
    k3 = AnalogBitsRepresentation(num_classes=3)  # code 3 = 11b names no label
    assert _decode_point(k3, [1.0, 0.5]) == 2  # flip the weaker bit 0 -> 10b
    assert _decode_point(k3, [0.5, 1.0]) == 1  # flip the weaker bit 1 -> 01b
    assert _decode_point(k3, [0.7, 0.7]) == 1  # a tie: the lower label
    k5 = AnalogBitsRepresentation(num_classes=5, scale=3.0)  # codes 5, 6, 7 name no label
    assert _decode_point(k5, [1.0, -1.0, 0.2]) == 4  # 101b: flip bit 0 -> 100b
    assert _decode_point(k5, [0.2, -1.0, 1.0]) == 1  # 101b: flip bit 2 -> 001b
    assert _decode_point(k5, [1.0, 1.0, 1.0]) == 3  # 111b: 011b is one flip away, 100b two
    assert _decode_point(k5, [1.0, 0.3, 0.3]) == 4  # 111b: two weak flips (-> 100b) beat one strong one
    # valid codes are untouched by the rule, however unconfident
    assert _decode_point(k5, [1e-6, -1e3, -1e3]) == 4


@pytest.mark.parametrize("k", [3, 5, 6, 7])
def test_invalid_code_rule_matches_a_brute_force_nearest_encoding(k):
    rep = AnalogBitsRepresentation(num_classes=k)
    x = torch.randn((4, rep.channels, 8, 8), generator=torch.Generator().manual_seed(k))
    codes = rep.encode(torch.arange(k)[None])[0]  # (C, K)
    dist = ((x[:, :, None] - codes[None, :, :, None, None]) ** 2).sum(1)  # (B, K, H, W)
    assert torch.equal(rep.decode(x).long(), dist.argmin(dim=1))


def test_options_are_checked_and_registered():
    for bad in ({"num_classes": 1}, {"scale": 0.0}, {"scale": float("nan")}, {"scale": -1.0}):
        with pytest.raises(ValueError):
            AnalogBitsRepresentation(**bad)
    comp = get_component("representation", "bits")
    assert comp.metadata["families"] == ("linear-gaussian",)
    rep = comp.create()
    assert (rep.num_classes, rep.channels, rep.scale) == (4, 2, 1.0)
    assert rep.config() == {"num_classes": 4, "scale": 1.0}


# -- end to end: trained and sampled through the engine, selected by the spec alone -------------------------------
TINY = dict(
    dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
    noise_options={"num_timesteps": 50}, backbone_options={"size": "tiny"}, batch_size=4, lr=1e-3,
    ema_decay=0.9, warmup_steps=1, steps=3,
)


def test_a_onehot_spec_keeps_its_hash():
    plain = TrainSpec(**TINY)
    explicit = TrainSpec(**TINY, representation="onehot", representation_options={})
    assert "representation" not in plain.to_dict() and "representation_options" not in plain.to_dict()
    assert explicit.hash() == plain.hash()
    bits = TrainSpec(**TINY, representation="bits")
    assert bits.to_dict()["representation"] == "bits" and bits.hash() != plain.hash()


def test_selected_by_the_config_key():
    from cardiobench.engine import pipeline

    sets = ["diffusion.representation=bits", "diffusion.representation_options.scale=2.0"]
    spec = pipeline.plan_from_config(pipeline.resolve("quick", None, {}, sets)).train  # the family is checked
    assert (spec.representation, spec.representation_options) == ("bits", {"scale": 2.0})
    assert model_channels(spec) == (2, 2)


@pytest.mark.parametrize("noise, samplers", [("gaussian", ("ddpm", "ddim")), ("blurring", ("ddim",))])
def test_trains_and_samples_end_to_end(tmp_path, noise, samplers):
    from cardiobench.engine.sample import sample
    from cardiobench.engine.train import train

    options = {"num_timesteps": 50, **({"image_size": 16} if noise == "blurring" else {})}
    spec = TrainSpec(**{**TINY, "noise": noise, "noise_options": options}, representation="bits")
    result = train(spec, tmp_path, device="cpu")
    assert result.status == "trained" and result.step == 3 and np.isfinite(result.final_loss)
    assert model_channels(spec) == (2, 2)  # the network sees the 2 bit channels, not 4 one-hot ones
    for name in samplers:
        out = sample(result.checkpoint, sampler=name, steps=3, num_samples=4, batch_size=4, device="cpu")
        assert out.train_spec.representation == "bits"
        assert out.masks.shape == (4, 16, 16) and out.masks.dtype == np.uint8
        assert out.masks.min() >= 0 and out.masks.max() <= 3
