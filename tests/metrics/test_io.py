"""Reading sample folders: .npy, .npz, PNG (grey or palette colours), NIfTI; one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cardiobench.errors import DataError
from cardiobench.metrics.io import read_masks
from cardiobench.testing.metrics import contract_masks
from cardiobench.viz import colorize


def test_every_format(tmp_path):
    import nibabel as nib

    m = contract_masks(6, 32)
    np.save(tmp_path / "a.npy", m[:2])
    np.savez(tmp_path / "b.npz", masks=m[2:3], other=np.zeros(3))
    Image.fromarray(m[3]).save(tmp_path / "c.png")
    Image.fromarray(colorize(m[4])).save(tmp_path / "d.png")
    nib.save(nib.Nifti1Image(m[5][:, :, None].astype(np.int16), np.eye(4)), str(tmp_path / "e.nii.gz"))
    (tmp_path / "notes.txt").write_text("ignored")
    masks, names = read_masks(tmp_path)
    np.testing.assert_array_equal(masks, m)
    assert names == ["a.npy", "a.npy", "b.npz", "c.png", "d.png", "e.nii.gz"]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 8, 8), 5, np.uint8), "labels outside 0..3"),
        (np.zeros((2, 8, 9), np.uint8), "must be square"),
        (np.zeros((2, 2, 2, 8, 8), np.uint8), "wrong shape"),
        (np.zeros((2, 4, 8, 9), np.uint8), "must be square"),
        (np.full((8, 8), 0.5), "whole numbers"),
    ],
)
def test_bad_arrays_name_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message) as exc:
        read_masks(path)
    assert "bad.npy" in str(exc.value) and "\n" not in str(exc.value)


def test_volumes_from_arrays_not_from_images(tmp_path):
    vols = np.random.default_rng(0).integers(0, 4, (3, 4, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "v.npz", masks=vols)
    masks, names = read_masks(tmp_path / "v.npz")
    np.testing.assert_array_equal(masks, vols)
    np.save(tmp_path / "w.npy", np.zeros((1, 2, 8, 8), np.uint8))  # a folder mixing depths is refused
    with pytest.raises(DataError, match="wrong shape 2x8x8: the other masks are 4x8x8"):
        read_masks(tmp_path)


def test_mixed_sizes_and_missing(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((1, 8, 8), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((1, 16, 16), np.uint8))
    with pytest.raises(DataError, match="b.npy"):
        read_masks(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_masks(tmp_path / "nope")
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="x.png"):
        read_masks(tmp_path / "x.png")
