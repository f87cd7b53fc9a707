"""cb.metrics.dice / hd95: any number of classes, 2-D and 3-D, per-axis spacing; checked against MONAI and
against the benchmark's fast 2-D implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from cardiobench.metrics import dice, hd95
from cardiobench.metrics.segmentation import dice_scores, hd95_distances

monai_metrics = pytest.importorskip("monai.metrics")


def _blobs(rng, shape, k):
    x = ndimage.gaussian_filter(rng.normal(size=shape), 2)
    return np.digitize(x, np.quantile(x, np.linspace(0, 1, k + 1)[1:-1])).astype(np.int64)


def _onehot(x, k):
    return torch.nn.functional.one_hot(torch.from_numpy(x), k).movedim(-1, 1).float()


@pytest.mark.parametrize("shape,k,spacing", [((20, 24), 3, (1.5, 1.25)), ((6, 20, 24), 5, (8.0, 1.5, 1.25))])
def test_equal_to_monai_in_2d_and_3d_with_anisotropic_spacing(shape, k, spacing):
    rng = np.random.default_rng(0)
    p = np.stack([_blobs(rng, shape, k) for _ in range(3)])
    t = np.stack([_blobs(rng, shape, k) for _ in range(3)])
    ref_dice = monai_metrics.compute_dice(_onehot(p, k), _onehot(t, k), include_background=False,
                                          ignore_empty=False).numpy()
    np.testing.assert_allclose(dice(p, t), ref_dice, atol=1e-7)
    ref_hd = monai_metrics.compute_hausdorff_distance(_onehot(p, k), _onehot(t, k), include_background=False,
                                                      percentile=95, spacing=list(spacing)).numpy()
    np.testing.assert_allclose(hd95(p, t, spacing=spacing), ref_hd, rtol=1e-5)
    # one-hot input (B, C, *spatial) gives the same as label maps; torch in -> torch out
    out = dice(_onehot(p, k), _onehot(t, k))
    assert isinstance(out, torch.Tensor) and out.shape == (3, k - 1)
    np.testing.assert_allclose(out.numpy(), ref_dice, atol=1e-7)


def test_equal_to_the_fast_2d_benchmark_metrics():
    rng = np.random.default_rng(1)
    p = np.stack([_blobs(rng, (32, 32), 4) for _ in range(5)])
    t = np.stack([_blobs(rng, (32, 32), 4) for _ in range(5)])
    np.testing.assert_allclose(dice(p, t, num_classes=4), dice_scores(p, t), atol=1e-12)
    np.testing.assert_allclose(hd95(p, t, spacing=(1.5, 1.2), num_classes=4),
                               hd95_distances(p, t, spacing=(1.5, 1.2)), rtol=1e-5)


def test_empty_conventions_and_background():
    p = np.zeros((1, 8, 8), np.int64)
    t = np.zeros((1, 8, 8), np.int64)
    t[0, 2:5, 2:5] = 2
    d = dice(p, t, num_classes=3)
    assert d.tolist() == [[1.0, 0.0]]  # class 1 empty in both: 1; class 2 only in the target: 0
    h = hd95(p, t, num_classes=3)
    assert h[0, 0] == 0.0 and np.isnan(h[0, 1])
    assert dice(p, t, num_classes=3, include_background=True).shape == (1, 3)


@pytest.mark.parametrize("bad,match", [
    (dict(pred=np.zeros((2, 8, 8), np.int64), target=np.zeros((2, 8, 9), np.int64)), "differ in shape"),
    (dict(pred=np.full((1, 8, 8), 7), target=np.zeros((1, 8, 8), np.int64), num_classes=4), "outside 0..3"),
    (dict(pred=np.zeros((1, 8, 8), np.int64), target=np.zeros((1, 8, 8), np.int64), spacing=(1, 2, 3)),
     "2 values"),
])
def test_bad_input_is_a_clear_error(bad, match):
    spacing = bad.pop("spacing", None)
    with pytest.raises(ValueError, match=match):
        if spacing is None:
            dice(**bad)
        hd95(**bad, spacing=spacing)
