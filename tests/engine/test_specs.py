"""Specs: plain JSON, stable sha256 hashes, validation with one-line errors."""

import hashlib
import json

import pytest

from cardiobench.errors import CardiobenchError
from cardiobench.specs import SampleSpec, TrainSpec, canonical_json


def test_hash_is_sha256_of_canonical_json():
    spec = TrainSpec(steps=10, noise_options={"b": 1, "a": [1, 2]})
    payload = {"kind": "train", "version": 1, "spec": spec.to_dict()}
    assert spec.hash() == hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    assert canonical_json({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'


def test_hash_is_stable_and_sensitive():
    a = TrainSpec(steps=10, noise_options={"x": 1, "y": 2})
    b = TrainSpec(steps=10, noise_options={"y": 2, "x": 1})
    assert a.hash() == b.hash()
    assert a.hash() != a.replace(lr=2e-4).hash() != a.replace(steps=11).hash()
    assert TrainSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.same_model_as(a.replace(steps=99)) and not a.same_model_as(a.replace(seed=1))
    s = SampleSpec(train_hash=a.hash(), steps=50, sampler_options={"eta": 0.0})
    assert SampleSpec.from_dict(s.to_dict()).hash() == s.hash() != s.replace(seed=1).hash()


def test_tuples_become_lists():
    spec = TrainSpec(steps=1, backbone_options={"size": "tiny", "channel_mults": (1, 2)})
    assert spec.backbone_options["channel_mults"] == [1, 2]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({}, "exactly one of steps and epochs"),
        ({"steps": 1, "epochs": 1}, "exactly one of steps and epochs"),
        ({"steps": 0}, "positive integer"),
        ({"steps": 1, "loss": "l3"}, "unknown loss"),
        ({"steps": 1, "precision": "fp8"}, "unknown precision"),
        ({"steps": 1, "ema_decay": 1.0}, "EMA decay"),
        ({"steps": 1, "noise_options": {"x": object()}}, "not plain JSON"),
    ],
)
def test_invalid_specs(changes, match):
    with pytest.raises(CardiobenchError, match=match):
        TrainSpec(**changes)


def test_unknown_field():
    with pytest.raises(CardiobenchError, match="unknown train spec field"):
        TrainSpec.from_dict({"steps": 1, "nope": 2})
