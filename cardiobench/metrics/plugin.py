"""Built-in metrics, registered through ``register_metrics`` exactly like a third-party plugin's.

Besides ``tasks`` and ``direction``, each registers what the rest of cardiobench reads instead of knowing
metric names (any metric plugin may declare the same):

``default``        ``True``: computed by a run that names no metrics (``eval.metrics = []``). Only built-in
                   metrics are; an installed plugin's metric is computed when a run names it.
``order``          position among the metrics of a task (display and computation order; lower first).
``headline``       the values a leaderboard shows first and never truncates (the rest: ``--all-metrics``).
``sort_key``       the value boards of the metric's tasks are ranked by when ``--sort`` is not given.
``counts``         value -> the count shown beside it (HD95 figure -> pairs it left out as missing).
``uses_evaluator`` / ``needs_labels``: it measures with the domain evaluator / only on class-conditional runs.
``needs_volumes``  it measures only volumetric runs (``ctx.volumes``; it reports nothing on a 2-D run), so the
                   metric contract suite (``cardiobench.testing.metrics``) gives it 3-D contexts.
"""

from __future__ import annotations

from typing import ClassVar

from cardiobench.hookspecs import hookimpl
from cardiobench.metrics.base import CONDITIONAL_KEYS, METRIC_DIRECTIONS, MetricContext
from cardiobench.metrics.segmentation import STRUCTURE_KEYS
from cardiobench.metrics.synthesis import FaithfulnessMetric, ImageFidelityMetric
from cardiobench.metrics.utility import UtilityMetric
from cardiobench.metrics.volume import VOLUME_DIRECTIONS


def _directions(names) -> dict[str, str]:
    return {n: METRIC_DIRECTIONS[n] for n in names}


class FidelityMetric:
    """FID, relative FID, KID, IS and precision/recall (torch-fidelity) with the domain evaluator (or Inception).

    ``fid_relative`` = ``fid`` / the median FID between random halves of the real set (Woodland et al., MICCAI
    2024). The halves come from ``ctx.options["fid_real_halves"]`` when the caller measured them once for
    several contexts (``evaluate_generation`` does, on the test split, so the reference row shares them), else
    from ``ctx.real``; what was used is in ``ctx.settings["fid_real_halves"]``.
    """

    name = "fidelity"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(("fid", "fid_relative", "kid", "kid_std", "is", "is_std", "precision", "recall",
                              "f_score"))
    meta: ClassVar[dict] = {"order": 0, "headline": ("fid", "kid", "is"), "sort_key": "fid", "uses_evaluator": True,
                            "real_halves": True}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.fidelity import fidelity_metrics, real_reference, relative_fid

        opts = ctx.options
        ruler = {
            "evaluator_path": getattr(ctx.evaluator, "path", None),
            "feature_extractor": opts.get("feature_extractor", "domain"),
            "inception_weights": opts.get("inception_weights"),
            "device": ctx.device,
        }
        out = fidelity_metrics(
            ctx.masks,
            ctx.real,
            **ruler,
            kid_subset_size=opts.get("kid_subset_size"),
            isc_splits=opts.get("isc_splits"),
        )
        ctx.settings.update(out.pop("_settings"))
        halves = opts["fid_real_halves"] if "fid_real_halves" in opts else real_reference(ctx.real, **ruler)
        ctx.settings["fid_real_halves"] = halves
        fid = out.pop("fid")
        return {"fid": fid, "fid_relative": relative_fid(fid, halves), **out}


class ConditionalMetric:
    """Conditional generation: the evaluator's accuracy on the requested classes, FID/KID per class."""

    name = "conditional"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(CONDITIONAL_KEYS)
    meta: ClassVar[dict] = {"order": 1, "headline": ("cond_accuracy",), "uses_evaluator": True, "needs_labels": True}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        if ctx.labels is None:  # an unconditional run: nothing to measure, nothing invented
            return {}
        from cardiobench.metrics.conditional import conditional_metrics

        opts = ctx.options
        out = conditional_metrics(
            ctx.masks,
            ctx.labels,
            ctx.real,
            ctx.real_labels,
            evaluator=ctx.evaluator,
            feature_extractor=opts.get("feature_extractor", "domain"),
            inception_weights=opts.get("inception_weights"),
            device=ctx.device,
            kid_subset_size=opts.get("kid_subset_size"),
        )
        ctx.settings.update(out.pop("_settings"))
        return out


class AnatomyMetric:
    """Anatomical plausibility (Painchaud et al. 2020): fraction valid and maps breaking each criterion."""

    name = "anatomy"
    tasks: ClassVar[tuple[str, ...]] = ("generation", "segmentation")
    directions = {k: v for k, v in METRIC_DIRECTIONS.items() if k.startswith("anatomy_")}
    meta: ClassVar[dict] = {"order": 5, "headline": ("anatomy_valid_frac",)}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.anatomy import evaluate_anatomy

        unit = ctx.options.get("distance_unit", "mm")  # px: distance thresholds at a nominal 1.5 mm pixel
        out = evaluate_anatomy(ctx.masks, ctx.spacing, unit)
        ctx.settings["anatomy_n"] = out.pop("anatomy_n")
        ctx.settings["anatomy_unit"] = unit
        return out


class MemorisationMetric:
    """Nearest-training-mask Dice (mean, copies > 0.95) and diversity (1 - mean pairwise Dice)."""

    name = "memorisation"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(("nn_dice_mean", "copy_frac", "diversity"))
    meta: ClassVar[dict] = {"order": 4}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.memorisation import evaluate_memorisation

        return evaluate_memorisation(ctx.masks, ctx.train, device=ctx.device)


class DiceMetric:
    """Dice per structure (RV, MYO, LV) and their mean; ACDC empty-mask conventions."""

    name = "dice"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    directions = _directions([f"dice_{k}" for k in STRUCTURE_KEYS] + ["dice_mean"])
    meta: ClassVar[dict] = {"order": 2, "headline": ("dice_mean",), "sort_key": "dice_mean"}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.segmentation import dice_scores

        d = dice_scores(ctx.masks, ctx.target)
        out = {f"dice_{k}": float(d[:, j].mean()) for j, k in enumerate(STRUCTURE_KEYS)}
        out["dice_mean"] = float(d.mean(1).mean())
        return out


class HD95Metric:
    """95th-percentile Hausdorff distance per structure in mm or px (mean over defined cases) and missing count.

    The unit is the spacing's, ``ctx.options["distance_unit"]`` (mm when not given); it is recorded in
    ``ctx.settings["hd95_unit"]``. A (case, structure) pair with exactly one mask empty has no HD95: it is left
    out of the means and counted (``hd95_missing``, per structure ``hd95_missing_rv``...; the ``counts``
    metadata puts each count beside its figure), and ``hd95_penalised_mean`` scores it the image diagonal
    (the challenge-report convention; ``cardiobench.metrics.segmentation``).
    """

    name = "hd95"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    directions = {
        **_directions([f"hd95_{k}" for k in STRUCTURE_KEYS] + ["hd95_mean", "hd95_missing"]),
        **{f"hd95_missing_{k}": "lower" for k in STRUCTURE_KEYS},
        "hd95_penalised_mean": "lower",
    }
    meta: ClassVar[dict] = {
        "order": 3,
        "headline": ("hd95_mean", "hd95_penalised_mean"),
        "counts": {"hd95_mean": "hd95_missing", "hd95_penalised_mean": "hd95_missing",
                   **{f"hd95_{k}": f"hd95_missing_{k}" for k in STRUCTURE_KEYS}},
    }

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.segmentation import segmentation_scores

        out = segmentation_scores(ctx.masks, ctx.target, ctx.spacing, unit=ctx.options.get("distance_unit", "mm"))
        ctx.settings["hd95_unit"] = out["hd95_unit"]
        return {k: v for k, v in out.items() if k.startswith("hd95_") and k != "hd95_unit"}


class VolumeMetric:
    """Volumes (3-D runs): anatomy through the slices, inter-slice consistency, 3-D Dice and HD95 (segmentation).

    Reports nothing on a 2-D run (``ctx.volumes`` is None), as ``conditional`` does without labels. The values
    and their definitions: ``cardiobench.metrics.volume``. Generation compares the inter-slice consistency with
    the real test volumes (``ctx.real_volumes``), segmentation with the ground truth (``ctx.target_volumes``),
    which also gives the 3-D Dice and HD95, in ``ctx.options["distance_unit"]`` (mm when not given).
    """

    name = "volume"
    tasks: ClassVar[tuple[str, ...]] = ("generation", "segmentation")
    directions = dict(VOLUME_DIRECTIONS)
    meta: ClassVar[dict] = {
        "order": 6,
        # a board shows the values its task has: generation volume_valid_frac, segmentation both
        "headline": ("dice3d_mean", "volume_valid_frac"),
        "counts": {"hd95_3d_mean": "hd95_missing_3d", "hd95_3d_penalised_mean": "hd95_missing_3d",
                   **{f"hd95_3d_{k}": f"hd95_missing_3d_{k}" for k in STRUCTURE_KEYS}},
        "needs_volumes": True,
    }

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        if ctx.volumes is None:  # a 2-D run: nothing to measure, nothing invented
            return {}
        from cardiobench.metrics.volume import volume_metrics

        unit = ctx.options.get("distance_unit", "mm")
        real = ctx.real_volumes if ctx.task == "generation" else ctx.target_volumes
        out = volume_metrics(ctx.volumes, ctx.volume_spacing, unit=unit, real=real,
                             target=ctx.target_volumes if ctx.task == "segmentation" else None)
        ctx.settings["volume_n"] = int(len(ctx.volumes))
        ctx.settings["volume_unit"] = unit
        return out


BUILTIN_METRICS = (FidelityMetric, ConditionalMetric, AnatomyMetric, MemorisationMetric, DiceMetric, HD95Metric,
                   VolumeMetric, ImageFidelityMetric, FaithfulnessMetric, UtilityMetric)


@hookimpl
def register_metrics(register):
    for cls in BUILTIN_METRICS:
        register(
            cls.name,
            cls,
            summary=(cls.__doc__ or "").strip().splitlines()[0],
            tasks=cls.tasks,
            direction=dict(cls.directions),
            default=True,
            **cls.meta,
        )
