"""Evaluation: FID/KID/IS/precision-recall with a domain ruler, Dice/HD95, anatomy, memorisation.

Public API (see ``docs/metrics.md``)::

    from cardiobench.metrics import evaluate_generation, evaluate_segmentation, METRIC_DIRECTIONS
    from cardiobench.metrics import dice, hd95   # functional, any classes, 2-D or 3-D (metrics/functional.py)
"""

from cardiobench.metrics.api import evaluate_generation, evaluate_segmentation
from cardiobench.metrics.base import METRIC_DIRECTIONS, MetricContext, metric_directions
from cardiobench.metrics.functional import dice, hd95

__all__ = ["METRIC_DIRECTIONS", "MetricContext", "dice", "evaluate_generation", "evaluate_segmentation", "hd95",
           "metric_directions"]
