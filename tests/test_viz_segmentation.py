"""The segmentation grid: image | ground truth | prediction | uncertainty, one row per case, under a header."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cardiobench.testing.metrics import contract_masks
from cardiobench.viz import colorize, heatmap, save_segmentation_grid


def _case(n: int = 5, size: int = 16):
    rng = np.random.default_rng(0)
    truth = contract_masks(n, size, seed=1)
    pred = contract_masks(n, size, seed=2)
    images = rng.uniform(0, 1, (n, size, size)).astype(np.float32)
    unc = rng.uniform(0, 1, (n, size, size)).astype(np.float32)
    return images, truth, pred, unc


def test_heatmap_ramp():
    rgb = heatmap(np.array([0.0, 0.25, 0.5, 0.75, 1.0, 2.0, -1.0]))
    assert rgb.tolist() == [[0, 0, 0], [128, 0, 0], [255, 0, 0], [255, 128, 0], [255, 255, 0], [255, 255, 0], [0, 0, 0]]


@pytest.mark.parametrize(("n", "scale"), [(3, 4), (8, 2)])
def test_grid_layout_and_colours(tmp_path, n, scale):
    images, truth, pred, unc = _case()
    path = save_segmentation_grid(tmp_path / "sub" / "seg.png", images, truth, pred, unc, n=n, scale=scale)
    assert path == tmp_path / "sub" / "seg.png" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["seg.png"]  # no temporary file left behind
    img = np.asarray(Image.open(path).convert("RGB"))
    rows, size, pad = min(n, len(truth)), truth.shape[-1], 2
    t = size * scale
    assert img.shape[1] == 4 * t + 5 * pad
    header = img.shape[0] - rows * (t + pad) - pad
    assert 10 <= header <= 60
    assert (img[:header] < 128).any()  # the column titles are drawn
    expected_grey = np.rint(images * 255).astype(np.uint8)
    for r in range(rows):
        y = header + pad + r * (t + pad)
        tiles = [img[y : y + t, pad + c * (t + pad) : pad + c * (t + pad) + t] for c in range(4)]
        up = lambda a: a.repeat(scale, 0).repeat(scale, 1)  # noqa: E731
        np.testing.assert_array_equal(tiles[0], up(np.repeat(expected_grey[r][..., None], 3, -1)))
        np.testing.assert_array_equal(tiles[1], up(colorize(truth[r])))
        np.testing.assert_array_equal(tiles[2], up(colorize(pred[r])))
        np.testing.assert_array_equal(tiles[3], up(heatmap(unc[r])))


def test_grid_rejects_mismatched_shapes(tmp_path):
    images, truth, pred, unc = _case()
    with pytest.raises(ValueError, match="uncertainty must match"):
        save_segmentation_grid(tmp_path / "x.png", images, truth, pred, unc[:, :8])
    with pytest.raises(ValueError, match="truth and pred"):
        save_segmentation_grid(tmp_path / "x.png", images, truth, pred[:2], unc)
    assert not (tmp_path / "x.png").exists()
