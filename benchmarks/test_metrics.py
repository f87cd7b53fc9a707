"""Dice and HD95 on 1,000 pairs of 128x128 label maps; domain-evaluator features (the FID ruler) of 1,000 masks;
3-D Dice and HD95 of short-axis stacks beside MONAI's; the ``volume`` metric.

The 3-D cases (``-k 3d``): 20 pairs of volumes of 16 x 64 x 64 and of 8 x 32 x 32 voxels, spacing 10 x 1.5 x 1.5 mm
(two different plausible hearts per pair, ``contract_volumes``), through ``cardiobench.metrics.functional`` (label
maps in) and MONAI's ``compute_dice`` / ``compute_hausdorff_distance(percentile=95, spacing=...)`` (one-hot
tensors in: the conversion is not timed against MONAI), values checked equal first. Compare the medians of a
group; run them on one thread (``CARDIOBENCH_BENCH_THREADS=1 OMP_NUM_THREADS=1``: the KD-tree searches then use one
thread, as MONAI's do).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cardiobench.metrics.evaluator import ASSETS, load_evaluator_file
from cardiobench.metrics.segmentation import dice_scores, hd95_distances, segmentation_scores

#: the 3-D cases: (volumes, slices, rows = cols)
VOLUME_SHAPES = [(20, 16, 64), (20, 8, 32)]
SPACING_3D = (10.0, 1.5, 1.5)


def test_dice_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(dice_scores, args=(pred, target), rounds=5, warmup_rounds=1)
    assert out.shape == (1000, 3) and np.all((out > 0) & (out <= 1))


def test_hd95_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(hd95_distances, args=(pred, target), rounds=3, warmup_rounds=1)
    assert out.shape == (1000, 3) and np.all(np.isfinite(out))


def test_dice_and_hd95_1000(benchmark, mask_pairs):
    benchmark.group = "segmentation metrics (1,000 pairs, 128x128, 3 structures)"
    pred, target = mask_pairs
    out = benchmark.pedantic(segmentation_scores, args=(pred, target), rounds=3, warmup_rounds=1)
    assert out["n_cases"] == 1000 and out["hd95_missing"] == 0


def test_fid_features_1000(benchmark, mask_pairs):
    """The phantom evaluator's 128-d features (what FID/KID/PR compare) of 1,000 masks, resized to 64x64."""
    benchmark.group = "FID feature extraction (1,000 masks)"
    ev = load_evaluator_file(ASSETS / "phantom-evaluator.pt")
    masks = mask_pairs[0]
    feats, logits = benchmark.pedantic(ev.predict, args=(masks,), rounds=3, warmup_rounds=1)
    assert feats.shape == (1000, ev.config.features) and np.all(np.isfinite(feats))


# -- 3-D: cardiobench beside MONAI --------------------------------------------------------------------------------
_VOLUMES: dict[tuple[int, int, int], dict] = {}


def _volume_pairs(shape: tuple[int, int, int]) -> dict:
    """Label maps (pred, target) and their one-hot tensors (MONAI's input), with both libraries' values (once)."""
    if shape not in _VOLUMES:
        from monai.metrics import compute_dice, compute_hausdorff_distance

        from cardiobench.metrics.functional import dice, hd95
        from cardiobench.testing.metrics import contract_volumes

        n, depth, size = shape
        pred, target = contract_volumes(n, depth, size, seed=0), contract_volumes(n, depth, size, seed=1)

        def onehot(a: np.ndarray) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.from_numpy(a).long(), 4).permute(0, 4, 1, 2, 3).float()

        yp, yt = onehot(pred), onehot(target)
        monai_dice = compute_dice(yp, yt, include_background=False).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's deprecation notes, once per (case, class)
            monai_hd = compute_hausdorff_distance(yp, yt, include_background=False, percentile=95,
                                                  spacing=list(SPACING_3D)).numpy()
        np.testing.assert_allclose(dice(pred, target, num_classes=4), monai_dice, atol=1e-6)
        np.testing.assert_allclose(hd95(pred, target, spacing=SPACING_3D, num_classes=4), monai_hd, rtol=2e-6)
        _VOLUMES[shape] = {"pred": pred, "target": target, "yp": yp, "yt": yt}
    return _VOLUMES[shape]


def _group(kind: str, shape: tuple[int, int, int]) -> str:
    n, depth, size = shape
    return f"3-D {kind} ({n} volumes {depth}x{size}x{size}, spacing 10x1.5x1.5 mm): cardiobench vs MONAI"


@pytest.mark.parametrize("shape", VOLUME_SHAPES, ids=lambda s: "x".join(map(str, s[1:])))
def test_dice_3d_cardiobench(benchmark, shape):
    from cardiobench.metrics.functional import dice

    benchmark.group = _group("Dice", shape)
    v = _volume_pairs(shape)
    out = benchmark.pedantic(dice, args=(v["pred"], v["target"]), kwargs={"num_classes": 4}, rounds=10,
                             warmup_rounds=1)
    assert out.shape == (shape[0], 3) and np.all((out > 0) & (out <= 1))


@pytest.mark.parametrize("shape", VOLUME_SHAPES, ids=lambda s: "x".join(map(str, s[1:])))
def test_dice_3d_monai(benchmark, shape):
    from monai.metrics import compute_dice

    benchmark.group = _group("Dice", shape)
    v = _volume_pairs(shape)
    out = benchmark.pedantic(compute_dice, args=(v["yp"], v["yt"]), kwargs={"include_background": False},
                             rounds=10, warmup_rounds=1)
    assert out.shape == (shape[0], 3)


@pytest.mark.parametrize("shape", VOLUME_SHAPES, ids=lambda s: "x".join(map(str, s[1:])))
def test_hd95_3d_cardiobench(benchmark, shape):
    from cardiobench.metrics.functional import hd95

    benchmark.group = _group("HD95", shape)
    v = _volume_pairs(shape)
    out = benchmark.pedantic(hd95, args=(v["pred"], v["target"]), kwargs={"spacing": SPACING_3D, "num_classes": 4},
                             rounds=7, warmup_rounds=1)
    assert out.shape == (shape[0], 3) and np.all(np.isfinite(out))


@pytest.mark.parametrize("shape", VOLUME_SHAPES, ids=lambda s: "x".join(map(str, s[1:])))
def test_hd95_3d_monai(benchmark, shape):
    from monai.metrics import compute_hausdorff_distance

    benchmark.group = _group("HD95", shape)
    v = _volume_pairs(shape)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's deprecation notes, once per (case, class)
            return compute_hausdorff_distance(v["yp"], v["yt"], include_background=False, percentile=95,
                                              spacing=list(SPACING_3D))

    out = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert out.shape == (shape[0], 3)


@pytest.mark.parametrize("task", ["generation", "segmentation"])
def test_volume_metric_3d(benchmark, task):
    """The ``volume`` metric plugin on 20 volumes of 8 x 32 x 32 against 20 others: anatomy (the 2-D criteria of
    160 slices are most of it), inter-slice Dice of both sets, and for segmentation 3-D Dice and HD95."""
    from cardiobench.metrics import MetricContext
    from cardiobench.plugins import get_component

    benchmark.group = "volume metric (20 volumes 8x32x32)"
    v = _volume_pairs((20, 8, 32))
    volumes, other = v["pred"], v["target"]
    generation = task == "generation"
    metric = get_component("metric", "volume").create()

    def run():
        ctx = MetricContext(task=task, masks=volumes.reshape(-1, 32, 32), spacing=np.full((160, 2), 1.5),
                            volumes=volumes, volume_spacing=np.tile(SPACING_3D, (20, 1)),
                            real_volumes=other if generation else None, target_volumes=None if generation else other)
        return metric.compute(ctx)

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out["volume_valid_frac"] == 1.0 and ("dice3d_mean" in out) is not generation
