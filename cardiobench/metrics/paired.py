"""The evaluations of the paired tasks: ``evaluate_synthesis`` (mask-to-image) and ``evaluate_utility``.

Both run their task's metric plugins (``cardiobench.metrics.synthesis``, ``cardiobench.metrics.utility``: the
built-ins registered with ``default=True``, or the ones named) on a ``MetricContext`` that carries the images, and
return what ``cardiobench.metrics.api`` returns for the other tasks: ``{"task", "metrics", "directions", "meta"}``.
The rulers are looked up through their modules (``image_ruler.get_image_evaluator``,
``segmenters.reference_segmenter``) when called, so a test can substitute tiny ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiobench.data import open_dataset
from cardiobench.downstream import segmenter as segmenters
from cardiobench.engine.loop import as_progress
from cardiobench.errors import DataError
from cardiobench.metrics import image_ruler
from cardiobench.metrics.api import _components, _labels, _metrics_for, _run
from cardiobench.metrics.base import MetricContext, metric_directions
from cardiobench.metrics.segmentation import spacing_array
from cardiobench.metrics.validity import ruler_validity

__all__ = ["evaluate_synthesis", "evaluate_utility"]


def evaluate_synthesis(
    images,
    masks,
    real_images,
    dataset: str = "phantom",
    *,
    data_options: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
    device: str = "cpu",
    seed: int = 0,
    inception_weights=None,
    distance_unit: str | None = None,
    log=None,
) -> dict[str, Any]:
    """Evaluate generated MRI slices ``images`` (N, H, W) in [0, 1], drawn for the label maps ``masks``, against the
    real slices of the same masks ``real_images`` (the synthesis task; see ``cardiobench.metrics.synthesis``).

    The image ruler (``cardiobench.metrics.image_ruler``) and the reference segmenter
    (``cardiobench.downstream.segmenter``) of ``dataset`` at the images' size are trained on first use on its real
    training split and cached; only the ones the chosen metrics use (metadata ``uses_image_ruler`` /
    ``uses_segmenter``), reporting to ``log`` (a ``Progress`` or a ``log(message)`` callable).
    ``meta["evaluator_id"]`` names both (``<ruler id>+seg-<segmenter id>``): rows are ranked
    together only when both are the same. ``meta["ruler_validity"]`` is the image ruler's validity record.
    """
    fake = np.asarray(images, dtype=np.float32)
    real = np.asarray(real_images, dtype=np.float32)
    m = _labels(masks, "masks")
    if fake.ndim != 3 or fake.shape != real.shape or fake.shape != m.shape:
        raise DataError(f"images, real images and masks must share one (N, H, W) shape, got {fake.shape}, "
                        f"{real.shape} and {m.shape}")
    if len(fake) < 2:
        raise DataError(f"need at least 2 images to evaluate, got {len(fake)}")
    size = int(fake.shape[-1])
    components = _components("synthesis", metrics)
    chosen = [(name, comp.create()) for name, comp in components]
    progress = as_progress(log)
    evaluator = segmenter = None
    ids: list[str] = []
    if any(comp.metadata.get("uses_image_ruler") for _, comp in components):
        evaluator = image_ruler.get_image_evaluator(dataset, data_options, size=size, progress=progress)
        ids.append(evaluator.id)
    if any(comp.metadata.get("uses_segmenter") for _, comp in components):
        segmenter = segmenters.reference_segmenter(dataset, size, data_options, device=device, progress=progress)
        ids.append(f"seg-{segmenter.id}")
    unit = distance_unit or "mm"  # no synthesis metric measures a distance; the board groups by the data set's unit
    ctx = MetricContext(task="synthesis", masks=m, spacing=spacing_array(None, len(m)), images=fake,
                        real_images=real, evaluator=evaluator, segmenter=segmenter, device=device,
                        options={"seed": seed, "inception_weights": inception_weights, "distance_unit": unit})
    timings: dict[str, float] = {}
    values = _run(chosen, ctx, timings)
    directions = metric_directions()
    return {
        "task": "synthesis",
        "metrics": values,
        "directions": {k: directions.get(k, "none") for k in values},
        "meta": {
            "evaluator_id": "+".join(ids) or None,
            "image_evaluator_id": getattr(evaluator, "id", None),
            "segmenter_id": getattr(segmenter, "id", None),
            "ruler_validity": ruler_validity(getattr(evaluator, "validity", None)),
            "n_images": int(len(fake)),
            "distance_unit": unit,
            "metrics_run": [name for name, _ in chosen],
            "seconds": timings,
            **ctx.settings,
        },
    }


def evaluate_utility(
    images,
    masks,
    dataset: str = "phantom",
    *,
    data_options: dict[str, Any] | None = None,
    eval_dataset: str | None = None,
    eval_options: dict[str, Any] | None = None,
    few_patients: int = 3,
    segmenter: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> dict[str, Any]:
    """Score the downstream utility of synthetic pairs: ``images`` (M, H, W) in [0, 1] drawn for the generated label
    maps ``masks`` (the utility task; see ``cardiobench.metrics.utility``).

    Real training pairs: ``dataset``'s training split at the masks' size; the segmenters are scored on the test
    split of ``eval_dataset`` (default ``dataset``) with ``eval_options`` (default ``data_options``).
    ``segmenter``: ``SegmenterSpec`` fields that replace the fixed recipe's (e.g. ``{"steps": 50}`` in tests).
    """
    fake = np.asarray(images, dtype=np.float32)
    m = _labels(masks, "masks")
    if fake.shape != m.shape:
        raise DataError(f"images and masks must share one (N, H, W) shape, got {fake.shape} and {m.shape}")
    if len(m) < 2:
        raise DataError(f"need at least 2 synthetic pairs, got {len(m)}")
    size = int(m.shape[-1])
    train = open_dataset(dataset, size=size, **(data_options or {})).load("train")
    target = eval_dataset or dataset
    target_options = eval_options if eval_dataset else (eval_options or data_options)
    source = open_dataset(target, size=size, **(target_options or {}))
    test = source.load("test")
    if len(train) < 2 or len(test) < 2:
        raise DataError(f"utility needs real training pairs of {dataset!r} and test pairs of {target!r}, got "
                        f"{len(train)} and {len(test)}")
    unit = str(getattr(source, "spacing_unit", "mm"))
    chosen = _metrics_for("utility", metrics)
    ctx = MetricContext(task="utility", masks=m, spacing=spacing_array(None, len(m)), images=fake, device=device,
                        options={"real_train": train, "eval_test": test, "few_patients": int(few_patients),
                                 "segmenter": dict(segmenter or {}), "seed": seed, "distance_unit": unit,
                                 "progress": as_progress(log)})
    timings: dict[str, float] = {}
    values = _run(chosen, ctx, timings)
    directions = metric_directions()
    recipe = segmenters.SegmenterSpec(resolution=size, **dict(segmenter or {}))
    return {
        "task": "utility",
        "metrics": values,
        "directions": {k: directions.get(k, "none") for k in values},
        "meta": {
            # the ruler: the segmenter's recipe (its hash without the training data) and the test set scored
            "evaluator_id": f"seg-{recipe.short_hash()}:{target}",
            "eval_dataset": target,
            "n_images": int(len(test)),
            "distance_unit": unit,
            "metrics_run": [name for name, _ in chosen],
            "seconds": timings,
            **ctx.settings,
        },
    }
