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


# -- 3-D short-axis stacks: anisotropic and per-case spacing, empty structures -------------------------------------
def _cardiac_pairs() -> tuple[np.ndarray, np.ndarray]:
    """6 pairs of 8 x 32 x 32 plausible stacks (different hearts), with the empty-structure cases: a predicted
    volume without RV, a pair without MYO on both sides, a predicted LV only on the basal slices."""
    from cardiobench.testing.metrics import contract_volumes

    pred, target = contract_volumes(6, 8, 32, seed=0), contract_volumes(6, 8, 32, seed=1)
    pred[1][pred[1] == 1] = 0
    pred[2][pred[2] == 2] = 0
    target[2][target[2] == 2] = 0
    pred[3, 3:][pred[3, 3:] == 3] = 2
    return pred.astype(np.int64), target.astype(np.int64)


@pytest.mark.parametrize("spacing", [(10.0, 1.5, 1.5), "per-case"])
def test_3d_stacks_equal_to_monai_with_empty_structures(spacing):
    from cardiobench.metrics.volume import segmentation_scores_3d

    pred, target = _cardiac_pairs()
    if spacing == "per-case":
        spacing = np.random.default_rng(2).uniform([5.0, 1.3, 1.3], [10.0, 1.7, 1.7], size=(6, 3))
    monai_spacing = spacing.tolist() if isinstance(spacing, np.ndarray) else list(spacing)
    ref_dice = monai_metrics.compute_dice(_onehot(pred, 4), _onehot(target, 4), include_background=False,
                                          ignore_empty=False).numpy()
    with pytest.warns(UserWarning, match="all 0"):  # MONAI warns about the empty structures
        ref_hd = monai_metrics.compute_hausdorff_distance(_onehot(pred, 4), _onehot(target, 4),
                                                          include_background=False, percentile=95,
                                                          spacing=monai_spacing).numpy()
    ours_dice, ours_hd = dice(pred, target, num_classes=4), hd95(pred, target, spacing=spacing, num_classes=4)
    np.testing.assert_allclose(ours_dice, ref_dice, atol=1e-7)
    p_has = np.stack([(pred == k).any(axis=(1, 2, 3)) for k in (1, 2, 3)], axis=1)
    t_has = np.stack([(target == k).any(axis=(1, 2, 3)) for k in (1, 2, 3)], axis=1)
    defined = p_has & t_has
    assert defined.sum() == 16 and np.isfinite(ours_hd[defined]).all()
    np.testing.assert_allclose(ours_hd[defined], ref_hd[defined], rtol=2e-6)  # MONAI's float32 distances
    # the empty cases, by the ACDC conventions: both empty Dice 1, HD95 0; one empty Dice 0, HD95 missing
    assert ours_hd[2, 1] == 0.0 and ours_dice[2, 1] == 1.0
    assert np.isnan(ours_hd[1, 0]) and ours_dice[1, 0] == 0.0 and np.isnan(ours_hd).sum() == 1
    # the volume metric's 3-D Dice and HD95 are these, averaged
    out = segmentation_scores_3d(pred, target, spacing)
    assert out["dice3d_lv"] == pytest.approx(ref_dice[:, 2].mean(), abs=1e-7)
    assert out["hd95_3d_lv"] == pytest.approx(ref_hd[:, 2].mean(), rel=2e-6)
    assert out["hd95_3d_myo"] == pytest.approx(np.where(defined[:, 1], ref_hd[:, 1], 0.0).mean(), rel=2e-6)  # 2: 0
    assert out["hd95_3d_rv"] == pytest.approx(np.mean(ref_hd[defined[:, 0], 0]), rel=2e-6)  # 1 left out
    assert out["hd95_missing_3d"] == 1


def _brute_hd(p: np.ndarray, t: np.ndarray, spacing, q: float, k: int) -> np.ndarray:
    """Reference: MONAI's edges (scipy erosion with the face cross, outside = background), every pair of edge
    voxels (``cdist``), ``numpy.percentile``; both empty 0, one empty NaN."""
    from scipy.spatial.distance import cdist

    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (len(p), p.ndim - 1))
    out = np.full((len(p), k - 1), np.nan)
    for b in range(len(p)):
        for c in range(1, k):
            edges = []
            for m in (p[b] == c, t[b] == c):
                e = m & ~ndimage.binary_erosion(m, ndimage.generate_binary_structure(m.ndim, 1), border_value=0)
                edges.append(np.argwhere(e) * sp[b])
            if not len(edges[0]) and not len(edges[1]):
                out[b, c - 1] = 0.0
            elif len(edges[0]) and len(edges[1]):
                d = cdist(edges[0], edges[1])
                out[b, c - 1] = max(np.percentile(d.min(1), q), np.percentile(d.min(0), q))
    return out


@pytest.mark.parametrize("spacing", [(10.0, 1.5, 1.5), (1.0, 1.0, 1.0), (2.0, 0.9, 1.6), (6.0, 1.37, 1.37)])
@pytest.mark.parametrize("q", [95.0, 50.0, 100.0, 0.0])
def test_3d_hd_equals_every_pair_of_edge_voxels(spacing, q):
    """The ring bounds skip the search for most points (``functional`` docstring): the result must be the same
    order statistic of the same distances as comparing every pair, square or oblong pixels, thick or thin
    slices."""
    rng = np.random.default_rng(int(q))
    pred, target = _cardiac_pairs()
    near = np.roll(target, 1, axis=-1)
    near[:, ::3] = np.roll(near[:, ::3], -2, axis=-2)  # a prediction close to the truth: small distances
    blobs = np.stack([_blobs(rng, (5, 14, 12), 4) for _ in range(3)])
    for p, t in ((pred, target), (near, target), (blobs, np.roll(blobs, 1, axis=0))):
        np.testing.assert_allclose(hd95(p, t, spacing=spacing, percentile=q, num_classes=4),
                                   _brute_hd(p, t, spacing, q, 4), rtol=1e-12, atol=1e-12)


def test_2d_hd_and_one_hot_input_equal_every_pair_of_edge_voxels():
    rng = np.random.default_rng(3)
    p = np.stack([_blobs(rng, (20, 18), 4) for _ in range(4)])
    t = np.stack([_blobs(rng, (20, 18), 4) for _ in range(4)])
    for spacing in ((1.5, 1.5), (0.8, 2.1)):
        ref = _brute_hd(p, t, spacing, 95.0, 4)
        np.testing.assert_allclose(hd95(p, t, spacing=spacing), ref, rtol=1e-12)
        one_hot = hd95(_onehot(p, 4).numpy(), _onehot(t, 4).numpy(), spacing=spacing)
        np.testing.assert_allclose(one_hot, ref, rtol=1e-12)


def test_optimistic_bounds_are_caught_and_redone(monkeypatch):
    """The last guard of the fast percentile: were a level used although a voxel outside its rings could be as
    near as its bound (here: every level, with oblong pixels and thin slices), a known distance within the bound
    sends its pair back to the search, and the result stays exact."""
    from cardiobench.metrics import functional as F

    def every_level_used(spacing):
        offsets = np.concatenate(F._RING_OFFSETS)
        ring = np.concatenate([np.full(len(o), i) for i, o in enumerate(F._RING_OFFSETS)])
        dist = np.hypot(offsets[:, 0] * spacing[:, -2, None], offsets[:, 1] * spacing[:, -1, None])
        far = np.stack([dist[:, ring == i].max(1) for i in range(len(F.RINGS))], axis=1)
        bound = np.maximum.accumulate(far, axis=1)  # still a true upper bound of each level's distances
        return F._Levels(bound=bound, exact=np.full_like(bound, np.nan))

    searches = []
    real_nearest = F._Tree.nearest

    def counted_nearest(self, query, which):
        searches.append(int(which.sum()))
        return real_nearest(self, query, which)

    monkeypatch.setattr(F, "_level_table", every_level_used)
    monkeypatch.setattr(F._Tree, "nearest", counted_nearest)
    pred, target = _cardiac_pairs()
    spacing = (1.0, 0.9, 3.0)
    np.testing.assert_allclose(hd95(pred, target, spacing=spacing, num_classes=4),
                               _brute_hd(pred, target, spacing, 95.0, 4), rtol=1e-12)
    assert len(searches) > 2  # a second search, for the pairs whose counted points had to be measured
