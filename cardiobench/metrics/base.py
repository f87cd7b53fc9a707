"""The contract of a metric plugin, and the directions of every built-in metric value.

A metric plugin registers through ``register_metrics``::

    @hookimpl
    def register_metrics(register):
        register("my-metric", MyMetric, summary="...", tasks=("generation",),
                 direction={"my_value": "higher"})

The factory (called with no arguments) returns an object with ``name``, ``tasks``, ``directions`` and
``compute(ctx: MetricContext) -> dict[str, float]``, a flat mapping of value names to floats. Every value
it reports must have a direction: ``"lower"`` or ``"higher"`` is better (ranked by the leaderboard), or
``"none"`` (shown, never ranked: e.g. the spread of an estimate). ``cardiobench.testing.metrics`` is the
contract suite a plugin's tests can run on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cardiobench.data.base import GROUPS
from cardiobench.specs import TASKS  # noqa: F401 - re-exported: the tasks a metric may apply to

DIRECTIONS: tuple[str, ...] = ("lower", "higher", "none")


@dataclass
class MetricContext:
    """Everything a metric may need; fields a task does not have are ``None``.

    masks:     (N, H, W) uint8 label maps being evaluated (generated samples or predicted segmentations)
    spacing:   (N, 2) float64 pixel spacing in mm (generated masks get the data set's median spacing)
    target:    (N, H, W) ground truth (segmentation)
    real:      (R, H, W) real masks the samples are compared with: the test split (generation)
    train:     (T, H, W) training masks (generation: memorisation)
    evaluator: the domain evaluator (``cardiobench.metrics.evaluator.Evaluator``), generation; the image ruler
               (``cardiobench.metrics.image_ruler.ImageEvaluator``), synthesis
    labels:    (N,) int64 class requested for each mask (index into ``cardiobench.data.GROUPS``);
               ``None`` for unconditional generation (conditional metrics then report nothing)
    real_labels: (R,) int64 pathology group of each ``real`` mask
    images:    (N, H, W) float32 in [0, 1], generated MRI slices (synthesis: ``masks`` are their conditions)
    real_images: (N, H, W) float32 in [0, 1], the real slices of the same ``masks`` (synthesis)
    segmenter: the reference segmenter (``cardiobench.downstream.segmenter.Segmenter``), synthesis only
    volumes:   (N, D, H, W) uint8, the 3-D label maps being evaluated when the run is volumetric (``--dims 3``),
               else ``None``. ``masks`` then holds their N*D short-axis slices, so every slice metric runs as is
    real_volumes: (R, D, H, W) the real volumes (generation: the test split), or ``None``
    target_volumes: (N, D, H, W) ground-truth volumes (segmentation), or ``None``
    volume_spacing: (N, 3) float64 voxel spacing (slice, rows, cols) of ``volumes``, in ``distance_unit``
    device:    where tensors may go (``"cpu"``, ``"cuda"``, ...), from the engine
    options:   e.g. ``feature_extractor``, ``inception_weights``, ``kid_subset_size``
    settings:  what a metric actually used (adapted sizes...), merged into the result's metadata
    """

    task: str
    masks: np.ndarray
    spacing: np.ndarray
    target: np.ndarray | None = None
    real: np.ndarray | None = None
    train: np.ndarray | None = None
    evaluator: Any = None
    labels: np.ndarray | None = None
    real_labels: np.ndarray | None = None
    images: np.ndarray | None = None
    real_images: np.ndarray | None = None
    segmenter: Any = None
    volumes: np.ndarray | None = None
    real_volumes: np.ndarray | None = None
    target_volumes: np.ndarray | None = None
    volume_spacing: np.ndarray | None = None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    name: str
    tasks: tuple[str, ...]
    directions: dict[str, str]

    def compute(self, ctx: MetricContext) -> dict[str, float]: ...


#: metric-name suffix of each pathology group (``fid_nor``, ...), in ``GROUPS`` order
CLASS_KEYS: tuple[str, ...] = tuple(g.lower() for g in GROUPS)
#: the values of the ``conditional`` metric (class-conditional generation)
CONDITIONAL_KEYS: tuple[str, ...] = (
    "cond_accuracy",
    *(f"fid_{k}" for k in CLASS_KEYS),
    "fid_class_mean",
    *(f"kid_{k}" for k in CLASS_KEYS),
    "kid_class_mean",
)

#: every value the built-in metrics report -> its direction (also registered as plugin metadata)
METRIC_DIRECTIONS: dict[str, str] = {
    # fidelity (domain evaluator or Inception features)
    "fid": "lower",
    # FID / median real-vs-real FID of random halves of the real set (Woodland et al., MICCAI 2024)
    "fid_relative": "lower",
    "kid": "lower",
    "kid_std": "none",
    "is": "higher",
    "is_std": "none",
    "precision": "higher",
    "recall": "higher",
    "f_score": "higher",
    # anatomy (Painchaud et al. 2020)
    "anatomy_valid_frac": "higher",
    # memorisation / diversity
    "nn_dice_mean": "lower",
    "copy_frac": "lower",
    "diversity": "higher",
    # segmentation
    "dice_rv": "higher",
    "dice_myo": "higher",
    "dice_lv": "higher",
    "dice_mean": "higher",
    "hd95_rv": "lower",
    "hd95_myo": "lower",
    "hd95_lv": "lower",
    "hd95_mean": "lower",
    "hd95_missing": "lower",
    # segmentation ensembles (majority vote of k samples): the disagreement map, not ranked
    "uncertainty_mean": "none",
    "uncertainty_fg": "none",
}


def _anatomy_directions() -> dict[str, str]:
    from cardiobench.metrics.anatomy import CRITERIA

    return {f"anatomy_{name}": "lower" for name in CRITERIA}


METRIC_DIRECTIONS.update(_anatomy_directions())
METRIC_DIRECTIONS.update({k: "higher" if k == "cond_accuracy" else "lower" for k in CONDITIONAL_KEYS})


def metric_directions() -> dict[str, str]:
    """Value name -> direction for every metric registered now (built-ins and plugins)."""
    from cardiobench.plugins import registry

    out = dict(METRIC_DIRECTIONS)
    for comp in registry("metric"):
        value = comp.metadata.get("direction")
        if isinstance(value, str):
            out.setdefault(comp.name, value)
        elif isinstance(value, dict):
            for name, direction in value.items():
                out.setdefault(str(name), str(direction))
    return out
