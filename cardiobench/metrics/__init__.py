"""Evaluation: FID/KID/IS/precision-recall with a domain ruler, Dice/HD95, anatomy, memorisation.

Public API (see ``docs/metrics.md``)::

    from cardiobench.metrics import evaluate_generation, evaluate_segmentation, METRIC_DIRECTIONS
"""

from cardiobench.metrics.api import evaluate_generation, evaluate_segmentation
from cardiobench.metrics.base import METRIC_DIRECTIONS, MetricContext, metric_directions

__all__ = ["METRIC_DIRECTIONS", "MetricContext", "evaluate_generation", "evaluate_segmentation", "metric_directions"]
