"""The contract every metric plugin must meet, as a reusable pytest suite.

In your plugin's tests::

    from cardiobench.testing.metrics import MetricContract

    class TestMyMetric(MetricContract):
        metric_name = "my-metric"          # as registered (the plugin must be installed/registered)

or, for a metric object not registered::

    class TestMyMetric(MetricContract):
        def make_metric(self):
            return MyMetric()

It checks: the registration metadata (``tasks``; ``direction``, a dict mapping every value the metric reports
to ``"lower"``/``"higher"`` (is better; the leaderboard ranks by it) or ``"none"`` (shown, never ranked),
equal to the metric object's ``directions``); ``compute`` on small hand-made contexts of each declared task
returns a flat dict of finite-or-NaN floats whose keys all have a direction; the result is deterministic and
does not modify its inputs. Generation metrics that need the domain evaluator (``needs_evaluator = True``, or
registration metadata ``uses_evaluator=True``) get one trained on the context's masks (a few seconds); those
registered with ``needs_labels=True`` get class labels in the context.

Volumetric contexts (a ``--dims 3`` run): ``volumes`` (N, D, H, W) with their N*D slices as ``masks``,
``volume_spacing`` (N, 3), and ``real_volumes`` (generation; ``real`` and ``train`` are slices of volumes too) or
``target_volumes`` (segmentation; ``target`` their slices), made by ``contract_volumes``. Every generation and
segmentation metric is also run on them (``test_volumetric_contexts``): it must score a volumetric run's slices
like any masks. A metric registered with ``needs_volumes=True`` (it reports nothing on 2-D runs) gets them in
every check.

Contexts of the paired tasks: ``synthesis`` has ``images`` (generated slices) and ``real_images`` made from the
masks (grey levels per structure, smoothed, with noise), a tiny image ruler as ``evaluator`` when the metric is
registered with ``uses_image_ruler=True`` and a tiny reference segmenter when ``uses_segmenter=True``;
``utility`` has the same ``images`` and options ``real_train`` / ``eval_test`` (small ``SliceSet``s),
``few_patients`` and ``segmenter`` (a 3-step recipe).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from cardiobench.data.base import GROUPS, SliceSet
from cardiobench.downstream import segmenter as segmenters
from cardiobench.downstream.segmenter import SegmenterSpec, train_segmenter
from cardiobench.metrics import image_ruler
from cardiobench.metrics.base import DIRECTIONS, TASKS, MetricContext
from cardiobench.metrics.image_ruler import ImageEvaluatorConfig, train_image_evaluator

#: the tasks whose runs may be volumetric, so whose metrics the suite also runs on volumetric contexts
VOLUME_TASKS: tuple[str, ...] = ("generation", "segmentation")


def contract_masks(n: int = 12, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size) plausible hearts: LV disk in a MYO ring with an RV crescent, jittered."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        r, t = size * rng.uniform(0.12, 0.18), size * rng.uniform(0.07, 0.1)
        d = np.hypot(yy - cy, xx - cx)
        drv = np.hypot((yy - cy) / 1.3, xx - (cx - r - t))
        m = np.zeros((size, size), np.uint8)
        m[drv < r + t] = 1
        m[d < r + t] = 2
        m[d < r] = 3
        out[i] = m
    return out


def contract_volumes(n: int = 4, depth: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, depth, size, size) uint8 plausible short-axis stacks, base (slice 0) to apex.

    Each volume is one heart: an LV disk in a MYO ring whose radius tapers from the base to about half at the
    apex, with an RV crescent on the basal 60-80 % of the slices (absent towards the apex, as in ACDC); centre,
    radius and wall thickness are drawn per volume, and the centre drifts by a fraction of a pixel per slice.
    Every slice holds an LV and a MYO, so the volumes pass the volume anatomy checks
    (``cardiobench.metrics.volume``); up to 64 px, every slice also passes the 2-D anatomy criteria at a 1.5 mm
    pixel (larger, the widest RV crescents can exceed the 30 mm RV concavity limit).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((n, depth, size, size), np.uint8)
    for i in range(n):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        r0, t = size * rng.uniform(0.13, 0.18), size * rng.uniform(0.07, 0.1)
        rv_slices = max(1, round(depth * rng.uniform(0.6, 0.8)))
        for z in range(depth):
            apical = z / max(depth - 1, 1)  # 0 at the base, 1 at the apex
            r = r0 * np.sqrt(1.0 - 0.75 * apical)
            cy, cx = cy + rng.normal(0.0, 0.2), cx + rng.normal(0.0, 0.2)
            d = np.hypot(yy - cy, xx - cx)
            m = np.zeros((size, size), np.uint8)
            if z < rv_slices:
                m[np.hypot((yy - cy) / 1.3, xx - (cx - r - t)) < r + t] = 1
            m[d < r + t] = 2
            m[d < r] = 3
            out[i, z] = m
    return out


class MetricContract:
    """Subclass as ``Test...``; set ``metric_name`` (registered) or override ``make_metric``."""

    metric_name: ClassVar[str | None] = None
    #: give generation contexts a domain evaluator (None: the registration metadata ``uses_evaluator``)
    needs_evaluator: ClassVar[bool | None] = None
    #: give contexts class labels (None: the registration metadata ``needs_labels``)
    needs_labels: ClassVar[bool | None] = None
    #: make every generation and segmentation context volumetric (None: the registration metadata
    #: ``needs_volumes``)
    needs_volumes: ClassVar[bool | None] = None
    size: ClassVar[int] = 32
    #: slices per volume of the volumetric contexts (3 volumes: 3 * depth slices)
    depth: ClassVar[int] = 4

    def _metadata(self, key: str, attribute: bool | None) -> bool:
        if attribute is not None:
            return bool(attribute)
        if not self.metric_name:
            return False
        from cardiobench.plugins import get_component

        return bool(get_component("metric", self.metric_name).metadata.get(key, False))

    def make_metric(self) -> Any:
        from cardiobench.plugins import get_component

        assert self.metric_name, "set metric_name or override make_metric"
        return get_component("metric", self.metric_name).create()

    def make_context(self, task: str) -> MetricContext:
        if task in VOLUME_TASKS and self._metadata("needs_volumes", self.needs_volumes):
            return self.make_volume_context(task)
        masks = contract_masks(10, self.size, seed=1)
        other = contract_masks(10, self.size, seed=2)
        spacing = np.full((len(masks), 2), 1.5)
        evaluator = None
        if task == "generation" and self._metadata("uses_evaluator", self.needs_evaluator):
            evaluator = _tiny_evaluator(self.size)
        ctx = MetricContext(
            task=task,
            masks=masks,
            spacing=spacing,
            target=other if task == "segmentation" else None,
            real=other if task == "generation" else None,
            train=contract_masks(16, self.size, seed=3) if task == "generation" else None,
            evaluator=evaluator,
        )
        if task in ("synthesis", "utility"):
            ctx.images, ctx.real_images = contract_images(masks, seed=4), contract_images(masks, seed=5)
        if task == "synthesis":
            if self._metadata("uses_image_ruler", None):
                ctx.evaluator = _tiny_image_evaluator(self.size)
            if self._metadata("uses_segmenter", None):
                ctx.segmenter = _tiny_segmenter(self.size)
        if task == "utility":
            ctx.options.update(real_train=contract_slices(24, self.size, seed=6),
                               eval_test=contract_slices(8, self.size, seed=7), few_patients=2,
                               segmenter=dict(TINY_SEGMENTER))
        return self._with_labels(ctx)

    def make_volume_context(self, task: str) -> MetricContext:
        """A volumetric context of ``task`` (generation or segmentation): 3 volumes of ``depth`` slices, spacing
        10 x 1.5 x 1.5 mm, ``masks`` their slices; the real (generation) or true (segmentation) volumes are other
        hearts, and generation's training masks the slices of 4 more."""
        volumes = contract_volumes(3, self.depth, self.size, seed=1)
        other = contract_volumes(3, self.depth, self.size, seed=2)
        n, d = volumes.shape[:2]
        generation = task == "generation"
        evaluator = None
        if generation and self._metadata("uses_evaluator", self.needs_evaluator):
            evaluator = _tiny_evaluator(self.size)
        ctx = MetricContext(
            task=task,
            masks=_slices(volumes),
            spacing=np.full((n * d, 2), 1.5),
            target=None if generation else _slices(other),
            real=_slices(other) if generation else None,
            train=_slices(contract_volumes(4, self.depth, self.size, seed=3)) if generation else None,
            evaluator=evaluator,
            volumes=volumes,
            real_volumes=other if generation else None,
            target_volumes=None if generation else other,
            volume_spacing=np.tile([10.0, 1.5, 1.5], (n, 1)),
        )
        return self._with_labels(ctx)

    def _with_labels(self, ctx: MetricContext) -> MetricContext:
        masks = ctx.masks
        if self._metadata("needs_labels", self.needs_labels):
            ctx.labels = np.arange(len(masks)) % len(GROUPS)
            if ctx.real is not None:
                ctx.real_labels = np.arange(len(ctx.real)) % len(GROUPS)
        return ctx

    # -- the contract ----------------------------------------------------------------------
    def test_declares_tasks_and_directions(self):
        m = self.make_metric()
        assert isinstance(m.name, str) and m.name
        assert m.tasks and set(m.tasks) <= set(TASKS), m.tasks
        assert m.directions, "declare a direction for every value the metric reports"
        for key, direction in m.directions.items():
            assert direction in DIRECTIONS, (key, direction)

    def test_registration_metadata_matches(self):
        if not self.metric_name:
            return
        from cardiobench.plugins import get_component

        comp = get_component("metric", self.metric_name)
        m = comp.create()
        assert comp.summary, "give the factory a docstring or a summary"
        assert tuple(comp.metadata.get("tasks", ())) == tuple(m.tasks)
        declared = comp.metadata.get("direction")
        assert isinstance(declared, dict), "register the metric with direction={value name: 'lower'|'higher'|'none'}"
        assert declared == dict(m.directions), "metadata 'direction' must equal the metric's directions"
        for key, direction in declared.items():
            assert isinstance(key, str) and direction in DIRECTIONS, (key, direction)

    @staticmethod
    def _check_values(m: Any, out: Any, task: str) -> None:
        assert isinstance(out, dict) and out, task
        for key, value in out.items():
            assert isinstance(key, str)
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
            assert math.isfinite(value) or math.isnan(value), (key, value)
            assert key in m.directions, f"{key} has no declared direction"

    def test_compute_returns_flat_floats_with_directions(self):
        m = self.make_metric()
        for task in m.tasks:
            ctx = self.make_context(task)
            before = ctx.masks.copy()
            out = m.compute(ctx)
            self._check_values(m, out, task)
            assert np.array_equal(before, ctx.masks), "compute modified its input"

    def test_volumetric_contexts(self):
        """A volumetric run gives every metric the N*D slices of its volumes as ``masks`` (the volumes beside
        them): a generation or segmentation metric scores them like any masks, and modifies neither."""
        m = self.make_metric()
        tasks = [task for task in m.tasks if task in VOLUME_TASKS]
        if not tasks:
            pytest.skip(f"no volumetric task among {m.tasks}")
        for task in tasks:
            ctx = self.make_volume_context(task)
            masks, volumes = ctx.masks.copy(), ctx.volumes.copy()
            out = m.compute(ctx)
            self._check_values(m, out, task)
            assert np.array_equal(masks, ctx.masks) and np.array_equal(volumes, ctx.volumes), \
                "compute modified its input"

    def test_deterministic(self):
        m = self.make_metric()
        for task in m.tasks:
            a, b = m.compute(self.make_context(task)), m.compute(self.make_context(task))
            assert a.keys() == b.keys()
            for key in a:
                assert (a[key] == b[key]) or (math.isnan(a[key]) and math.isnan(b[key])), key


def _slices(volumes: np.ndarray) -> np.ndarray:
    """(N, D, H, W) -> (N * D, H, W): the short-axis slices of volumes, volume by volume."""
    return volumes.reshape(-1, *volumes.shape[2:])


_EVALUATORS: dict[int, Any] = {}
#: the segmenter recipe of the contract's synthesis and utility contexts: a few steps of a narrow network
TINY_SEGMENTER: dict[str, Any] = {"steps": 3, "batch_size": 8, "features": [4, 4, 8, 8, 8, 4]}


def contract_images(masks: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, H, W) float32 images in [0, 1] that show ``masks``: a grey level per structure, smoothed, plus noise."""
    from scipy.ndimage import gaussian_filter

    levels = np.array([0.1, 0.45, 0.3, 0.8], dtype=np.float32)
    x = gaussian_filter(levels[masks], sigma=(0, 0.8, 0.8))
    x = x + np.random.default_rng(seed).normal(0.0, 0.03, x.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def contract_slices(n: int, size: int, seed: int = 0):
    """A ``SliceSet`` of ``n`` contract masks with their images, one slice per patient, cycling the groups."""
    masks = contract_masks(n, size, seed=seed)
    return SliceSet(masks=masks, images=contract_images(masks, seed=seed), groups=np.arange(n) % len(GROUPS),
                    patients=np.array([f"p{i:03d}" for i in range(n)]), phases=np.full(n, "ED"),
                    slice_index=np.zeros(n, dtype=np.int64), spacing=np.ones((n, 2), dtype=np.float32))


def _tiny_image_evaluator(size: int):
    """A 1-epoch image ruler on contract images (cached per size)."""
    key = -size  # beside the mask evaluators of ``_EVALUATORS``
    if key not in _EVALUATORS:
        slices = contract_slices(40, size, seed=8)
        _EVALUATORS[key] = train_image_evaluator(slices.images, slices.groups, ImageEvaluatorConfig(
            size=size, width=8, features=16, epochs=1, batch_size=16, probe_epochs=5))
    return _EVALUATORS[key]


def _tiny_segmenter(size: int):
    """A 3-step reference segmenter on contract pairs (not cached on disk)."""
    slices = contract_slices(16, size, seed=9)
    return train_segmenter(slices.images, slices.masks, SegmenterSpec(resolution=size, **TINY_SEGMENTER),
                           device="cpu", cache=False)


def _tiny_evaluator(size: int):
    """A 2-epoch evaluator on contract masks, saved to a temporary file (cached per size)."""
    if size not in _EVALUATORS:
        import tempfile

        from cardiobench.metrics.evaluator import EvaluatorConfig, train_evaluator

        masks = contract_masks(40, size, seed=5)
        groups = np.arange(40) % 5
        ev = train_evaluator(masks, groups, EvaluatorConfig(size=size, epochs=2, width=8, features=16))
        ev.save(tempfile.mkdtemp(prefix="cardiobench-contract-") + "/evaluator.pt")
        _EVALUATORS[size] = ev
    return _EVALUATORS[size]


def use_tiny_rulers(monkeypatch) -> None:
    """Make synthesis evaluations use the contract's tiny image ruler and reference segmenter (seconds, not
    minutes) for one test: ``use_tiny_rulers(monkeypatch)`` in a fixture or test."""
    monkeypatch.setattr(segmenters, "reference_segmenter", lambda dataset, size, *a, **k: _tiny_segmenter(size))
    monkeypatch.setattr(image_ruler, "get_image_evaluator", lambda dataset, *a, size, **k: _tiny_image_evaluator(size))
