"""Metrics of class-conditional generation: does a sample look like the class it was generated for?

- ``cond_accuracy`` (↑): the domain evaluator's pathology classifier (``Evaluator.predict``) applied to the
  samples; the fraction whose predicted group (argmax of the logits) equals the group requested for that
  sample. Its ceiling is the same classifier's accuracy on real test slices (the reference row of
  ``evaluate_generation``): a perfect generator is recognised as often as real data, no more.
- ``fid_<group>``, ``kid_<group>`` (↓) for every group of ``cardiobench.data.GROUPS`` (``fid_nor``, ...,
  ``kid_rv``): FID and KID of the samples requested as that group against the real masks of that group,
  through ``cardiobench.metrics.fidelity.fidelity_metrics`` (the same torch-fidelity call and ruler as the
  unconditional ``fid``/``kid``); ``fid_class_mean``, ``kid_class_mean`` (↓): their means over the groups
  that have a value.

Per-class sets are small (a fifth of the samples each), so the KID subset size adapts per class as
``fidelity_metrics`` adapts it (half the smaller set, one ``FidelityWarning`` listing the sizes) and a
group with fewer than 2 samples or 2 real masks gets no value (its keys are left out, with a warning);
the class means then cover the remaining groups. Labels are never invented: without labels (an
unconditional run) the ``conditional`` metric plugin reports nothing.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from cardiobench.data.base import GROUPS
from cardiobench.errors import CardiobenchError, DataError, warn
from cardiobench.metrics.base import CLASS_KEYS, CONDITIONAL_KEYS
from cardiobench.metrics.fidelity import KID_SUBSET_SIZE, FidelityWarning, fidelity_metrics
from cardiobench.metrics.segmentation import as_label_maps

#: the fewest samples (and real masks) of a group for its FID/KID
MIN_PER_CLASS = 2


def check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """(n,) integer class indices into ``GROUPS`` (numpy, torch or a list) -> (n,) int64; else a ``DataError``."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    a = np.asarray(labels)
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{name} must hold one class per mask: expected shape ({n},), got {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise DataError(
            f"{name} must be integer class indices 0..{len(GROUPS) - 1} ({', '.join(GROUPS)}), not {a.dtype}"
        )
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= len(GROUPS)):
        raise DataError(
            f"{name} holds classes outside 0..{len(GROUPS) - 1} (found {a.min()}..{a.max()}); "
            f"the classes are {', '.join(GROUPS)}"
        )
    return a


def conditional_accuracy(evaluator, masks, labels, device: str = "cpu") -> float:
    """Fraction of ``masks`` (N, H, W) whose predicted pathology group equals ``labels`` (N,)."""
    m = as_label_maps(masks, "samples")
    y = check_labels(labels, len(m))
    if len(m) == 0:
        return float("nan")
    _, logits = evaluator.predict(m, device=device)
    return float((logits.argmax(1) == y).mean())


def per_class_fidelity(
    samples,
    labels,
    real,
    real_labels,
    *,
    evaluator_path: str | os.PathLike | None = None,
    feature_extractor: str = "domain",
    inception_weights: str | os.PathLike | None = None,
    device: str = "cpu",
    kid_subset_size: int | None = None,
) -> dict[str, Any]:
    """FID and KID per group: ``samples[labels == g]`` against ``real[real_labels == g]``, for g in ``GROUPS``.

    Returns ``fid_<group>``, ``kid_<group>`` for every group with at least ``MIN_PER_CLASS`` masks on both
    sides, ``fid_class_mean``/``kid_class_mean`` over those groups (when there is one), and ``_settings``:
    ``class_counts`` ({group: [samples, real]}) and ``class_kid_subset_size`` ({group: subset size used}).
    """
    s, r = as_label_maps(samples, "samples"), as_label_maps(real, "real")
    y, yr = check_labels(labels, len(s)), check_labels(real_labels, len(r), "real_labels")
    out: dict[str, Any] = {}
    counts: dict[str, list[int]] = {}
    subsets: dict[str, int] = {}
    skipped: list[str] = []
    for g, (group, key) in enumerate(zip(GROUPS, CLASS_KEYS, strict=True)):
        sg, rg = s[y == g], r[yr == g]
        counts[group] = [int(len(sg)), int(len(rg))]
        if len(sg) < MIN_PER_CLASS or len(rg) < MIN_PER_CLASS:
            skipped.append(f"{group} ({len(sg)} samples, {len(rg)} real)")
            continue
        with warnings.catch_warnings():
            # IS and precision/recall notes concern values not reported here; KID is summarised below
            warnings.simplefilter("ignore", FidelityWarning)
            fid = fidelity_metrics(
                sg,
                rg,
                evaluator_path=evaluator_path,
                feature_extractor=feature_extractor,
                inception_weights=inception_weights,
                device=device,
                kid_subset_size=kid_subset_size,
            )
        out[f"fid_{key}"] = fid["fid"]
        out[f"kid_{key}"] = fid["kid"]
        subsets[group] = int(fid["_settings"]["kid_subset_size"])
    asked = kid_subset_size or KID_SUBSET_SIZE
    lowered = {group: k for group, k in subsets.items() if k < asked}
    if lowered:
        sizes = ", ".join(f"{group} {k}" for group, k in lowered.items())
        warn(f"per-class KID subset size lowered from {asked} to {sizes}", FidelityWarning)
    if skipped:
        warn(
            f"per-class FID/KID skipped for {', '.join(skipped)}: need at least {MIN_PER_CLASS} of each",
            FidelityWarning,
        )
    for name in ("fid", "kid"):
        values = [out[f"{name}_{k}"] for k in CLASS_KEYS if f"{name}_{k}" in out]
        if values:
            out[f"{name}_class_mean"] = float(np.mean(values))
    out["_settings"] = {"class_counts": counts, "class_kid_subset_size": subsets}
    return out


def conditional_metrics(
    samples,
    labels,
    real,
    real_labels,
    *,
    evaluator,
    feature_extractor: str = "domain",
    inception_weights: str | os.PathLike | None = None,
    device: str = "cpu",
    kid_subset_size: int | None = None,
) -> dict[str, Any]:
    """``cond_accuracy`` plus ``per_class_fidelity`` (left out, with a warning, when ``real_labels`` is None).

    ``evaluator`` is the domain evaluator (``Evaluator``): its classifier gives ``cond_accuracy`` whatever
    the fidelity ruler, and its file is the ruler of the per-class FID/KID with ``feature_extractor="domain"``.
    """
    if evaluator is None:
        raise CardiobenchError("conditional metrics need the domain evaluator (its pathology classifier)")
    s = as_label_maps(samples, "samples")
    y = check_labels(labels, len(s))
    out: dict[str, Any] = {"cond_accuracy": conditional_accuracy(evaluator, s, y, device=device)}
    settings: dict[str, Any] = {}
    if real is None or real_labels is None:
        warn("per-class FID/KID skipped: the real masks have no groups (real_labels)", FidelityWarning)
    else:
        per_class = per_class_fidelity(
            s,
            y,
            real,
            real_labels,
            evaluator_path=getattr(evaluator, "path", None),
            feature_extractor=feature_extractor,
            inception_weights=inception_weights,
            device=device,
            kid_subset_size=kid_subset_size,
        )
        settings = per_class.pop("_settings")
        out.update(per_class)
    out["_settings"] = settings
    return out


__all__ = [
    "CLASS_KEYS",
    "CONDITIONAL_KEYS",
    "MIN_PER_CLASS",
    "check_labels",
    "conditional_accuracy",
    "conditional_metrics",
    "per_class_fidelity",
]
