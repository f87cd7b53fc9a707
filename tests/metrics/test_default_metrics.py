"""What a run that names no metrics computes never depends on what is installed (issue 20, item 10)."""

from __future__ import annotations

import warnings

import pytest

from cardiobench.hookspecs import hookimpl
from cardiobench.metrics.api import default_metric_names, evaluate_segmentation
from cardiobench.testing.metrics import contract_masks


class Extra:
    """An installed metric plugin, one that even claims to be a default."""

    name = "extra"
    tasks = ("generation", "segmentation")
    directions = {"extra_score": "higher"}

    def compute(self, ctx):
        return {"extra_score": 1.0}


class ExtraPlugin:
    @staticmethod
    @hookimpl
    def register_metrics(register):
        register("extra", Extra, tasks=Extra.tasks, direction=dict(Extra.directions))
        register("extra-default", Extra, tasks=Extra.tasks, direction=dict(Extra.directions), default=True)


def test_an_installed_metric_does_not_change_a_default_run(register_plugin):
    target = contract_masks(3, 32, seed=1)
    pred = contract_masks(3, 32, seed=2)
    before = evaluate_segmentation(pred, target, 1.5)
    names = default_metric_names("segmentation")
    assert names == ["dice", "hd95", "anatomy", "volume"] and default_metric_names("generation") == [
        "fidelity", "conditional", "memorisation", "anatomy", "volume"]

    register_plugin(ExtraPlugin(), name="extra-plugin")
    after = evaluate_segmentation(pred, target, 1.5)
    assert default_metric_names("segmentation") == names
    assert list(after["metrics"]) == list(before["metrics"]) and "extra_score" not in after["metrics"]
    assert after["meta"]["metrics_run"] == names
    opted_in = evaluate_segmentation(pred, target, 1.5, metrics=["dice", "extra"])  # named: computed
    assert opted_in["metrics"]["extra_score"] == 1.0 and opted_in["meta"]["metrics_run"] == ["dice", "extra"]


def test_every_builtin_metric_is_registered_as_a_default():
    from cardiobench.plugins import registry

    builtins = [c for c in registry("metric") if c.origin == "cardiobench"]
    assert builtins and all(c.metadata.get("default") is True for c in builtins)


class Warner:
    name = "warner"
    tasks = ("generation",)
    directions = {"warner_score": "none"}

    def compute(self, ctx):
        warnings.warn("a set size was adapted", UserWarning, stacklevel=2)
        return {"warner_score": float(len(ctx.masks))}


class WarnerPlugin:
    @staticmethod
    @hookimpl
    def register_metrics(register):
        register("warner", Warner, tasks=Warner.tasks, direction=dict(Warner.directions))


def test_a_warning_of_the_samples_and_the_reference_row_is_passed_on_once(register_plugin, phantom32,
                                                                          shared_cache):
    from cardiobench.metrics import evaluate_generation

    register_plugin(WarnerPlugin(), name="warner-plugin")
    samples = phantom32["train"].masks[:8]
    with pytest.warns(UserWarning, match="a set size was adapted") as caught:
        out = evaluate_generation(samples, "phantom", metrics=["warner"])
    assert out["reference"]["warner_score"] > 0  # the metric ran twice: samples and reference row
    assert [str(w.message) for w in caught if "set size" in str(w.message)] == ["a set size was adapted"]
    assert out["meta"]["notes"] == ["a set size was adapted"]


def test_the_kid_subset_note_reads_the_same_whichever_set_comes_first():
    from cardiobench.metrics.fidelity import _adapt

    samples_first = _adapt(256, 568, None, None)[3]
    reference_first = _adapt(568, 256, None, None)[3]  # the reference row: test split vs training masks
    kid = [n for n in samples_first if n.startswith("KID")]
    assert kid == ["KID subset size lowered from 1000 to 128 (sets of 256 and 568)"]
    assert kid == [n for n in reference_first if n.startswith("KID")]
