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
    assert ("drop --data-root to use made-up, or choose a data set that reads files with --dataset "
            "(acdc, acdc-h5, nifti-pairs, on-disk, pairs)") in msg
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


# -- units and sample counts travel with the numbers ------------------------------------------------------
def _slices(n: int = 6, size: int = 16):
    """``n`` hand-made hearts (cardiobench.testing.metrics.contract_masks) as a SliceSet with spacing 1."""
    import numpy as np

    from cardiobench.data.base import SliceSet
    from cardiobench.testing.metrics import contract_masks

    masks = contract_masks(n, size)
    return SliceSet(masks=masks, images=(masks / 3.0).astype(np.float32), groups=np.arange(n, dtype=np.int64) % 5,
                    patients=np.array([f"p{i // 2}" for i in range(n)]), phases=np.array(["ED", "ES"] * (n // 2)),
                    slice_index=np.arange(n, dtype=np.int64), spacing=np.ones((n, 2), np.float32))


class _ThirdPartySource:
    """A data set written before units were recorded: it has no ``spacing_unit``, which means mm."""

    name = "no-unit"

    def __init__(self, size: int = 16, **options):
        self.size = size

    def load(self, split: str):
        return _slices(size=self.size)


class _PixelSource(_ThirdPartySource):
    """Like ``acdc-h5`` without ``spacing_mm``: its spacing is in pixels."""

    name = "px-like"
    spacing_unit = "px"


@pytest.fixture
def unit_datasets(register_plugin):
    from types import SimpleNamespace

    from cardiobench.hookspecs import hookimpl

    def register_datasets(register):
        register("px-like", _PixelSource, needs_data=False)
        register("no-unit", _ThirdPartySource, needs_data=False)

    register_plugin(SimpleNamespace(register_datasets=hookimpl(register_datasets)), "unit-datasets")


@pytest.mark.parametrize("dataset, unit", [("px-like", "px"), ("no-unit", "mm")])
def test_evaluate_generation_takes_the_unit_from_the_data_set(unit_datasets, dataset, unit):
    from cardiobench.metrics.api import evaluate_generation

    samples = _slices(4).masks
    out = evaluate_generation(samples, dataset, metrics=["anatomy"], reference=False)
    assert out["meta"]["distance_unit"] == unit and out["meta"]["n_samples"] == 4
    assert out["meta"]["spacing"] == [1.0, 1.0] and out["meta"]["spacing_mm"] == ([1.0, 1.0] if unit == "mm" else None)
    forced = evaluate_generation(samples, dataset, metrics=["anatomy"], reference=False, distance_unit="mm")
    assert forced["meta"]["distance_unit"] == "mm"


def test_run_context_from_the_evaluation_meta():
    validity = {"valid": False, "flag": "near chance", "accuracy": 0.25, "chance": 0.2, "ordering": {}}
    assert pipeline.run_context("generation", {"n_samples": 64, "distance_unit": "px", "n_real": 9,
                                               "ruler_validity": validity}) == {
        "n_samples": 64, "distance_unit": "px", "ruler_validity": validity}
    assert pipeline.run_context("segmentation", {"n_cases": 12, "n_images": 12, "distance_unit": "mm"}) == {
        "n_samples": 12, "distance_unit": "mm"}
    assert pipeline.run_context("generation", {}) == {"distance_unit": "mm"}


@pytest.mark.parametrize("dataset, unit, other", [("px-like", "px", "mm"), ("no-unit", "mm", "px")])
def test_a_segmentation_run_stores_and_prints_its_distance_unit(unit_datasets, tmp_path, monkeypatch, dataset, unit,
                                                                other):
    """End to end but for training and sampling (faked): the data set's unit reaches the metrics, the stored row,
    the run summary and the leaderboard."""
    from types import SimpleNamespace

    import numpy as np
    from rich.console import Console

    from cardiobench.cli.run_cmd import _summary
    from cardiobench.engine import segment as segment_mod
    from cardiobench.results import report
    from cardiobench.results.store import ResultStore

    def fake_training(plan, **kwargs):
        return SimpleNamespace(checkpoint=tmp_path / "model.pt", loss_curve=None, spec_hash="t" * 16,
                               images_per_s=1.0, device="cpu"), "trained"

    def fake_segment(checkpoint, images, *, k=5, **kwargs):
        truth = np.rint(images * 3).astype(np.uint8)
        votes = np.roll(truth, 1, axis=-1)  # one pixel off: HD95 of about 1 pixel
        return segment_mod.SegmentResult(votes=votes, uncertainty=np.zeros(votes.shape, np.float32),
                                         samples=np.repeat(votes[:, None], k, axis=1), seconds=0.1, device="cpu",
                                         checkpoint=str(checkpoint))

    monkeypatch.setattr(pipeline, "_ensure_trained", fake_training)
    monkeypatch.setattr(segment_mod, "segment", fake_segment)
    cfg = pipeline.resolve("tiny", None, {"data.dataset": dataset, "run.task": "segmentation",
                                          "conditioning.method": "concat", "eval.num_samples": 4,
                                          "eval.ensemble_k": 2}, [])
    plan = pipeline.plan_from_config(cfg)
    store = ResultStore(tmp_path / "results.db")
    outcome = pipeline.execute(plan, store, tmp_path, gif=False)

    assert outcome.meta["distance_unit"] == unit and outcome.meta["hd95_unit"] == unit
    assert outcome.record.context == {"n_samples": 4, "distance_unit": unit}
    assert outcome.record.metrics["hd95_mean"] == pytest.approx(1.0)
    assert store.get(outcome.record.id).context == {"n_samples": 4, "distance_unit": unit}

    console = Console(record=True, width=200, color_system=None)
    for part in _summary(outcome):
        console.print(part)
    text = console.export_text()
    assert f"HD95 mean ({unit}) ↓" in text and f"HD95 LV ({unit}) ↓" in text and f"({other})" not in text
    assert ("distances" in text) == (unit == "px")  # a px run says why, a mm run needs no note

    md = report.render(report.build_boards(store.runs()), "md")
    assert f"· 4 test images · distances in {unit}" in md and f"HD95 mean ({unit}) ↓" in md and f"({other})" not in md


@pytest.mark.parametrize("scale", [0.0, 3.0])
def test_reverse_gif_animates_the_run_s_own_guidance_scale(monkeypatch, tmp_path, scale):
    """Guidance scale 0 (the unconditional half of classifier-free guidance) is a scale, not 'unset'; the GIF is
    recorded during that very sampling pass (so it animates the run's own scale and ends on the grid's masks)."""
    import importlib

    from cardiobench.progress import SILENT

    sample_mod = importlib.import_module("cardiobench.engine.sample")
    plan = pipeline.plan_from_config(pipeline.resolve("quick", None, {"conditioning.method": "classifier-free",
                                                                      "conditioning.guidance_scale": scale}, []))
    seen = {}

    class Stop(Exception):
        pass

    def fake_sample(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(sample_mod, "sample", fake_sample)
    with pytest.raises(Stop):
        pipeline._generation(plan, tmp_path / "ck.pt", tmp_path, gif=True, progress=SILENT)
    assert seen["guidance_scale"] == scale
    assert seen["frames"] is not None and seen["frames"].n == 15  # 3 samples of each of the 5 classes


def test_the_representation_is_a_config_key_checked_against_the_family(register_plugin):
    """`diffusion.representation` reaches the train spec (the default keeps every hash); a representation that
    does not fit the noise process's family is a one-line error before any work."""
    from cardiobench.diffusion.representation import OneHotRepresentation
    from cardiobench.hookspecs import hookimpl

    base = pipeline.plan_from_config(pipeline.resolve("quick", None, {}, []))
    same = pipeline.plan_from_config(pipeline.resolve("quick", None, {"diffusion.representation": "onehot"}, []))
    assert same.train_hash == base.train_hash and "representation" not in base.train.to_dict()

    class Plugin:
        @staticmethod
        @hookimpl
        def register_representations(register):
            register("onehot-other", OneHotRepresentation, families=("categorical",))

    register_plugin(Plugin(), "onehot-other")
    with pytest.raises(IncompatibleError, match="representation 'onehot-other' does not fit noise process"):
        pipeline.plan_from_config(pipeline.resolve("quick", None, {"diffusion.representation": "onehot-other"}, []))
