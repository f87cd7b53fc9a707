"""The two calls the benchmark runner makes: ``evaluate_generation`` and ``evaluate_segmentation``.

Both run every registered metric plugin of their task (or the ones named) and return::

    {"task": ..., "metrics": {name: float}, "directions": {name: "lower"|"higher"|"none"},
     "reference": {name: float},   # generation only: the same metrics for real data (the floor/ceiling)
     "meta": {"evaluator_id": ..., "n_samples": ..., "kid_subset_size": ..., ...}}

``meta["evaluator_id"]`` identifies the ruler; results are only comparable (and only ranked together)
when it is the same.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from typing import Any

import numpy as np

from cardiobench.errors import CardiobenchError, DataError
from cardiobench.metrics.base import MetricContext, metric_directions
from cardiobench.metrics.segmentation import as_label_maps, spacing_array

#: the version of the segmentation metric definitions: the "ruler" of segmentation results
SEGMENTATION_RULER = "seg-acdc-1"


#: display order of the built-in metrics (plugins follow, by name)
_ORDER = ("fidelity", "dice", "hd95", "memorisation", "anatomy")


def _metrics_for(task: str, names: list[str] | None):
    from cardiobench.plugins import registry

    available = [c for c in registry("metric") if task in tuple(c.metadata.get("tasks", ()))]
    available.sort(key=lambda c: (_ORDER.index(c.name) if c.name in _ORDER else len(_ORDER), c.name))
    if names is None:
        return [(c.name, c.create()) for c in available]
    by_name = {c.name: c for c in available}
    out = []
    for name in names:
        if name not in by_name:
            from cardiobench.plugins import get_component

            comp = get_component("metric", name)  # unknown names: the registry's "did you mean" error
            raise CardiobenchError(
                f"metric {name!r} does not apply to {task}", f"it applies to: {comp.metadata.get('tasks')}"
            )
        out.append((name, by_name[name].create()))
    return out


def _run(metrics, ctx: MetricContext, timings: dict[str, float] | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, metric in metrics:
        t0 = time.perf_counter()
        out.update(metric.compute(ctx))
        if timings is not None:
            timings[name] = round(time.perf_counter() - t0, 3)
    return out


def _labels(x, name: str) -> np.ndarray:
    try:
        return as_label_maps(x, name)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _inception_id(path) -> str:
    from cardiobench.metrics.fidelity import check_inception_weights

    digest = hashlib.sha256(check_inception_weights(path).read_bytes()).hexdigest()
    return f"inception-{digest[:12]}"


def evaluate_generation(
    samples,
    dataset: str = "phantom",
    *,
    data_options: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
    device: str = "cpu",
    feature_extractor: str = "domain",
    inception_weights=None,
    kid_subset_size: int | None = None,
    reference: bool = True,
    seed: int = 0,
    log=None,
) -> dict[str, Any]:
    """Evaluate generated label maps ``samples`` (N, H, W) uint8 against ``dataset`` at their size.

    Real masks: the data set's test split (``meta["n_real"]``). The reference row is the same metrics for
    a perfect generator: the test split itself, compared with as many training masks as there are samples
    (fidelity), checked for anatomy, and matched against the training split (memorisation).
    """
    s = _labels(samples, "samples")
    if s.shape[1] != s.shape[2]:
        raise DataError(f"samples must be square label maps, got {s.shape[1]}x{s.shape[2]}")
    if len(s) < 2:
        raise DataError(f"need at least 2 samples to evaluate, got {len(s)}")
    size = int(s.shape[-1])
    from cardiobench.metrics.evaluator import get_evaluator, load_splits

    t0 = time.perf_counter()
    splits = load_splits(dataset, size, data_options)
    train, test = splits["train"], splits["test"]
    if len(test) < 2 or len(train) < 2:
        raise CardiobenchError(f"data set {dataset!r} has too few train/test masks ({len(train)}/{len(test)})")
    chosen = _metrics_for("generation", metrics)
    needs_evaluator = any(name == "fidelity" for name, _ in chosen) and feature_extractor == "domain"
    evaluator = get_evaluator(dataset, data_options, log=log) if needs_evaluator else None
    spacing_mm = np.median(np.asarray(test.spacing, dtype=np.float64).reshape(-1, 2), axis=0)
    options = {
        "feature_extractor": feature_extractor,
        "inception_weights": inception_weights,
        "kid_subset_size": kid_subset_size,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx = MetricContext(
            task="generation",
            masks=s,
            spacing=spacing_array(spacing_mm, len(s)),
            real=test.masks,
            train=train.masks,
            evaluator=evaluator,
            device=device,
            options=options,
        )
        timings: dict[str, float] = {}
        values = _run(chosen, ctx, timings)
        ref_values: dict[str, float] = {}
        n_ref = min(len(s), len(train))
        if reference:
            pick = np.sort(np.random.default_rng(seed).permutation(len(train))[:n_ref])
            ref_ctx = MetricContext(
                task="generation",
                masks=test.masks,
                spacing=spacing_array(test.spacing, len(test)),
                real=train.masks[pick],
                train=train.masks,
                evaluator=evaluator,
                device=device,
                options=options,
            )
            ref_values = _run(chosen, ref_ctx)
    notes = sorted({str(w.message) for w in caught})
    for w in caught:  # pass them on to the caller too
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    directions = metric_directions()
    if feature_extractor == "domain" and evaluator is not None:
        ruler = {
            "evaluator_id": evaluator.id,
            "evaluator_sha256": evaluator.digest,
            "evaluator_accuracy": evaluator.meta.get("accuracy", {}).get("test"),
        }
    elif any(name == "fidelity" for name, _ in chosen):
        ruler = {"evaluator_id": _inception_id(inception_weights), "evaluator_sha256": None, "evaluator_accuracy": None}
    else:
        ruler = {
            "evaluator_id": f"nofidelity-{SEGMENTATION_RULER}",
            "evaluator_sha256": None,
            "evaluator_accuracy": None,
        }
    meta = {
        **ruler,
        "dataset": dataset,
        "data_options": dict(data_options or {}),
        "size": size,
        "feature_extractor": feature_extractor,
        "n_samples": int(len(s)),
        "n_real": int(len(test)),
        "n_reference": int(n_ref) if reference else 0,
        "kid_subset_size": ctx.settings.get("kid_subset_size"),
        "isc_splits": ctx.settings.get("isc_splits"),
        "spacing_mm": [float(v) for v in spacing_mm],
        "metrics_run": [name for name, _ in chosen],
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 3)},
        "notes": notes,
    }
    return {
        "task": "generation",
        "metrics": values,
        "reference": ref_values,
        "directions": {k: directions.get(k, "none") for k in values},
        "meta": meta,
    }


def evaluate_segmentation(
    pred,
    target,
    spacing=None,
    *,
    metrics: list[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate predicted label maps against ground truth (both (N, H, W)); ``spacing`` in mm (None = pixels:
    HD95 and concavity are then in pixels, ``meta["hd95_unit"]`` says which)."""
    p, g = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != g.shape:
        raise DataError(f"pred and target shapes differ: {p.shape} vs {g.shape}")
    try:
        sp = spacing_array(spacing, len(p))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    chosen = _metrics_for("segmentation", metrics)
    ctx = MetricContext(task="segmentation", masks=p, spacing=sp, target=g, device=device)
    timings: dict[str, float] = {}
    values = _run(chosen, ctx, timings)
    directions = metric_directions()
    return {
        "task": "segmentation",
        "metrics": values,
        "directions": {k: directions.get(k, "none") for k in values},
        "meta": {
            "evaluator_id": SEGMENTATION_RULER,
            "n_cases": int(len(p)),
            "hd95_unit": "px" if spacing is None else "mm",
            "metrics_run": [name for name, _ in chosen],
            "seconds": timings,
        },
    }
