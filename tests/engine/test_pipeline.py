"""The benchmark pipeline: config -> plan, and the shipped checkpoints of the quick preset."""

import pytest

from cardiobench.engine import pipeline
from cardiobench.engine.checkpoints import shipped_checkpoint
from cardiobench.engine.train import resolve_spec
from cardiobench.errors import CardiobenchError, IncompatibleError


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


def test_select_dataset_follows_registration_metadata_not_names(tmp_path, register_plugin):
    from types import SimpleNamespace

    from cardiobench.hookspecs import hookimpl

    def register_datasets(register):
        register("made-up", lambda **o: None, needs_data=False)  # generated: nothing to read
        register("on-disk", lambda **o: None)  # no metadata: a plugin data set reads files

    register_plugin(SimpleNamespace(register_datasets=hookimpl(register_datasets)), "dataplug")
    assert pipeline.select_dataset(None, None) == "phantom"
    assert pipeline.select_dataset(None, tmp_path) == "acdc"  # a root alone selects acdc, as `data info` does
    assert pipeline.select_dataset("on-disk", tmp_path) == "on-disk"
    assert pipeline.select_dataset("made-up", None) == "made-up"
    with pytest.raises(CardiobenchError) as exc:
        pipeline.select_dataset("made-up", tmp_path)
    msg = str(exc.value)
    assert f"--data-root {tmp_path} was given, but data set 'made-up' reads no files" in msg
    assert "drop --data-root to use made-up, or choose a data set that reads files with --dataset (acdc, on-disk)" \
        in msg
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(CardiobenchError, match="data.data_root .*plain.txt is a file, not a folder"):
        pipeline.select_dataset("on-disk", tmp_path / "plain.txt", flag="data.data_root")
    with pytest.raises(CardiobenchError, match="--data-root .*missing does not exist"):
        pipeline.select_dataset(None, tmp_path / "missing")
    with pytest.raises(CardiobenchError, match="did you mean 'phantom'"):
        pipeline.select_dataset("phantm", None)


def test_plan_refuses_a_data_root_the_data_set_cannot_use_and_compare_does_not_skip_it(tmp_path):
    cfg = pipeline.resolve("tiny", None, {"data.dataset": "phantom", "data.data_root": str(tmp_path)}, [])
    with pytest.raises(CardiobenchError) as exc:
        pipeline.plan_from_config(cfg)
    assert not isinstance(exc.value, IncompatibleError)  # compare would skip it silently otherwise
    assert "data.data_root" in str(exc.value) and "'phantom'" in str(exc.value)


def test_plan_refuses_too_few_samples_for_generation_metrics():
    cfg = pipeline.resolve("tiny", None, {"eval.num_samples": pipeline.MIN_GENERATION_SAMPLES - 1}, [])
    with pytest.raises(CardiobenchError, match=r"eval.num_samples \(--num-samples\) must be >= 2 for generation"):
        pipeline.plan_from_config(cfg)
    cfg = pipeline.resolve("tiny", None, {"eval.num_samples": pipeline.MIN_GENERATION_SAMPLES}, [])
    assert pipeline.plan_from_config(cfg).eval_samples == 2


def test_a_bad_noise_option_is_blamed_on_the_noise_process_not_the_sampler():
    cfg = pipeline.resolve("tiny", None, {}, ["diffusion.options.foo=1"])
    with pytest.raises(CardiobenchError) as exc:
        pipeline.plan_from_config(cfg)
    assert str(exc.value).startswith("bad option for noise process 'gaussian'") and "foo" in str(exc.value)
    cfg = pipeline.resolve("tiny", None, {}, ["sample.options.foo=1"])
    with pytest.raises(CardiobenchError, match="bad option for sampler 'ddpm'"):
        pipeline.plan_from_config(cfg)
