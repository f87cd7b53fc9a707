"""cardiobench.viz: colour-coded masks and grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cardiobench.data.tensors import masks_to_onehot
from cardiobench.viz import INVALID_COLOUR, PALETTE, colorize, mask_grid, overlay, save_grid


def masks(n=5, size=16):
    m = np.zeros((n, size, size), np.uint8)
    m[:, 4:12, 4:12] = 2
    m[:, 6:10, 6:10] = 3
    m[:, 1:4, 4:12] = 1
    return m


def test_colorize_black_background_distinct_colours():
    rgb = colorize(masks())
    assert rgb.shape == (5, 16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb[:, 0, 0] == 0).all()
    assert len({tuple(c) for c in PALETTE}) == 4
    assert tuple(rgb[0, 2, 5]) == tuple(PALETTE[1]) and tuple(rgb[0, 8, 8]) == tuple(PALETTE[3])
    assert colorize(masks()[0]).shape == (16, 16, 3)


def test_colorize_accepts_onehot_and_flags_invalid_labels():
    m = masks()
    np.testing.assert_array_equal(colorize(masks_to_onehot(m).numpy()), colorize(m))
    bad = m.copy()
    bad[0, 0, 0] = 9
    assert tuple(colorize(bad)[0, 0, 0]) == INVALID_COLOUR


def test_mask_grid_layout_with_and_without_images():
    m = masks(5)
    g = mask_grid(m, nrow=2, scale=3, pad=2)
    assert isinstance(g, Image.Image) and g.size == (2 * 48 + 3 * 2, 3 * 48 + 4 * 2)
    images = np.random.default_rng(0).random((5, 16, 16)).astype(np.float32)
    pairs = mask_grid(m, nrow=5, images=images, scale=1, pad=2)
    assert pairs.size == (5 * 32 + 6 * 4, 16 + 2 * 2)  # each image beside its mask, wider gaps between pairs
    labelled = mask_grid(m, nrow=5, images=images, row_labels=["NOR"])
    assert labelled.width > mask_grid(m, nrow=5, images=images).width


def test_mask_grid_rejects_mismatched_images():
    with pytest.raises(ValueError, match="images must match masks"):
        mask_grid(masks(3), images=np.zeros((2, 16, 16)))


def test_overlay_and_save_grid(tmp_path):
    m = masks(2)
    over = overlay(np.full((2, 16, 16), 0.5, np.float32), m)
    assert over.shape == (2, 16, 16, 3) and (over[:, 0, 0] == 128).all()
    path = save_grid(tmp_path / "sub" / "grid.png", m, images=np.zeros((2, 16, 16)))
    assert Image.open(path).format == "PNG"
