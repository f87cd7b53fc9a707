"""The metric of the ``utility`` task: does a generator's synthetic data help a downstream segmenter?

One fixed segmenter (``cardiobench.downstream.segmenter``: MONAI BasicUNet, one recipe) is trained on

    (a) real       N real training pairs
    (b) mixed      the same N real pairs + the M synthetic pairs (generated masks, images drawn for them)
    (c) synthetic  the M synthetic pairs only

for N = every training patient (``all``) and the first ``few_patients`` patient ids (``few``), and each is
scored on the real test split of the evaluation data set (the run's, or ``utility.eval_dataset`` for
cross-data-set evaluation). Values (Dice is the mean over structures; HD95 in the data set's unit):

- ``utility_{real,mixed}_{all,few}_dice``, ``utility_synth_dice`` and the matching ``*_hd95`` (the segmentation
  metrics' Dice and HD95 means);
- ``utility_gain_{all,few}``: the mean over test slices of the per-slice Dice of (b) minus that of (a)
  (``cardiobench.downstream.segmenter.per_slice_dice``: the structures present in either map), with
  ``*_lo``/``*_hi`` its 95 % paired-bootstrap interval over test slices (``cardiobench.downstream.bootstrap``);
- ``utility_synth_ratio``: Dice of (c) over Dice of (a, all), how far synthetic data alone goes;
  ``utility_synth_diff`` (with ``_lo``/``_hi``): the per-slice difference (c) minus (a, all), as for the gains.

The (a) segmenters do not depend on the generator: they are cached by their spec (which fingerprints the
training pairs) and shared by every utility run on the same data.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from cardiobench.downstream.bootstrap import paired_bootstrap
from cardiobench.downstream.segmenter import SegmenterSpec, score_segmenter, subset_patients, train_segmenter
from cardiobench.metrics.base import MetricContext

__all__ = ["UTILITY_DIRECTIONS", "UtilityMetric"]

_SETS = ("real_all", "mixed_all", "real_few", "mixed_few", "synth")

#: every value the utility metric reports -> its direction
UTILITY_DIRECTIONS: dict[str, str] = {
    **{f"utility_{s}_dice": "higher" for s in _SETS},
    **{f"utility_{s}_hd95": "lower" for s in _SETS},
    "utility_gain_all": "higher", "utility_gain_all_lo": "none", "utility_gain_all_hi": "none",
    "utility_gain_few": "higher", "utility_gain_few_lo": "none", "utility_gain_few_hi": "none",
    "utility_synth_ratio": "higher", "utility_synth_diff": "higher", "utility_synth_diff_lo": "none",
    "utility_synth_diff_hi": "none",
}


class UtilityMetric:
    """Dice gain of a segmenter trained on real + synthetic pairs over real only, and synthetic alone (utility)."""

    name = "utility"
    tasks: ClassVar[tuple[str, ...]] = ("utility",)
    directions = dict(UTILITY_DIRECTIONS)
    meta: ClassVar[dict] = {"order": 0, "headline": ("utility_gain_few", "utility_gain_all", "utility_synth_ratio"),
                            "sort_key": "utility_gain_few"}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        opts = ctx.options
        train, test = opts.get("real_train"), opts.get("eval_test")
        if ctx.images is None or train is None or test is None:
            raise ValueError("the utility metric needs images, options real_train and eval_test")
        spec = SegmenterSpec(resolution=int(ctx.masks.shape[-1]), **dict(opts.get("segmenter") or {}))
        few = subset_patients(train, int(opts.get("few_patients", 3)))
        syn_x, syn_m = np.asarray(ctx.images, dtype=np.float32), ctx.masks
        sets: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "real_all": (train.images, train.masks),
            "mixed_all": (np.concatenate([train.images, syn_x]), np.concatenate([train.masks, syn_m])),
            "real_few": (few.images, few.masks),
            "mixed_few": (np.concatenate([few.images, syn_x]), np.concatenate([few.masks, syn_m])),
            "synth": (syn_x, syn_m),
        }
        progress, unit = opts.get("progress"), opts.get("distance_unit")
        scores: dict[str, Any] = {}
        ids: dict[str, str] = {}
        for name, (x, m) in sets.items():
            seg = train_segmenter(x, m, spec, device=ctx.device, progress=progress)
            scores[name] = score_segmenter(seg, test, distance_unit=unit)
            ids[name] = seg.id
        ctx.settings["utility"] = {"segmenters": ids, "n_real_all": int(len(train)), "n_real_few": int(len(few)),
                                   "few_patients": sorted(set(map(str, few.patients))), "n_synthetic": int(len(syn_m)),
                                   "n_test": int(len(test))}
        out: dict[str, float] = {}
        for name, score in scores.items():
            out[f"utility_{name}_dice"] = float(score["metrics"]["dice_mean"])
            out[f"utility_{name}_hd95"] = float(score["metrics"].get("hd95_mean", np.nan))
        seed = int(opts.get("seed", 0))
        for n in ("all", "few"):
            ci = paired_bootstrap(scores[f"real_{n}"]["per_slice_dice"], scores[f"mixed_{n}"]["per_slice_dice"],
                                  seed=seed)
            out[f"utility_gain_{n}"] = float(ci["mean_diff"])
            out[f"utility_gain_{n}_lo"], out[f"utility_gain_{n}_hi"] = float(ci["lo"]), float(ci["hi"])
        ci = paired_bootstrap(scores["real_all"]["per_slice_dice"], scores["synth"]["per_slice_dice"], seed=seed)
        real = out["utility_real_all_dice"]
        out["utility_synth_ratio"] = out["utility_synth_dice"] / real if real > 0 else float("nan")
        out["utility_synth_diff"] = float(ci["mean_diff"])
        out["utility_synth_diff_lo"], out["utility_synth_diff_hi"] = float(ci["lo"]), float(ci["hi"])
        return out
