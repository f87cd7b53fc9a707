"""What is diffused and what conditions (``cardiobench.data.pairs``), and the ``pairs`` data set of generated pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cardiobench.data import open_dataset
from cardiobench.data.pairs import condition_maps, diffused_items, diffuses, map_channels, paired_maps
from cardiobench.data.pairs_npz import write_pairs
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import get_component


def _pair(n: int = 6, size: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size), dtype=np.float32), rng.integers(0, 4, (n, size, size)).astype(np.uint8)


@pytest.mark.parametrize("name", ["onehot", "bits"])
def test_a_mask_representation_diffuses_the_mask_and_is_conditioned_on_the_image(name):
    rep = get_component("representation", name).create()
    images, masks = _pair()
    assert diffuses(rep) == "mask" and map_channels(rep) == 1
    assert np.array_equal(diffused_items(rep, masks, images), masks)
    maps = paired_maps(rep, masks, images)
    assert maps.shape == (6, 1, 8, 8)
    assert torch.allclose(maps[:, 0], torch.from_numpy(images) * 2 - 1)
    assert torch.equal(condition_maps(rep, images), maps)


def test_the_image_representation_diffuses_the_image_and_is_conditioned_on_the_one_hot_mask():
    rep = get_component("representation", "mri").create()
    images, masks = _pair()
    assert diffuses(rep) == "image" and map_channels(rep) == 4
    grey = diffused_items(rep, masks, images)
    assert grey.dtype == np.uint8 and np.abs(grey / 255.0 - images).max() <= 0.5 / 255 + 1e-6
    maps = paired_maps(rep, masks, images)
    assert maps.shape == (6, 4, 8, 8) and set(maps.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(maps.argmax(1), torch.from_numpy(masks).long())
    # encode -> decode gives the grey levels back; any tensor decodes to valid grey levels
    x = rep.encode(torch.from_numpy(grey))
    assert x.shape == (6, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(rep.decode(x), torch.from_numpy(grey))
    assert rep.decode(torch.tensor([[[[-7.0, 0.0, 9.0, float("nan")]]]])).tolist() == [[[0, 128, 255, 128]]]


def test_written_pairs_read_back_as_a_data_set(tmp_path):
    images, masks = _pair(60, 32, seed=1)
    groups = np.arange(60) % 5
    write_pairs(tmp_path, images, masks, groups, generator_run="abc")
    meta = json.loads((tmp_path / "pairs.json").read_text())
    assert meta["format"] == "cardiobench-pairs/1" and meta["n"] == 60 and meta["generator_run"] == "abc"
    source = open_dataset(None, data_root=tmp_path, size=32)  # the folder alone selects the data set
    assert source.name == "pairs"
    splits = {k: source.load(k) for k in ("train", "val", "test")}
    assert sum(len(s) for s in splits.values()) == 60 and all(len(s) for s in splits.values())
    ids = [set(s.patients) for s in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    got = splits["train"]
    index = np.array([int(p.removeprefix("pair")) for p in got.patients])
    assert np.array_equal(got.masks, masks[index]) and np.array_equal(got.groups, groups[index])
    assert np.abs(got.images - images[index]).max() <= 0.5 / 255 + 1e-6


def test_pairs_errors_are_one_line(tmp_path):
    images, masks = _pair(20, 32)
    write_pairs(tmp_path / "ok", images, masks)
    with pytest.raises(CardiobenchError, match="not 16x16.*--resolution 32"):
        open_dataset("pairs", data_root=tmp_path / "ok", size=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CardiobenchError, match="holds no pairs.npz"):
        open_dataset("pairs", data_root=tmp_path / "empty", size=32)
    bad = masks.copy()
    bad[0, 0, 0] = 7
    np.savez(tmp_path / "ok" / "pairs.npz", images=(images * 255).astype(np.uint8), masks=bad,
             groups=np.zeros(20, dtype=np.int64))
    with pytest.raises(CardiobenchError, match="labels outside 0..3"):
        open_dataset("pairs", data_root=tmp_path / "ok", size=32)
    with pytest.raises(CardiobenchError, match="square"):
        write_pairs(tmp_path / "x", images[:, :16], masks)
