"""The two calls the benchmark runner makes: ``evaluate_generation`` and ``evaluate_segmentation``.

Both run the default metrics of their task (the built-in metrics registered with ``default=True``; an
installed plugin's metric only when named, see ``is_default_metric``), or the ones named, and return::

    {"task": ..., "metrics": {name: float}, "directions": {name: "lower"|"higher"|"none"},
     "reference": {name: float},   # generation only: the same metrics for real data (the floor/ceiling)
     "meta": {"evaluator_id": ..., "n_samples": ..., "distance_unit": "mm" | "px", "kid_subset_size": ..., ...}}

``meta["evaluator_id"]`` identifies the ruler; results are only comparable (and only ranked together)
when it is the same. ``meta["distance_unit"]`` is the unit of every distance (HD95, the anatomy criteria):
``"px"`` for a data set without voxel spacing, else ``"mm"``.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from typing import Any

import numpy as np

from cardiobench.data.base import GROUPS
from cardiobench.errors import CardiobenchError, DataError, warn
from cardiobench.metrics.base import MetricContext, metric_directions
from cardiobench.metrics.segmentation import as_label_maps, spacing_array
from cardiobench.metrics.segmentation import distance_unit as check_unit
from cardiobench.metrics.validity import ruler_validity

#: the version of the segmentation metric definitions: the "ruler" of segmentation results
SEGMENTATION_RULER = "seg-acdc-1"


def _position(comp) -> tuple:
    """Sort key of a metric component: its ``order`` metadata (none: after those that have one), then its name."""
    order = comp.metadata.get("order")
    ok = isinstance(order, (int, float)) and not isinstance(order, bool)
    return (0, order, comp.name) if ok else (1, 0, comp.name)


def is_default_metric(comp) -> bool:
    """Whether a run that names no metrics (``eval.metrics = []``) computes ``comp``: a built-in metric (origin
    ``cardiobench``) registered with ``default=True``. A metric from an installed plugin is computed only
    when a run names it, so what a default run computes, and the columns of its row, never depend on what
    happens to be installed."""
    return comp.origin == "cardiobench" and comp.metadata.get("default") is True


def default_metric_names(task: str) -> list[str]:
    """The metrics a run of ``task`` computes when it names none, in their ``order``."""
    return [name for name, _ in _components(task, None)]


def _components(task: str, names: list[str] | None) -> list[tuple[str, Any]]:
    """``(name, component)`` of the metrics to run for ``task``: ``names`` (checked), else the default ones."""
    from cardiobench.plugins import registry

    available = [c for c in registry("metric") if task in tuple(c.metadata.get("tasks", ()))]
    available.sort(key=_position)
    if not names:
        return [(c.name, c) for c in available if is_default_metric(c)]
    by_name = {c.name: c for c in available}
    out = []
    for name in names:
        if name not in by_name:
            from cardiobench.plugins import get_component

            comp = get_component("metric", name)  # unknown names: the registry's "did you mean" error
            raise CardiobenchError(
                f"metric {name!r} does not apply to {task}", f"it applies to: {comp.metadata.get('tasks')}"
            )
        out.append((name, by_name[name]))
    return out


#: ``(name, component)`` of the metrics an evaluation of a task computes (names checked; none: the defaults)
metric_components = _components


def _metrics_for(task: str, names: list[str] | None):
    """The metric objects to run for ``task``: ``names`` (``None`` or empty: the default metrics)."""
    return [(name, comp.create()) for name, comp in _components(task, names)]


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


def _unit(unit: str | None, spacing: Any = 1.0) -> str:
    """A checked distance unit (``check_unit``); a bad one is a ``DataError``."""
    try:
        return check_unit(unit, spacing)
    except ValueError as exc:
        raise DataError(str(exc), "use mm (the data set has a voxel spacing) or px (it has none)") from None


def dataset_distance_unit(dataset: str, size: int, data_options: dict[str, Any] | None = None) -> str:
    """The unit of a data set's spacing: its source's ``spacing_unit`` (``"px"`` for a data set without voxel
    spacing, e.g. ``acdc-h5``), ``"mm"`` for one that does not say (every data set before units were recorded)."""
    from cardiobench.data import open_dataset

    source = open_dataset(dataset, size=size, **(data_options or {}))
    return str(getattr(source, "spacing_unit", "mm"))


def _class_labels(labels, n: int) -> np.ndarray:
    from cardiobench.metrics.conditional import check_labels

    return check_labels(labels, n)


def _inception_id(path) -> str:
    from cardiobench.metrics.fidelity import check_inception_weights

    digest = hashlib.sha256(check_inception_weights(path).read_bytes()).hexdigest()
    return f"inception-{digest[:12]}"


def _reference_pick(train_groups: np.ndarray, labels: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """Sorted indices of the training masks that play the real set of the reference row.

    Unconditional: ``n`` at random. Conditional: per group, as many as there are samples requested as that
    group (all of them when the training split has fewer), so that every per-class reference FID/KID
    compares sets of the same sizes as the samples' own.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.permutation(len(train_groups))[:n])
    picks = []
    for g in range(len(GROUPS)):
        members = np.flatnonzero(train_groups == g)
        picks.append(rng.permutation(members)[: int((labels == g).sum())])
    pick = np.concatenate(picks)
    return np.sort(pick) if len(pick) >= 2 else _reference_pick(train_groups, None, n, seed)


def evaluate_generation(
    samples,
    dataset: str = "phantom",
    *,
    labels=None,
    data_options: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
    device: str = "cpu",
    feature_extractor: str = "domain",
    inception_weights=None,
    kid_subset_size: int | None = None,
    reference: bool = True,
    seed: int = 0,
    log=None,
    distance_unit: str | None = None,
) -> dict[str, Any]:
    """Evaluate generated label maps ``samples`` (N, H, W) uint8 against ``dataset`` at their size.

    Volumes ``samples`` (N, D, H, W) (a volumetric run, ``depth`` in ``data_options``): the slice metrics (FID with
    the data set's slice ruler, anatomy, memorisation) score their N*D short-axis slices against the test
    volumes' slices, and the ``volume`` metric scores the volumes (``MetricContext.volumes``); the reference row
    is the test volumes against as many training volumes.

    Real masks: the data set's test split (``meta["n_real"]``). The reference row is the same metrics for
    a perfect generator: the test split itself, compared with as many training masks as there are samples
    (fidelity), checked for anatomy, and matched against the training split (memorisation).

    ``labels`` (N,) integers into ``cardiobench.data.GROUPS``: the class each sample was generated for
    (class-conditional generation; ``None`` = unconditional). With labels the ``conditional`` metric reports
    ``cond_accuracy`` and FID/KID per class; in the reference row the test masks, labelled with their true
    groups, play the samples (``cond_accuracy`` = the evaluator's accuracy on real test slices, the ceiling)
    and the training masks picked per group (as many as samples requested of it) play the real set.

    ``meta["ruler_validity"]`` = ``{"valid", "flag", "accuracy", "chance", "ordering"}``: the domain
    evaluator's validity record (``cardiobench.metrics.validity``; ``None`` for another ruler). ``fid_relative``
    divides ``fid`` by the median FID between random halves of the test split, ``meta["fid_real_halves"]``
    (Woodland et al., MICCAI 2024).

    ``distance_unit`` is the unit of the data set's spacing, ``"mm"`` or ``"px"`` (``None``: the data set's
    own ``spacing_unit``, mm when it has none); it goes to the metrics as ``ctx.options["distance_unit"]``
    (anatomy converts its mm thresholds in px) and is returned as ``meta["distance_unit"]``.
    """
    raw = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    volumes = _labels(raw.reshape(-1, *raw.shape[2:]), "samples").reshape(raw.shape) if raw.ndim == 4 else None
    s = _labels(raw, "samples") if volumes is None else volumes.reshape(-1, *raw.shape[2:])  # the slices
    if s.shape[1] != s.shape[2]:
        raise DataError(f"samples must be square label maps, got {s.shape[1]}x{s.shape[2]}")
    n_items = len(volumes) if volumes is not None else len(s)
    if n_items < 2:
        raise DataError(f"need at least 2 samples to evaluate, got {n_items}")
    y = None if labels is None else _class_labels(labels, n_items)
    depth = 1 if volumes is None else int(volumes.shape[1])
    size = int(s.shape[-1])
    from cardiobench.metrics.evaluator import get_evaluator, load_splits

    t0 = time.perf_counter()
    splits = load_splits(dataset, size, data_options)
    train, test = splits["train"], splits["test"]
    vsplits = load_splits(dataset, size, data_options, volumes=True) if volumes is not None else None
    if vsplits is not None and vsplits["test"].item_shape != volumes.shape[1:]:
        raise DataError(f"samples are {'x'.join(map(str, volumes.shape[1:]))} volumes, the data set's are "
                        f"{'x'.join(map(str, vsplits['test'].item_shape))}", "evaluate with the run's data options")
    if len(test) < 2 or len(train) < 2:
        raise CardiobenchError(f"data set {dataset!r} has too few train/test masks ({len(train)}/{len(test)})")
    components = _components("generation", metrics)
    chosen = [(name, comp.create()) for name, comp in components]
    # registration metadata, not names: `needs_labels` (scored per requested class), `uses_evaluator` (features
    # of the domain evaluator), `real_halves` (divides by the FID between random halves of the real test split)
    conditional = y is not None and any(comp.metadata.get("needs_labels") for _, comp in components)
    uses_fidelity = any(comp.metadata.get("uses_evaluator") for _, comp in components
                        if not comp.metadata.get("needs_labels")) or conditional
    needs_evaluator = (uses_fidelity and feature_extractor == "domain") or conditional
    evaluator = get_evaluator(dataset, data_options, log=log) if needs_evaluator else None
    unit = _unit(distance_unit if distance_unit is not None else dataset_distance_unit(dataset, size, data_options))
    spacing_mm = np.median(np.asarray(test.spacing, dtype=np.float64).reshape(-1, 2), axis=0)
    options = {
        "distance_unit": unit,
        "feature_extractor": feature_extractor,
        "inception_weights": inception_weights,
        "kid_subset_size": kid_subset_size,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        halves = None
        if any(comp.metadata.get("real_halves") for _, comp in components):
            # the relative-FID reference (Woodland et al., MICCAI 2024): FID between random halves of the test
            # split, measured once so that the samples and the reference row divide by the same value
            from cardiobench.metrics.fidelity import real_reference

            halves = real_reference(test.masks, seed=seed, evaluator_path=getattr(evaluator, "path", None),
                                    feature_extractor=feature_extractor, inception_weights=inception_weights,
                                    device=device)
            options["fid_real_halves"] = halves
        vtrain, vtest = (vsplits["train"], vsplits["test"]) if vsplits is not None else (None, None)
        # a volume's spacing (slice, rows, cols): generated volumes get the test volumes' median
        vspacing = None if vtest is None else np.median(np.asarray(vtest.spacing, np.float64), axis=0)
        ctx = MetricContext(
            task="generation",
            masks=s,
            spacing=spacing_array(spacing_mm, len(s)),
            real=test.masks,
            train=train.masks,
            evaluator=evaluator,
            labels=None if y is None else np.repeat(y, depth),
            real_labels=test.groups,
            volumes=volumes,
            real_volumes=None if vtest is None else vtest.masks,
            volume_spacing=None if vspacing is None else np.tile(vspacing, (n_items, 1)),
            device=device,
            options=options,
        )
        timings: dict[str, float] = {}
        values = _run(chosen, ctx, timings)
        ref_values: dict[str, float] = {}
        items = vtrain if vtrain is not None else train  # what a sample is: a volume or a slice
        n_ref = min(n_items, len(items))
        if reference:
            pick = _reference_pick(items.groups, y, n_ref, seed)
            n_ref = len(pick)
            picked = items.subset(pick).slices()
            ref_ctx = MetricContext(
                task="generation",
                masks=test.masks,
                spacing=spacing_array(test.spacing, len(test)),
                real=picked.masks,
                train=train.masks,
                evaluator=evaluator,
                labels=None if y is None else test.groups,
                real_labels=picked.groups,
                volumes=None if vtest is None else vtest.masks,
                real_volumes=None if vtrain is None else vtrain.masks[pick],
                volume_spacing=None if vtest is None else np.asarray(vtest.spacing, np.float64),
                device=device,
                options=options,
            )
            ref_values = _run(chosen, ref_ctx)
    notes = sorted({str(w.message) for w in caught})
    passed: set[tuple[type, str]] = set()
    for w in caught:  # pass them on to the caller too, each once (the samples and the reference row both warn)
        key = (w.category, str(w.message))
        if key not in passed:
            passed.add(key)
            warn(str(w.message), w.category)  # attributed to the caller's line, not to cardiobench
    directions = metric_directions()
    if feature_extractor == "domain" and evaluator is not None:
        ruler = {
            "evaluator_id": evaluator.id,
            "evaluator_sha256": evaluator.digest,
            "evaluator_accuracy": evaluator.meta.get("accuracy", {}).get("test"),
        }
    elif uses_fidelity:
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
        "n_samples": int(n_items),
        "n_real": int(len(vtest) if vtest is not None else len(test)),
        **({"dims": 3, "depth": depth, "n_slices": int(len(s)),
            "volume_spacing": [float(v) for v in vspacing]} if vspacing is not None else {}),
        "n_reference": int(n_ref) if reference else 0,
        "kid_subset_size": ctx.settings.get("kid_subset_size"),
        "isc_splits": ctx.settings.get("isc_splits"),
        "conditional": conditional,
        **(
            {
                "classifier_id": evaluator.id,
                "class_counts": ctx.settings.get("class_counts"),
                "class_kid_subset_size": ctx.settings.get("class_kid_subset_size"),
            }
            if conditional and evaluator is not None
            else {}
        ),
        "distance_unit": unit,
        "spacing": [float(v) for v in spacing_mm],  # per pixel of the samples, in distance_unit
        "spacing_mm": [float(v) for v in spacing_mm] if unit == "mm" else None,
        "metrics_run": [name for name, _ in chosen],
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 3)},
        "notes": notes,
        # the real-vs-real reference of fid_relative: median and min/max FID over random halves of the test split
        "fid_real_halves": halves,
        # the FID ruler's validity record, condensed (cardiobench.metrics.validity); None unless the ruler is a
        # domain evaluator (Inception has no record yet)
        "ruler_validity": (ruler_validity(evaluator.validity)
                           if evaluator is not None and feature_extractor == "domain" else None),
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
    distance_unit: str | None = None,
) -> dict[str, Any]:
    """Evaluate predicted label maps against ground truth (both (N, H, W)), or volumes (both (N, D, H, W), with
    ``spacing`` (slice, rows, cols) or one per volume: slice metrics on their slices, the ``volume`` metric's
    3-D Dice and HD95 on the volumes).

    ``spacing`` per pixel in ``distance_unit``: ``"mm"``, or ``"px"`` for a data set without voxel spacing;
    ``None`` (the default) means mm with a spacing and px without one (``spacing=None`` = pixels). HD95 and
    the anatomy distances are in that unit, ``meta["distance_unit"]`` (and ``meta["hd95_unit"]``) says which.
    """
    p_raw, g_raw = (x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x) for x in (pred, target))
    vol = p_raw.ndim == 4  # volumes (N, D, H, W): slice metrics on their slices, the volume metric on them
    if vol and g_raw.shape != p_raw.shape:
        raise DataError(f"pred and target shapes differ: {p_raw.shape} vs {g_raw.shape}")
    flat = (lambda a: a.reshape(-1, *a.shape[2:])) if vol else (lambda a: a)
    p, g = _labels(flat(p_raw), "pred"), _labels(flat(g_raw), "target")
    if p.shape != g.shape:
        raise DataError(f"pred and target shapes differ: {p.shape} vs {g.shape}")
    vspacing = None
    try:
        if vol:
            vspacing = spacing_array(spacing, len(p_raw), axes=3)
            sp = np.repeat(vspacing[:, 1:], p_raw.shape[1], axis=0)
        else:
            sp = spacing_array(spacing, len(p))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    unit = _unit(distance_unit, spacing)
    chosen = _metrics_for("segmentation", metrics)
    ctx = MetricContext(task="segmentation", masks=p, spacing=sp, target=g, device=device,
                        volumes=p_raw.astype(np.uint8) if vol else None,
                        target_volumes=g_raw.astype(np.uint8) if vol else None, volume_spacing=vspacing,
                        options={"distance_unit": unit})
    timings: dict[str, float] = {}
    values = _run(chosen, ctx, timings)
    directions = metric_directions()
    return {
        "task": "segmentation",
        "metrics": values,
        "directions": {k: directions.get(k, "none") for k in values},
        "meta": {
            "evaluator_id": SEGMENTATION_RULER,
            "n_cases": int(len(p_raw)),
            **({"dims": 3, "n_slices": int(len(p))} if vol else {}),
            "distance_unit": unit,
            "hd95_unit": unit,
            "metrics_run": [name for name, _ in chosen],
            "seconds": timings,
        },
    }

