"""Conditional generation metrics: cond_accuracy against the evaluator's own accuracy, per-class FID/KID."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cardiobench.data.base import GROUPS
from cardiobench.errors import DataError
from cardiobench.metrics import MetricContext, evaluate_generation, metric_directions
from cardiobench.metrics.api import _reference_pick
from cardiobench.metrics.base import CLASS_KEYS, CONDITIONAL_KEYS
from cardiobench.metrics.conditional import check_labels, conditional_accuracy, conditional_metrics
from cardiobench.metrics.evaluator import ASSETS, load_evaluator_file
from cardiobench.metrics.fidelity import FidelityWarning
from cardiobench.plugins import get_component
from cardiobench.testing.metrics import MetricContract

SHIPPED = ASSETS / "phantom-evaluator.pt"


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator_file(SHIPPED)


def _balanced(split, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``per_class`` slices of every group."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(split.groups == g))[:per_class] for g in range(len(GROUPS))]
    return np.sort(np.concatenate(picks))


class TestConditionalContract(MetricContract):
    """The metric-plugin contract, on a context that carries labels (without them the metric reports nothing)."""

    metric_name = "conditional"
    needs_evaluator = True

    def make_context(self, task: str) -> MetricContext:
        ctx = super().make_context(task)
        ctx.labels = np.arange(len(ctx.masks)) % len(GROUPS)
        ctx.real_labels = np.arange(len(ctx.real)) % len(GROUPS)
        return ctx

    def test_compute_returns_flat_floats_with_directions(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FidelityWarning)  # 2 masks per class: adapted sizes
            super().test_compute_returns_flat_floats_with_directions()
            out = self.make_metric().compute(self.make_context("generation"))
        assert set(out) == set(CONDITIONAL_KEYS)


def test_directions_registered():
    d = metric_directions()
    assert d["cond_accuracy"] == "higher"
    for key in CLASS_KEYS:
        assert d[f"fid_{key}"] == d[f"kid_{key}"] == "lower"
    assert d["fid_class_mean"] == d["kid_class_mean"] == "lower"
    assert [f"fid_{k}" for k in CLASS_KEYS] == ["fid_nor", "fid_minf", "fid_dcm", "fid_hcm", "fid_rv"]


def test_true_labels_match_evaluator_accuracy_and_shuffled_are_worse(phantom64, evaluator):
    """Real test masks labelled with their true groups: cond_accuracy is exactly ``Evaluator.accuracy``; the
    same masks with shuffled labels are recognised far less often and sit far from their 'class' (FID)."""
    test, train = phantom64["test"], phantom64["train"]
    idx = _balanced(test, 40)
    masks, groups = test.masks[idx], test.groups[idx]
    real = _balanced(train, 60, seed=1)
    assert conditional_accuracy(evaluator, masks, groups) == evaluator.accuracy(masks, groups)
    shuffled = np.random.default_rng(3).permutation(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FidelityWarning)
        good = conditional_metrics(masks, groups, train.masks[real], train.groups[real], evaluator=evaluator)
        bad = conditional_metrics(masks, shuffled, train.masks[real], train.groups[real], evaluator=evaluator)
    assert good["cond_accuracy"] == evaluator.accuracy(masks, groups)
    assert good["cond_accuracy"] > 0.7  # the shipped evaluator: about 0.8 on test slices
    assert bad["cond_accuracy"] < good["cond_accuracy"] - 0.4, (bad["cond_accuracy"], good["cond_accuracy"])
    for key in CLASS_KEYS:
        assert bad[f"fid_{key}"] > 5 * good[f"fid_{key}"], key
        assert bad[f"kid_{key}"] > good[f"kid_{key}"], key
    assert bad["fid_class_mean"] > 10 * good["fid_class_mean"]
    assert good["fid_class_mean"] == pytest.approx(np.mean([good[f"fid_{k}"] for k in CLASS_KEYS]))
    assert good["_settings"]["class_counts"]["NOR"] == [40, 60]
    assert good["_settings"]["class_kid_subset_size"]["NOR"] == 20  # half the smaller set


def test_small_class_gets_no_value_and_a_warning(phantom64, evaluator):
    test = phantom64["test"]
    idx = _balanced(test, 6)
    labels = test.groups[idx].copy()
    labels[labels == 4] = 0  # no sample requested as RV ...
    labels[np.flatnonzero(labels == 3)[1:]] = 0  # ... and a single one as HCM
    real = _balanced(test, 30, seed=2)
    with pytest.warns(FidelityWarning, match=r"skipped for HCM \(1 samples, 30 real\), RV \(0 samples, 30 real\)"):
        out = conditional_metrics(test.masks[idx], labels, test.masks[real], test.groups[real], evaluator=evaluator)
    assert "fid_rv" not in out and "kid_hcm" not in out
    assert {"fid_nor", "fid_minf", "fid_dcm", "kid_nor"} <= set(out)
    assert out["fid_class_mean"] == pytest.approx(np.mean([out[f"fid_{k}"] for k in ("nor", "minf", "dcm")]))


def test_unconditional_context_reports_nothing():
    metric = get_component("metric", "conditional").create()
    ctx = MetricContext(task="generation", masks=np.zeros((4, 8, 8), np.uint8), spacing=np.ones((4, 2)))
    assert metric.compute(ctx) == {}


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([0, 1, 2], "one class per mask: expected shape \\(4,\\)"),
        (np.zeros((4, 1), int), "expected shape \\(4,\\)"),
        ([0.0, 1.0, 2.0, 3.0], "integer class indices 0..4 \\(NOR, MINF, DCM, HCM, RV\\), not float64"),
        ([0, 1, 5, 2], "outside 0..4 \\(found 0..5\\)"),
        ([-1, 1, 2, 2], "outside 0..4"),
    ],
)
def test_bad_labels_are_one_line_data_errors(labels, match):
    with pytest.raises(DataError, match=match) as exc:
        check_labels(labels, 4)
    assert "\n" not in str(exc.value)
    masks = np.zeros((4, 16, 16), np.uint8)
    with pytest.raises(DataError, match=match):
        evaluate_generation(masks, "phantom", labels=labels)  # validated before any data is loaded


def test_torch_labels_accepted():
    torch = pytest.importorskip("torch")
    assert check_labels(torch.tensor([4, 0, 1]), 3).tolist() == [4, 0, 1]


def test_reference_pick_matches_requested_classes():
    groups = np.repeat(np.arange(5), 10)
    labels = np.array([0, 0, 0, 1, 4, 4])
    pick = _reference_pick(groups, labels, len(labels), seed=0)
    assert np.bincount(groups[pick], minlength=5).tolist() == [3, 1, 0, 0, 2]
    assert np.all(np.diff(pick) > 0)
    assert len(_reference_pick(groups, None, 7, seed=0)) == 7


@pytest.mark.slow
def test_evaluate_generation_with_labels(shared_cache, phantom64):
    """Through the public API: the reference row's cond_accuracy is the evaluator's accuracy on the real test
    slices (the ceiling), its per-class FID the real-vs-real floor; unconditional runs get no such keys."""
    test, train = phantom64["test"], phantom64["train"]
    idx = _balanced(train, 20, seed=4)
    samples, groups = train.masks[idx], train.groups[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_generation(samples, "phantom", labels=groups, metrics=["conditional"])
        plain = evaluate_generation(samples, "phantom", metrics=["conditional"])
    ev = load_evaluator_file(SHIPPED)
    assert res["metrics"]["cond_accuracy"] == ev.accuracy(samples, groups)
    assert res["reference"]["cond_accuracy"] == ev.accuracy(test.masks, test.groups)
    assert set(res["metrics"]) == set(res["reference"]) == set(CONDITIONAL_KEYS)
    assert res["directions"]["fid_nor"] == "lower" and res["directions"]["cond_accuracy"] == "higher"
    meta = res["meta"]
    assert meta["conditional"] is True and meta["classifier_id"] == ev.id == meta["evaluator_id"]
    assert meta["n_reference"] == 100 and meta["class_counts"]["DCM"] == [20, int((test.groups == 2).sum())]
    assert any("per-class KID subset size lowered" in note for note in meta["notes"])
    # the floor: real-vs-real per-class FID is small next to what shuffled labels give (see the test above)
    assert res["reference"]["fid_class_mean"] < 3.0
    assert plain["metrics"] == {} and plain["reference"] == {} and plain["meta"]["conditional"] is False
