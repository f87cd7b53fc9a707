"""The benchmark pipeline: config -> plan, and the shipped checkpoints of the quick preset."""

import pytest

from cardiobench.engine import pipeline
from cardiobench.engine.checkpoints import shipped_checkpoint
from cardiobench.engine.train import resolve_spec
from cardiobench.errors import CardiobenchError


@pytest.mark.parametrize("noise", ["gaussian", "blurring"])
def test_quick_preset_has_a_shipped_checkpoint_of_the_same_spec(noise):
    cfg = pipeline.resolve("quick", None, {"diffusion.noise": noise}, [])
    plan = pipeline.plan_from_config(cfg)
    h = resolve_spec(plan.train).hash()
    assert shipped_checkpoint(h) is not None, (
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


def test_segmentation_needs_an_image_conditioning_method():
    with pytest.raises(CardiobenchError, match="segmentation needs an image-conditioning method"):
        pipeline.plan_from_config(pipeline.resolve("quick", None, {"run.task": "segmentation"}, []))
    with pytest.raises(CardiobenchError, match="unknown task"):
        pipeline.plan_from_config(pipeline.resolve("quick", None, {"run.task": "segmentaton"}, []))


def test_segmentation_preset_controlnet_base_is_the_shipped_quick_model():
    """The segmentation preset trains on top of the quick unconditional model, which ships with cardiobench."""
    from cardiobench.conditioning.controlnet import ControlNet

    plan = pipeline.plan_from_config(pipeline.resolve("segmentation", None, {}, []))
    assert plan.task == "segmentation" and plan.conditioning == "controlnet" and plan.ensemble_k == 5
    base = resolve_spec(ControlNet().base_spec(resolve_spec(plan.train)))
    quick = resolve_spec(pipeline.plan_from_config(pipeline.resolve("quick", None, {}, [])).train)
    assert base.hash() == quick.hash()
    assert shipped_checkpoint(base.hash()) is not None


def test_conditioning_goes_into_the_run_spec_only_when_set():
    plain = pipeline.plan_from_config(pipeline.resolve("quick", None, {}, []))
    assert "conditioning" not in plain.spec()  # unconditional run hashes are unchanged by conditioning support
    cfg = pipeline.plan_from_config(pipeline.resolve("quick", None, {"conditioning.method": "classifier-free",
                                                                     "conditioning.guidance_scale": 3.0}, []))
    assert cfg.spec()["conditioning"]["guidance_scale"] == 3.0 and cfg.train.conditioning == "classifier-free"
    assert cfg.spec_hash != plain.spec_hash and cfg.train_hash != plain.train_hash


def test_class_rows_take_equal_counts_of_each_requested_class_in_order():
    import numpy as np

    labels = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 2])
    idx, names = pipeline._class_rows(labels, per_class=3)
    assert names == ["NOR", "MINF", "DCM", "HCM", "RV"]
    assert idx.tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]  # 2 each: the fewest any class has
    idx, names = pipeline._class_rows(np.array([2, 2, 2, 4]), per_class=8)
    assert names == ["DCM", "RV"] and idx.tolist() == [0, 3]


def test_run_spec_holds_the_sampler_s_resolved_options_so_a_changed_default_changes_the_hash(monkeypatch):
    from cardiobench.diffusion.ddim import DDIMSampler

    plan = pipeline.plan_from_config(pipeline.resolve("quick", None, {"sample.sampler": "ddim"}, []))
    resolved = plan.spec()["sample"]["resolved"]
    assert resolved["use_clipped_model_output"] is True and resolved["eta"] == 0.0
    assert resolved["num_inference_steps"] == 50
    before = plan.spec_hash
    original = DDIMSampler.__init__

    def other_default(self, *args, **kwargs):
        kwargs.setdefault("use_clipped_model_output", False)
        original(self, *args, **kwargs)

    monkeypatch.setattr(DDIMSampler, "__init__", other_default)
    again = pipeline.plan_from_config(pipeline.resolve("quick", None, {"sample.sampler": "ddim"}, []))
    assert again.spec_hash != before and again.train_hash == plan.train_hash
