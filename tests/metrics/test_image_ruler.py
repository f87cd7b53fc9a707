"""The image ruler: features, deterministic identity, caching, damaged files, image FID and its damages."""

from __future__ import annotations

import warnings
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.metrics import image_ruler as ir
from cardiobench.metrics.fidelity import FidelityWarning
from cardiobench.metrics.image_ruler import (
    IMAGE_DAMAGES,
    ImageEvaluatorConfig,
    as_images,
    get_image_evaluator,
    image_fidelity,
    load_image_evaluator,
    train_image_evaluator,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ImageEvaluatorConfig(size=32, width=8, features=16, epochs=1, batch_size=64, probe_epochs=20)


def _subset(split, every: int = 12):
    return split.images[::every], split.groups[::every]


@pytest.fixture(scope="module")
def tiny_ruler(phantom32):
    images, groups = _subset(phantom32["train"])
    return train_image_evaluator(images, groups, TINY)


def test_features_shape_dtype_resize_and_uint8(tiny_ruler, phantom32):
    x = phantom32["test"].images[:6]
    f = tiny_ruler.features(x)
    assert f.shape == (6, 16) and f.dtype == np.float64 and np.isfinite(f).all()
    big = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], scale_factor=2, mode="nearest")[:, 0].numpy()
    assert tiny_ruler.features(big).shape == (6, 16)  # any H: resized to the native 32 px
    u8 = np.round(x * 255).astype(np.uint8)
    np.testing.assert_allclose(tiny_ruler.features(u8), tiny_ruler.features(u8 / 255.0), rtol=1e-5, atol=1e-6)
    assert tiny_ruler.features(x[:, None]).shape == (6, 16)  # (N, 1, H, W) too
    assert tiny_ruler.features(x[:0]).shape == (0, 16)


def test_mis_scaled_images_are_refused():
    with pytest.raises(CardiobenchError, match=r"not in \[0, 1\]"):
        as_images(np.full((2, 8, 8), 200.0))
    with pytest.raises(CardiobenchError, match="grey images"):
        as_images(np.zeros((2, 3, 8, 8)))
    np.testing.assert_array_equal(as_images(np.array([[[-0.1, 1.2]]])), [[[0.0, 1.0]]])  # small overshoot: clipped


def test_training_is_deterministic_and_identified_by_weights(tiny_ruler, phantom32, tmp_path):
    images, groups = _subset(phantom32["train"])
    again = train_image_evaluator(images, groups, TINY)
    assert again.id == tiny_ruler.id and len(again.id) == 12 and int(again.id, 16) >= 0
    other = train_image_evaluator(images, groups, replace(TINY, seed=1))
    assert other.id != tiny_ruler.id
    path = tiny_ruler.save(tmp_path / "ruler.pt")
    loaded = load_image_evaluator(path)
    assert loaded.id == tiny_ruler.id and loaded.meta["train_fingerprint"] == tiny_ruler.meta["train_fingerprint"]
    x = phantom32["test"].images[:4]
    np.testing.assert_array_equal(loaded.features(x), tiny_ruler.features(x))


@pytest.mark.parametrize("objective", ["pathology", "ssl"])
def test_other_objectives_train(phantom32, tiny_ruler, objective, monkeypatch):
    calls = []
    real = ir.nt_xent
    monkeypatch.setattr(ir, "nt_xent", lambda *a: calls.append(1) or real(*a))
    images, groups = _subset(phantom32["train"], every=24)
    ev = train_image_evaluator(images, groups, replace(TINY, objective=objective))
    assert ev.meta["objective"] == objective and ev.features(images[:3]).shape == (3, 16)
    assert ev.id != tiny_ruler.id
    assert bool(calls) == (objective != "pathology")  # the contrastive term is trained where it should be
    assert "accuracy" in ev.meta and ev.meta["objective"] != TINY.objective
    with pytest.raises(CardiobenchError, match="unknown image evaluator objective"):
        ImageEvaluatorConfig(objective="nope")


@pytest.fixture
def small_phantom(phantom32, shared_cache, monkeypatch):
    """``get_image_evaluator`` on a subset of the 32-px phantom (what it loads is patched: fast)."""
    splits = {name: s.subset(slice(0, None, 8)) for name, s in phantom32.items()}
    monkeypatch.setattr(ir, "load_splits", lambda dataset, size, options=None: splits)
    return splits


def test_get_image_evaluator_trains_once_and_caches(small_phantom, monkeypatch):
    calls = []
    real = ir.build_image_evaluator

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ir, "build_image_evaluator", counting)
    with pytest.raises(CardiobenchError, match="no 32-px image evaluator for phantom"):
        get_image_evaluator("phantom", size=32, config=TINY, train=False)
    a = get_image_evaluator("phantom", size=32, config=TINY)
    b = get_image_evaluator("phantom", size=32, config=TINY)
    assert calls == ["phantom"] and a.id == b.id and a.path == b.path
    assert a.path.parent.name == "evaluators" and a.path.name.startswith("images-phantom-")
    c = get_image_evaluator("phantom", size=32, config=replace(TINY, seed=1))
    assert calls == ["phantom"] * 2 and c.path != a.path and c.id != a.id
    v = b.validity
    assert v is not None and v["kind"] == "image" and set(v["ordering"]) == {"real", "mismatched", "damaged", "blobs"}
    assert isinstance(v["valid"], bool) and (v["valid"] or v["flag"])
    assert set(v["damaged_per_transform"]) == set(IMAGE_DAMAGES) and v["size"] == 32
    assert v["ordering"]["real"] < v["ordering"]["blobs"]  # even a 1-epoch ruler tells real from no anatomy
    with pytest.raises(CardiobenchError, match="config has size 32"):
        get_image_evaluator("phantom", size=16, config=TINY)


def test_damaged_cache_file_is_one_line(small_phantom):
    ev = get_image_evaluator("phantom", size=32, config=TINY)
    ev.path.write_bytes(b"not a torch file")
    with pytest.raises(CardiobenchError) as err:
        get_image_evaluator("phantom", size=32, config=TINY)
    msg = str(err.value)
    assert "\n" not in msg and str(ev.path) in msg and "delete it" in msg
    ev.path.unlink()
    assert get_image_evaluator("phantom", size=32, config=TINY).id == ev.id  # retrained: the same ruler


@pytest.mark.slow
def test_phantom_end_to_end_at_16_px(shared_cache):
    """The real data path: the phantom at 16 px, trained on its whole training split and cached."""
    cfg = replace(TINY, size=16)
    a = get_image_evaluator("phantom", size=16, config=cfg)
    b = get_image_evaluator("phantom", size=16, config=cfg)
    assert a.id == b.id and a.meta["n_train"] > 1000 and a.meta["dataset"] == "phantom"
    assert a.validity["size"] == 16 and a.validity["ordering"]["real"] < a.validity["ordering"]["blobs"]


def test_wrong_files_are_one_line(tmp_path):
    torch.save({"format": "cardiobench-evaluator/1"}, tmp_path / "mask.pt")
    with pytest.raises(CardiobenchError, match="not a cardiobench image evaluator file"):
        load_image_evaluator(tmp_path / "mask.pt")
    torch.save({"format": ir.IMAGE_FORMAT, "config": {"size": 32}, "state_dict": {}}, tmp_path / "empty.pt")
    with pytest.raises(CardiobenchError, match="is damaged") as err:
        load_image_evaluator(tmp_path / "empty.pt")
    assert "\n" not in str(err.value)


def test_damages_are_seeded_and_keep_the_range(phantom32):
    x = phantom32["test"].images[:8]
    for name, fn in IMAGE_DAMAGES.items():
        a, b = fn(x, seed=3), fn(x, seed=3)
        assert a.shape == x.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1, name
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, x), name
    shuffled = ir.shuffle_patches(x, seed=1)
    np.testing.assert_array_equal(np.sort(shuffled.reshape(8, -1), 1), np.sort(x.reshape(8, -1), 1))
    fields = ir.random_intensity_fields(4, 32, seed=0)
    assert fields.shape == (4, 32, 32) and fields.min() == 0 and fields.max() == 1


def test_image_fidelity_floor_blur_and_uint8(tiny_ruler, phantom32):
    real = phantom32["test"].images[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidelityWarning)
        same = image_fidelity(real, real, tiny_ruler)
        blurred = image_fidelity(ir.blur(real, sigma=2.0), real, tiny_ruler)
        u8 = image_fidelity(np.round(real * 255).astype(np.uint8), np.round(real * 255).astype(np.uint8), tiny_ruler)
        f8 = image_fidelity(np.round(real * 255) / 255, np.round(real * 255) / 255, tiny_ruler)
    assert set(same) == {"image_fid", "image_kid", "image_kid_std", "image_fid_real", "image_fid_relative"}
    assert abs(same["image_fid"]) < 1e-3 * same["image_fid_real"] and same["image_fid_real"] > 0
    assert abs(same["image_kid"]) < 0.05 * max(abs(blurred["image_kid"]), 1e-12)
    # the floor is the same real set's halves: heavy blur must sit well above it
    assert blurred["image_fid"] > 3 * blurred["image_fid_real"] and blurred["image_fid_relative"] > 3
    for key in u8:
        assert u8[key] == pytest.approx(f8[key], rel=1e-4, abs=1e-6), key


def test_image_fidelity_reference_and_errors(tiny_ruler, phantom32):
    real, ref = phantom32["test"].images[:60], phantom32["val"].images[:80]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidelityWarning)
        a = image_fidelity(real[:30], real[30:], tiny_ruler, reference=ref)
        b = image_fidelity(real[:30], real[30:], tiny_ruler)
    assert a["image_fid"] == b["image_fid"] and a["image_fid_real"] != b["image_fid_real"]
    with pytest.raises(CardiobenchError, match="at least 2 images"):
        image_fidelity(real[:1], real, tiny_ruler)


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A state dict of the right shape for torch-fidelity's InceptionV3 (random weights)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", return_value={}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None),
    ):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_keys_from_a_local_file(tiny_ruler, phantom32, random_inception_weights):
    """Pipeline only (random weights; the network resizes to 96 px and FID uses its 64-d layer to stay fast)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    layer = staticmethod(lambda metric: "logits_unbiased" if metric == "isc" else "64")
    real = phantom32["test"].images[:12]
    with (
        warnings.catch_warnings(),
        mock.patch.object(cls, "INPUT_IMAGE_SIZE", 96),
        mock.patch.object(cls, "get_default_feature_layer_for_metric", layer),
    ):
        warnings.simplefilter("ignore", FidelityWarning)
        out = image_fidelity(real[:6], real[6:], tiny_ruler, inception_weights=random_inception_weights)
    assert {"image_inception_fid", "image_inception_kid", "image_inception_fid_real",
            "image_inception_fid_relative"} <= set(out)
    assert np.isfinite(out["image_inception_fid"]) and np.isfinite(out["image_fid"])
    with pytest.raises(CardiobenchError, match="Inception weights not found"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FidelityWarning)
        image_fidelity(real[:6], real[6:], tiny_ruler, inception_weights=random_inception_weights.parent / "no.pth")
