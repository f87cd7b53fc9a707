"""The fixed reference segmenter: spec, predict, determinism, cache, corrupt files, learning on the phantom."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cardiobench import plugins
from cardiobench.data import open_dataset
from cardiobench.data.base import SliceSet
from cardiobench.downstream import (
    SEGMENTERS,
    Segmenter,
    SegmenterSpec,
    fingerprint_pairs,
    load_segmenter,
    per_slice_dice,
    reference_segmenter,
    score_segmenter,
    subset_patients,
    train_segmenter,
)
from cardiobench.downstream import segmenter as S
from cardiobench.errors import CardiobenchError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")

#: a small phantom (2 patients per group and split) at 32x32
PHANTOM = {"train_patients": 2, "test_patients": 1}


def tiny(**changes) -> SegmenterSpec:
    """A small network and a short recipe: trains in about a second."""
    return SegmenterSpec(**{"features": (8, 8, 16, 32, 64, 8), "steps": 4, "batch_size": 8, **changes})


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> dict[str, SliceSet]:
    """The small phantom's train and test splits, built once in a private cache."""
    old = os.environ.get("CARDIOBENCH_CACHE_DIR")
    os.environ["CARDIOBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("phantom-cache"))
    try:
        plugins.reset_plugin_manager()
        source = open_dataset("phantom", size=32, seed=0, **PHANTOM)
        return {split: source.load(split) for split in ("train", "test")}
    finally:
        if old is None:
            os.environ.pop("CARDIOBENCH_CACHE_DIR", None)
        else:
            os.environ["CARDIOBENCH_CACHE_DIR"] = old
        plugins.reset_plugin_manager()


def _weights(seg: Segmenter) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in seg.model.state_dict().items()}


# -- the spec -------------------------------------------------------------------------------------------------
def test_spec_hash_is_stable_and_covers_the_data_and_the_recipe():
    a = SegmenterSpec()
    assert a.kind == "segmenter" and a.features == [16, 16, 32, 64, 128, 16]
    assert SegmenterSpec.from_dict(a.to_dict()).hash() == a.hash() == SegmenterSpec().hash()
    assert len({a.hash(), a.replace(data="x").hash(), a.replace(steps=7).hash(), a.replace(augment=False).hash(),
                a.replace(seed=1).hash(), a.replace(features=(8, 8, 16, 32, 64, 8)).hash()}) == 6


@pytest.mark.parametrize("changes", [
    {"resolution": 16}, {"resolution": 40}, {"features": (8, 8, 16)}, {"features": (8, 8, 16, 32, 0, 8)},
    {"steps": 0}, {"batch_size": 1.5}, {"lr": 0.0}, {"augment": "yes"}, {"seed": True},
])
def test_spec_refuses_bad_values_in_one_line(changes):
    with pytest.raises(CardiobenchError) as err:
        SegmenterSpec(**changes)
    assert "\n" not in str(err.value)


def test_fingerprint_covers_shapes_dtypes_and_bytes():
    x = np.zeros((2, 32, 32), np.float32)
    m = np.zeros((2, 32, 32), np.uint8)
    f = fingerprint_pairs(x, m)
    assert len(f) == 64 and f == fingerprint_pairs(x.copy(), m.copy())
    m2 = m.copy()
    m2[0, 0, 0] = 1
    assert len({f, fingerprint_pairs(x, m2), fingerprint_pairs(x.astype(np.float64), m),
                fingerprint_pairs(x.reshape(1, 64, 32), m.reshape(1, 64, 32))}) == 4


def test_subset_patients_takes_the_first_ids_sorted(phantom):
    train = phantom["train"]
    ids = sorted(set(map(str, train.patients)))
    sub = subset_patients(train, 3)
    assert sorted(set(map(str, sub.patients))) == ids[:3]
    assert len(sub) == int(np.isin(train.patients, ids[:3]).sum())
    with pytest.raises(CardiobenchError):
        subset_patients(train, len(ids) + 1)
    with pytest.raises(CardiobenchError):
        subset_patients(train, 0)


# -- predict and score ------------------------------------------------------------------------------------------
def test_predict_gives_uint8_labels_of_the_input_shape(phantom):
    train = phantom["train"]
    seg = train_segmenter(train.images, train.masks, tiny(steps=2), device="cpu", cache=False)
    out = seg.predict(train.images[:5], batch_size=2)
    assert out.shape == (5, 32, 32) and out.dtype == np.uint8 and out.max() <= 3
    assert seg.predict(train.images[:0]).shape == (0, 32, 32)
    assert seg.id == seg.spec.short_hash() and len(seg.id) == 12
    assert seg.spec.data == fingerprint_pairs(train.images, train.masks)
    assert seg.meta["n_pairs"] == len(train) and seg.meta["steps"] == 2 and seg.meta["final_loss"] > 0
    assert seg.status == "trained" and not any(p.requires_grad for p in seg.model.parameters())
    with pytest.raises(DataError, match="16x16"):
        seg.predict(np.zeros((1, 16, 16), np.float32))
    with pytest.raises(DataError):
        seg.predict(np.zeros((32, 32), np.float32))


def test_bad_training_pairs_are_one_line_errors(phantom):
    x, m = phantom["train"].images[:4], phantom["train"].masks[:4]
    for images, masks in [(x, m[:3]), (x, m.astype(np.float32)), (x, m + 4), (x[:0], m[:0])]:
        with pytest.raises(DataError):
            train_segmenter(images, masks, tiny(), device="cpu", cache=False)


def test_per_slice_dice_averages_the_structures_present_in_either_map():
    target = np.zeros((4, 4, 4), np.uint8)
    pred = np.zeros((4, 4, 4), np.uint8)
    # slice 0: LV 4 px in both, 2 overlapping; RV only in the prediction (counts 0); MYO in neither (skipped)
    target[0, 0, :4] = 3
    pred[0, 0, :2] = 3
    pred[0, 1, :2] = 3
    pred[0, 3, 3] = 1
    # slice 1: identical RV; slice 2: nothing anywhere (NaN); slice 3: MYO in the target only
    target[1, 2, :] = 1
    pred[1, 2, :] = 1
    target[3, 1, 1] = 2
    per_slice, per_structure = per_slice_dice(pred, target)
    np.testing.assert_allclose(per_structure[0], [0.0, np.nan, 0.5])
    np.testing.assert_allclose(per_slice[[0, 1, 3]], [0.25, 1.0, 0.0])
    assert np.isnan(per_slice[2]) and np.isnan(per_structure[2]).all()


def test_score_segmenter_returns_the_segmentation_metrics_and_per_slice_dice(phantom):
    train, test = phantom["train"], phantom["test"]
    seg = train_segmenter(train.images, train.masks, tiny(steps=2), device="cpu", cache=False)
    out = score_segmenter(seg, test)
    assert {"dice_rv", "dice_myo", "dice_lv", "dice_mean", "hd95_mean", "anatomy_valid_frac"} <= set(out["metrics"])
    assert out["per_slice_dice"].shape == (len(test),) and out["per_structure_dice"].shape == (len(test), 3)
    assert out["meta"]["distance_unit"] == "mm" and out["meta"]["segmenter_id"] == seg.id
    assert score_segmenter(seg, test, distance_unit="px")["meta"]["distance_unit"] == "px"


# -- determinism and the cache ----------------------------------------------------------------------------------
def test_training_is_deterministic_on_the_cpu(phantom):
    train = phantom["train"]
    a = train_segmenter(train.images, train.masks, tiny(), device="cpu", cache=False)
    b = train_segmenter(train.images, train.masks, tiny(), device="cpu", cache=False)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert a.meta["loss_history"] == b.meta["loss_history"]
    c = train_segmenter(train.images, train.masks, tiny(seed=1), device="cpu", cache=False)
    assert any(not torch.equal(wa[k], v) for k, v in _weights(c).items())  # the check above can fail


def test_a_cached_segmenter_is_reused_without_training(phantom, monkeypatch):
    train = phantom["train"]
    first = train_segmenter(train.images, train.masks, tiny(), device="cpu")
    assert first.status == "trained" and first.path == SEGMENTERS.cache_path(first.spec.hash())
    assert first.path.is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached segmenter was trained again")

    monkeypatch.setattr(S, "_fit", no_training)
    again = train_segmenter(train.images, train.masks, tiny(), device="cpu")
    assert again.status == "reused" and again.id == first.id and again.meta == first.meta
    for k, v in _weights(first).items():
        assert torch.equal(again.model.state_dict()[k], v), k
    np.testing.assert_array_equal(again.predict(train.images[:8]), first.predict(train.images[:8]))
    # other pairs are another segmenter
    with pytest.raises(AssertionError, match="trained again"):
        train_segmenter(train.images[:-1], train.masks[:-1], tiny(), device="cpu")


def test_a_corrupt_cached_file_is_a_one_line_error_naming_it(phantom):
    train = phantom["train"]
    seg = train_segmenter(train.images, train.masks, tiny(steps=1), device="cpu")
    seg.path.write_bytes(seg.path.read_bytes()[:200])  # truncated
    with pytest.raises(CardiobenchError) as err:
        train_segmenter(train.images, train.masks, tiny(steps=1), device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and str(seg.path) in msg and "delete" in msg
    seg.path.write_bytes(b"not a torch file")
    with pytest.raises(CardiobenchError, match="not a PyTorch file"):
        load_segmenter(seg.path)


def test_a_file_with_foreign_or_damaged_contents_is_refused(phantom, tmp_path):
    train = phantom["train"]
    seg = train_segmenter(train.images, train.masks, tiny(steps=1), device="cpu", cache=False)
    state = seg.state()
    SEGMENTERS.save(tmp_path / "ok.pt", state)
    assert load_segmenter(tmp_path / "ok.pt").id == seg.id
    with pytest.raises(CardiobenchError, match="not 000000000000"):  # a valid file under another spec's name
        load_segmenter(tmp_path / "ok.pt", key="0" * 64)
    bad = {**state, "model": {k: v[..., :1] for k, v in state["model"].items()}}
    SEGMENTERS.save(tmp_path / "shapes.pt", bad)
    with pytest.raises(CardiobenchError, match="damaged") as err:
        load_segmenter(tmp_path / "shapes.pt")
    assert "\n" not in str(err.value)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CardiobenchError, match="not a cardiobench segmenter file"):
        load_segmenter(tmp_path / "other.pt")


def test_reference_segmenter_trains_the_default_spec_on_the_training_split(monkeypatch, phantom):
    calls = []

    def fake_train(images, masks, spec, *, device, progress):
        calls.append((images.shape, spec))
        return "seg"

    monkeypatch.setattr(S, "train_segmenter", fake_train)
    monkeypatch.setattr(S, "open_dataset", lambda name, **opts: type(
        "Src", (), {"load": staticmethod(lambda split: phantom[split])})())
    assert reference_segmenter("phantom", 32, {"train_patients": 2}) == "seg"
    (shape, spec), = calls
    assert shape == phantom["train"].images.shape and spec == SegmenterSpec(resolution=32)


# -- learning -----------------------------------------------------------------------------------------------------
def test_a_briefly_trained_segmenter_beats_an_untrained_one(phantom):
    """100 steps of the small network: mean Dice 0.61-0.88 on the phantom's test split over seeds 0-3 (0.88 with
    seed 0), an untrained one 0.13-0.19."""
    train, test = phantom["train"], phantom["test"]
    trained = train_segmenter(train.images, train.masks, tiny(steps=100, batch_size=16, lr=3e-3), device="cpu",
                              cache=False)
    untrained = train_segmenter(train.images, train.masks, tiny(steps=1, lr=1e-12), device="cpu", cache=False)
    good, bad = score_segmenter(trained, test), score_segmenter(untrained, test)
    assert good["metrics"]["dice_mean"] > 0.5
    assert good["metrics"]["dice_mean"] > bad["metrics"]["dice_mean"] + 0.3
    assert np.nanmean(good["per_slice_dice"]) > np.nanmean(bad["per_slice_dice"]) + 0.3
    assert trained.meta["final_loss"] < untrained.meta["final_loss"]
