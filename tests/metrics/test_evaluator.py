"""The domain evaluator: deterministic training, identity by weights, caching, the shipped phantom ruler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.metrics.evaluator import (
    ASSETS,
    EvaluatorConfig,
    data_fingerprint,
    load_evaluator_file,
    resize_labels,
    to_input,
    train_evaluator,
)
from cardiobench.testing.metrics import contract_masks

TINY = EvaluatorConfig(size=32, width=8, features=16, epochs=2)


def tiny_data():
    masks = contract_masks(40, 32, seed=9)
    groups = np.arange(40) % 5
    return masks, groups


def test_training_is_deterministic_and_identified_by_weights(tmp_path):
    masks, groups = tiny_data()
    a = train_evaluator(masks, groups, TINY)
    b = train_evaluator(masks, groups, TINY)
    assert a.id == b.id and len(a.id) == 12
    c = train_evaluator(masks, groups, EvaluatorConfig(**{**TINY.__dict__, "seed": 1}))
    assert c.id != a.id
    path = a.save(tmp_path / "ev.pt")
    loaded = load_evaluator_file(path)
    assert loaded.id == a.id and loaded.meta["train_fingerprint"] == data_fingerprint(masks, groups)
    f1, l1 = a.predict(masks[:4])
    f2, l2 = loaded.predict(masks[:4])
    np.testing.assert_array_equal(f1, f2)
    assert f1.shape == (4, 16) and l1.shape == (4, 5)


def test_resize_and_one_hot():
    m = torch.as_tensor(contract_masks(2, 32))
    x = to_input(m, 64)
    assert x.shape == (2, 4, 64, 64) and torch.all(x.sum(1) == 1)
    np.testing.assert_array_equal(resize_labels(resize_labels(m, 64), 32), m)  # exact 2x up and back


def test_bad_files(tmp_path):
    with pytest.raises(CardiobenchError, match="does not exist"):
        load_evaluator_file(tmp_path / "missing.pt")
    torch.save({"hello": 1}, tmp_path / "x.pt")
    with pytest.raises(CardiobenchError, match="not a cardiobench evaluator"):
        load_evaluator_file(tmp_path / "x.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CardiobenchError, match="cannot read evaluator file .* not a PyTorch file"):
        load_evaluator_file(tmp_path / "junk.pt")


def test_shipped_phantom_evaluator_is_current(phantom64):
    """The shipped weights match their JSON, are small, and were trained on today's phantom."""
    ev = load_evaluator_file(ASSETS / "phantom-evaluator.pt")
    info = json.loads((ASSETS / "phantom-evaluator.json").read_text())
    assert (ASSETS / "phantom-evaluator.pt").stat().st_size < 2_000_000
    assert info["evaluator_id"] == ev.id and info["sha256"] == ev.digest
    assert info["command"] == "cardiobench evaluator train --dataset phantom --ship"
    assert info["accuracy"]["test"] > 0.6
    train = phantom64["train"]
    assert ev.meta["train_fingerprint"] == data_fingerprint(train.masks, train.groups), (
        "the phantom changed since the evaluator was shipped: run " + info["command"]
    )


def test_get_evaluator_trains_once_and_caches(shared_cache, monkeypatch):
    from cardiobench.metrics import evaluator as E

    calls = []
    real = E.build_evaluator

    def fake_build(dataset, splits, config=None, *, log=None):
        calls.append(dataset)
        tiny = splits["train"].subset(slice(0, None, 80))  # ~40 masks of every group
        return real(dataset, {"train": tiny}, EvaluatorConfig(size=64, width=8, features=16, epochs=1), log=log)

    monkeypatch.setattr(E, "build_evaluator", fake_build)
    with pytest.raises(CardiobenchError, match="no evaluator"):
        E.get_evaluator("phantom", use_shipped=False, train=False)
    a = E.get_evaluator("phantom", use_shipped=False)
    b = E.get_evaluator("phantom", use_shipped=False)
    assert calls == ["phantom"] and a.id == b.id and a.path == b.path
