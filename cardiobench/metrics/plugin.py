"""Built-in metrics, registered through ``register_metrics`` exactly like a third-party plugin's."""

from __future__ import annotations

from typing import ClassVar

from cardiobench.hookspecs import hookimpl
from cardiobench.metrics.base import CONDITIONAL_KEYS, METRIC_DIRECTIONS, MetricContext
from cardiobench.metrics.segmentation import STRUCTURE_KEYS


def _directions(names) -> dict[str, str]:
    return {n: METRIC_DIRECTIONS[n] for n in names}


class FidelityMetric:
    """FID, KID, IS and precision/recall (torch-fidelity) with the domain evaluator (or Inception)."""

    name = "fidelity"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "f_score"))

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.fidelity import fidelity_metrics

        opts = ctx.options
        out = fidelity_metrics(
            ctx.masks,
            ctx.real,
            evaluator_path=getattr(ctx.evaluator, "path", None),
            feature_extractor=opts.get("feature_extractor", "domain"),
            inception_weights=opts.get("inception_weights"),
            device=ctx.device,
            kid_subset_size=opts.get("kid_subset_size"),
            isc_splits=opts.get("isc_splits"),
        )
        ctx.settings.update(out.pop("_settings"))
        return out


class ConditionalMetric:
    """Conditional generation: the evaluator's accuracy on the requested classes, FID/KID per class."""

    name = "conditional"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(CONDITIONAL_KEYS)

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

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.anatomy import evaluate_anatomy

        out = evaluate_anatomy(ctx.masks, ctx.spacing)
        ctx.settings["anatomy_n"] = out.pop("anatomy_n")
        return out


class MemorisationMetric:
    """Nearest-training-mask Dice (mean, copies > 0.95) and diversity (1 - mean pairwise Dice)."""

    name = "memorisation"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    directions = _directions(("nn_dice_mean", "copy_frac", "diversity"))

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.memorisation import evaluate_memorisation

        return evaluate_memorisation(ctx.masks, ctx.train, device=ctx.device)


class DiceMetric:
    """Dice per structure (RV, MYO, LV) and their mean; ACDC empty-mask conventions."""

    name = "dice"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    directions = _directions([f"dice_{k}" for k in STRUCTURE_KEYS] + ["dice_mean"])

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.segmentation import dice_scores

        d = dice_scores(ctx.masks, ctx.target)
        out = {f"dice_{k}": float(d[:, j].mean()) for j, k in enumerate(STRUCTURE_KEYS)}
        out["dice_mean"] = float(d.mean(1).mean())
        return out


class HD95Metric:
    """95th-percentile Hausdorff distance per structure in mm (mean over defined cases) and missing count."""

    name = "hd95"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    directions = _directions([f"hd95_{k}" for k in STRUCTURE_KEYS] + ["hd95_mean", "hd95_missing"])

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from cardiobench.metrics.segmentation import segmentation_scores

        out = segmentation_scores(ctx.masks, ctx.target, ctx.spacing)
        ctx.settings["hd95_unit"] = "mm"
        return {k: v for k, v in out.items() if k.startswith("hd95_") and k != "hd95_unit"}


BUILTIN_METRICS = (FidelityMetric, ConditionalMetric, AnatomyMetric, MemorisationMetric, DiceMetric, HD95Metric)


@hookimpl
def register_metrics(register):
    for cls in BUILTIN_METRICS:
        register(
            cls.name,
            cls,
            summary=(cls.__doc__ or "").strip().splitlines()[0],
            tasks=cls.tasks,
            direction=dict(cls.directions),
        )
