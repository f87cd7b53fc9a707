"""The benchmark pipeline: config -> plan, and the shipped checkpoints of the quick preset."""

import pytest

from cardiobench.engine import pipeline
from cardiobench.engine.train import resolve_spec
from cardiobench.errors import CardiobenchError


@pytest.mark.parametrize("noise", ["gaussian", "blurring"])
def test_quick_preset_has_a_shipped_checkpoint_of_the_same_spec(noise):
    cfg = pipeline.resolve("quick", None, {"diffusion.noise": noise}, [])
    plan = pipeline.plan_from_config(cfg)
    h = resolve_spec(plan.train).hash()
    assert pipeline.shipped_checkpoint(h) is not None, (
        f"no shipped checkpoint for the quick {noise} spec {h[:12]}: regenerate it with "
        f"`cardiobench run --noise {noise} --sampler ddpm --retrain` and copy it to cardiobench/assets/checkpoints"
    )


def test_generic_options_go_only_to_factories_that_take_them():
    plan = pipeline.plan_from_config(pipeline.resolve("quick", None, {"diffusion.noise": "blurring"}, []))
    assert "beta_schedule" not in plan.train.noise_options  # blurring has no beta schedule
    assert plan.train.noise_options["image_size"] == 32
    plan = pipeline.plan_from_config(pipeline.resolve("quick", None, {}, []))
    assert plan.train.noise_options["beta_schedule"] == "cosine" and "image_size" not in plan.train.noise_options


def test_run_spec_hash_changes_with_sampler_but_train_hash_does_not():
    a = pipeline.plan_from_config(pipeline.resolve("quick", None, {"sample.sampler": "ddpm"}, []))
    b = pipeline.plan_from_config(pipeline.resolve("quick", None, {"sample.sampler": "ddim"}, []))
    assert a.train_hash == b.train_hash and a.spec_hash != b.spec_hash


def test_segmentation_task_is_refused_with_a_clear_error():
    with pytest.raises(CardiobenchError, match="task 'segmentation'"):
        pipeline.plan_from_config(pipeline.resolve("quick", None, {"run.task": "segmentation"}, []))
