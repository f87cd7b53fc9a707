"""Every built-in metric passes the metric-plugin contract suite; directions reach the registry."""

from __future__ import annotations

from cardiobench.metrics import METRIC_DIRECTIONS, metric_directions
from cardiobench.plugins import registry
from cardiobench.testing.metrics import MetricContract


class TestFidelity(MetricContract):
    metric_name = "fidelity"
    needs_evaluator = True


class TestAnatomy(MetricContract):
    metric_name = "anatomy"


class TestMemorisation(MetricContract):
    metric_name = "memorisation"


class TestDice(MetricContract):
    metric_name = "dice"


class TestHD95(MetricContract):
    metric_name = "hd95"


class TestVolume(MetricContract):
    metric_name = "volume"


def test_builtins_registered_with_directions():
    names = {c.name for c in registry("metric")}
    assert {"fidelity", "anatomy", "memorisation", "dice", "hd95", "volume"} <= names
    directions = metric_directions()
    for key in (
        "fid",
        "kid",
        "is",
        "precision",
        "recall",
        "anatomy_valid_frac",
        "nn_dice_mean",
        "copy_frac",
        "diversity",
        "dice_lv",
        "dice_mean",
        "hd95_lv",
        "hd95_mean",
    ):
        assert directions[key] == METRIC_DIRECTIONS[key] in ("lower", "higher")


def test_public_api_segmentation():
    from cardiobench.metrics import evaluate_segmentation
    from cardiobench.testing.metrics import contract_masks

    m = contract_masks(4, 32)
    out = evaluate_segmentation(m, m, spacing=(1.5, 1.5))
    assert out["metrics"]["dice_mean"] == 1.0 and out["metrics"]["hd95_mean"] == 0.0
    assert out["metrics"]["anatomy_valid_frac"] == 1.0
    assert out["directions"]["dice_mean"] == "higher" and out["meta"]["hd95_unit"] == "mm"
