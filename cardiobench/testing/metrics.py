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
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from cardiobench.metrics.base import DIRECTIONS, TASKS, MetricContext


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


class MetricContract:
    """Subclass as ``Test...``; set ``metric_name`` (registered) or override ``make_metric``."""

    metric_name: ClassVar[str | None] = None
    #: give generation contexts a domain evaluator (None: the registration metadata ``uses_evaluator``)
    needs_evaluator: ClassVar[bool | None] = None
    #: give contexts class labels (None: the registration metadata ``needs_labels``)
    needs_labels: ClassVar[bool | None] = None
    size: ClassVar[int] = 32

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
        if self._metadata("needs_labels", self.needs_labels):
            from cardiobench.data.base import GROUPS

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

    def test_compute_returns_flat_floats_with_directions(self):
        m = self.make_metric()
        for task in m.tasks:
            ctx = self.make_context(task)
            before = ctx.masks.copy()
            out = m.compute(ctx)
            assert isinstance(out, dict) and out, task
            for key, value in out.items():
                assert isinstance(key, str)
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
                assert math.isfinite(value) or math.isnan(value), (key, value)
                assert key in m.directions, f"{key} has no declared direction"
            assert np.array_equal(before, ctx.masks), "compute modified its input"

    def test_deterministic(self):
        m = self.make_metric()
        for task in m.tasks:
            a, b = m.compute(self.make_context(task)), m.compute(self.make_context(task))
            assert a.keys() == b.keys()
            for key in a:
                assert (a[key] == b[key]) or (math.isnan(a[key]) and math.isnan(b[key])), key


_EVALUATORS: dict[int, Any] = {}


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
