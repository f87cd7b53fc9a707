"""Whole stacks as volumes (``--dims 3``): ``cardiobench.data.stacks`` and the data sets opened with ``depth``."""

from __future__ import annotations

import numpy as np
import pytest
from fake_acdc_h5 import build_fake_h5

from cardiobench.data import open_dataset
from cardiobench.data.phantom import PhantomSource
from cardiobench.data.stacks import heart_extent, preprocess_stack
from cardiobench.errors import CardiobenchError
from cardiobench.testing.datasets import DatasetContract


class TestPhantomVolumesContract(DatasetContract):
    expect_size = 16
    depth = 6
    check_centred = True
    require_nonempty = ("train", "val", "test")

    def make_source(self):
        return PhantomSource(size=16, train_patients=3, test_patients=1, cache=False, depth=6)


def stack(z: int = 5, h: int = 40, w: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """An (h, w, z) volume whose labelled slices are 1..z-2 (first and last empty), a disc drifting right and
    shrinking toward the apex, with the image equal to the label / 3."""
    mask = np.zeros((h, w, z), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for k in range(1, z - 1):
        r = 10 - 2 * k
        mask[:, :, k][(yy - 20) ** 2 + (xx - 20 - 2 * k) ** 2 < r * r] = 3
        mask[:, :, k][((yy - 20) ** 2 + (xx - 20 - 2 * k) ** 2 >= r * r)
                      & ((yy - 20) ** 2 + (xx - 20 - 2 * k) ** 2 < (r + 2) ** 2)] = 2
    return mask.astype(np.float32) / 3.0, mask


def test_heart_extent_is_the_labelled_slices():
    _, mask = stack()
    assert heart_extent(mask) == (1, 3)
    assert heart_extent(np.zeros((4, 4, 3), np.uint8)) is None


def test_resample_fills_the_depth_and_scales_the_slice_spacing():
    image, mask = stack()
    (out,) = preprocess_stack(image, mask, (1.5, 1.5), 10.0, size=16, depth=6, margin=0.1)
    assert out.mask.shape == out.image.shape == (6, 16, 16)
    assert out.source_slices == 3 and out.dropped == 0
    # 3 labelled source slices over 6: each copied twice, in order (base first: the largest disc)
    sizes = (out.mask > 0).reshape(6, -1).sum(axis=1)
    assert sizes[0] == sizes[1] > sizes[2] == sizes[3] > sizes[4] == sizes[5] > 0
    side = out.spacing[1] * 16 / 1.5  # the crop's side in source pixels
    assert out.spacing[0] == pytest.approx(10.0 * 3 / 6)
    assert side == pytest.approx(round(side)) and out.spacing[1] == out.spacing[2]
    np.testing.assert_allclose(out.image[out.mask == 3], 1.0, atol=0.2)


def test_one_crop_for_the_whole_stack_keeps_the_slices_registered():
    """The disc drifts 2 px right per slice in the source; with one crop it still does (scaled), where a crop
    per slice would centre every slice on its own."""
    image, mask = stack(z=5, h=60, w=80)
    (out,) = preprocess_stack(image, mask, (1.0, 1.0), 1.0, size=32, depth=3, margin=0.1)
    centres = [np.argwhere(m > 0)[:, 1].mean() for m in out.mask]
    assert centres[0] < centres[1] < centres[2]


def test_pad_keeps_the_spacing_and_counts_what_it_drops():
    image, mask = stack(z=7)  # 5 labelled slices
    (padded,) = preprocess_stack(image, mask, (1.0, 1.0), 8.0, size=16, depth=9, margin=0.1, mode="pad")
    filled = padded.mask.reshape(9, -1).any(axis=1)
    assert filled.tolist() == [False, False, True, True, True, True, True, False, False]
    assert padded.spacing[0] == 8.0 and padded.dropped == 0
    (cut,) = preprocess_stack(image, mask, (1.0, 1.0), 8.0, size=16, depth=3, margin=0.1, mode="pad")
    assert cut.dropped == 2 and cut.mask.reshape(3, -1).any(axis=1).all()


def test_rotated_copies_are_rigid():
    image, mask = stack()
    outs = preprocess_stack(image, mask, (1.0, 1.0), 5.0, size=32, depth=3, margin=0.1, angles=(90.0, 180.0))
    assert len(outs) == 3
    for rotated in outs[1:]:
        # label areas survive a rotation up to the nearest-neighbour resampling's rounding
        for k in range(3):
            a, b = (outs[0].mask[k] > 0).sum(), (rotated.mask[k] > 0).sum()
            assert abs(int(a) - int(b)) <= 0.15 * a


def test_bad_depth_options_are_one_line_errors():
    with pytest.raises(CardiobenchError, match="depth"):
        PhantomSource(size=16, depth=1)
    with pytest.raises(CardiobenchError, match="depth_mode"):
        PhantomSource(size=16, depth=4, depth_mode="stretch")
    with pytest.raises(CardiobenchError, match="slice_spacing"):
        PhantomSource(size=16, depth=4, slice_spacing=-1)


def test_phantom_volumes_carry_mm_spacing_and_describe(shared_cache):
    src = PhantomSource(size=16, train_patients=2, test_patients=1, depth=4)
    desc = src.describe()
    assert desc["dims"] == 3 and desc["item_shape"] == [4, 16, 16]
    train = src.load("train")
    assert desc["splits"]["train"]["volumes"] == len(train)
    assert desc["splits"]["train"]["slices"] == 4 * len(train)
    # the phantom's slices are 5-10 mm apart and 8-11 per stack: resampled to 4, 10-28 mm
    assert 9.0 < desc["splits"]["train"]["slice_spacing"]["median"] < 30.0
    assert desc["volumes"]["depth_mode"] == "resample"
    assert src.cache_path().name.startswith("phantom-4x16px-")


def test_acdc_h5_volumes_measure_the_slice_axis_in_source_slices(tmp_path):
    root = build_fake_h5(tmp_path)
    src = open_dataset("acdc-h5", size=16, data_root=str(root), depth=4, split="ssl4mis", cache=False)
    test = src.load("test")
    assert test.masks.shape[1:] == (4, 16, 16)
    # 4-5 source slices resampled to 4: the slice axis in source slices (the files store no thickness)
    assert set(np.round(test.spacing[:, 0], 3)) <= {1.0, 1.25}
    given = open_dataset("acdc-h5", size=16, data_root=str(root), depth=4, split="ssl4mis", cache=False,
                         slice_spacing=10.0, spacing_mm=1.5)
    assert set(np.round(given.load("test").spacing[:, 0], 3)) <= {10.0, 12.5}


def test_acdc_nifti_volumes_take_the_thickness_from_the_header(fake_acdc):
    src = open_dataset("acdc", size=16, data_root=str(fake_acdc), depth=4, cache=False)
    train = src.load("train")
    assert train.masks.shape[1:] == (4, 16, 16) and train.spacing.shape == (len(train), 3)
    assert src.describe()["spacing_unit"] == "mm"
    # the thickness of the fake files (resampled from n source slices to 4) is in mm, not in slices
    n = train.slice_index.astype(np.float64)
    thickness = train.spacing[:, 0] * 4 / n
    assert np.all(thickness > 1.5), thickness
