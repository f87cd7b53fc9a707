"""The metrics of mask-to-image synthesis (``--task synthesis``): image fidelity and mask faithfulness.

- ``image-fidelity``: FID and KID of the generated slices against the real slices of the same test masks,
  measured with the image ruler (``cardiobench.metrics.image_ruler``: a domain evaluator trained on the data
  set's real training images, with a validity record; or an ImageNet Inception from a local weights file),
  and ``image_fid_relative``, FID over the FID of two halves of the real slices (the floor).
- ``faithfulness``: does the image show the anatomy it was asked for? A fixed reference segmenter
  (``cardiobench.downstream.segmenter``: MONAI BasicUNet, one recipe, trained on the real training pairs)
  segments each generated slice; ``faithful_dice_*`` is the Dice of that segmentation against the conditioning
  mask, per structure and mean. The same segmenter on the real slices of the same masks gives the ceiling,
  ``faithful_ceiling_dice_mean`` (how well it segments real images; not ranked), and ``faithful_ratio`` is the
  fraction of that ceiling the generated images reach.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cardiobench.metrics.base import MetricContext
from cardiobench.metrics.image_ruler import image_fidelity
from cardiobench.metrics.segmentation import STRUCTURE_KEYS, dice_scores

__all__ = ["FaithfulnessMetric", "ImageFidelityMetric", "SYNTHESIS_DIRECTIONS"]

#: every value the synthesis metrics report -> its direction
SYNTHESIS_DIRECTIONS: dict[str, str] = {
    "image_fid": "lower", "image_kid": "lower", "image_kid_std": "none", "image_fid_relative": "lower",
    "image_fid_real": "none",
    **{f"faithful_dice_{k}": "higher" for k in STRUCTURE_KEYS}, "faithful_dice_mean": "higher",
    "faithful_ceiling_dice_mean": "none", "faithful_ratio": "higher",
}


def _require(ctx: MetricContext, *names: str) -> None:
    missing = [n for n in names if getattr(ctx, n) is None]
    if missing:
        raise ValueError(f"the synthesis metrics need {', '.join(missing)} in the metric context")


class ImageFidelityMetric:
    """Image FID/KID of generated MRI slices against the real slices, with the image ruler (synthesis)."""

    name = "image-fidelity"
    tasks: ClassVar[tuple[str, ...]] = ("synthesis",)
    directions = {k: v for k, v in SYNTHESIS_DIRECTIONS.items() if k.startswith("image_")}
    meta: ClassVar[dict] = {"order": 0, "headline": ("image_fid", "image_fid_relative"), "sort_key": "image_fid",
                            "uses_image_ruler": True}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        _require(ctx, "images", "real_images", "evaluator")
        out = image_fidelity(ctx.images, ctx.real_images, ctx.evaluator, seed=int(ctx.options.get("seed", 0)),
                             inception_weights=ctx.options.get("inception_weights"))
        return {k: float(v) for k, v in out.items() if k in self.directions}


class FaithfulnessMetric:
    """Dice between each conditioning mask and the reference segmenter's reading of the generated slice."""

    name = "faithfulness"
    tasks: ClassVar[tuple[str, ...]] = ("synthesis",)
    directions = {k: v for k, v in SYNTHESIS_DIRECTIONS.items() if k.startswith("faithful_")}
    meta: ClassVar[dict] = {"order": 1, "headline": ("faithful_dice_mean", "faithful_ceiling_dice_mean"),
                            "uses_segmenter": True}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        _require(ctx, "images", "real_images", "segmenter")
        fake = dice_scores(ctx.segmenter.predict(ctx.images), ctx.masks)  # (N, 3)
        real = dice_scores(ctx.segmenter.predict(ctx.real_images), ctx.masks)
        out = {f"faithful_dice_{k}": float(fake[:, j].mean()) for j, k in enumerate(STRUCTURE_KEYS)}
        out["faithful_dice_mean"] = float(fake.mean())
        out["faithful_ceiling_dice_mean"] = float(real.mean())
        out["faithful_ratio"] = float(fake.mean() / real.mean()) if real.mean() > 0 else float(np.nan)
        return out
