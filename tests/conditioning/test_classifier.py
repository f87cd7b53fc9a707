"""The noisy classifier of classifier guidance: architecture, spec, deterministic training, cache and files."""

from __future__ import annotations

import pytest
import torch

from cardiobench.conditioning import classifier as C
from cardiobench.conditioning.classifier import (
    ClassifierSpec,
    NoisyClassifier,
    build_classifier,
    classifier_spec_for,
    ensure_classifier,
    load_classifier,
    prepare_classifier,
    resolve_classifier_spec,
    time_buckets,
)
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.specs import TrainSpec

pytestmark = pytest.mark.usefixtures("one_thread")

#: a phantom with one patient per group and split at 16x16, a 50-step process
TINY_TRAIN = TrainSpec(dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
                       noise_options={"num_timesteps": 50, "prediction_type": "x0"}, steps=5)


def tiny_spec(**changes) -> ClassifierSpec:
    return classifier_spec_for(TINY_TRAIN, **{"size": "tiny", "steps": 8, "batch_size": 16, **changes})


# -- the network ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,res", [("tiny", 16), ("small", 32)])
def test_classifier_maps_noisy_masks_and_timesteps_to_group_logits(size, res):
    model = build_classifier(size, seed=0)
    x = torch.randn(3, 4, res, res)
    out = model(x, torch.tensor([0, 10, 999]))
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    n = sum(p.numel() for p in model.parameters())
    assert (n < 10_000) if size == "tiny" else (100_000 < n < 1_000_000)


def test_classifier_depends_on_the_timestep_and_initialises_from_its_seed():
    a, b = build_classifier("tiny", seed=3), build_classifier("tiny", seed=3)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    x = torch.randn(2, 4, 16, 16)
    assert not torch.allclose(a(x, torch.tensor([0, 0])), a(x, torch.tensor([40, 40])))


def test_each_sample_s_logits_depend_on_that_sample_only():
    """The guidance gradient of a batch sum is per sample only if no layer mixes the batch."""
    model = build_classifier("tiny", seed=0).eval()
    x = torch.randn(4, 4, 16, 16, requires_grad=True)
    model(x, torch.tensor([1, 2, 3, 4]))[0].sum().backward()
    assert x.grad[0].abs().sum() > 0
    assert torch.equal(x.grad[1:], torch.zeros_like(x.grad[1:]))


def test_bad_sizes_and_channels_are_clear_errors():
    with pytest.raises(CardiobenchError, match="unknown classifier size 'huge'"):
        build_classifier("huge")
    with pytest.raises(CardiobenchError, match="channels"):
        NoisyClassifier(channels=(3,))
    with pytest.raises(CardiobenchError, match="divisible by 8, got 20"):
        build_classifier("small").check_size(20)
    build_classifier("small").check_size(24)


# -- the spec ---------------------------------------------------------------------------------------------
def test_spec_follows_the_diffusion_model_s_data_and_forward_process():
    spec = tiny_spec()
    assert (spec.dataset, spec.resolution, spec.dataset_options) == ("phantom", 16, TINY_TRAIN.dataset_options)
    assert spec.noise == "gaussian" and spec.noise_options["num_timesteps"] == 50
    assert spec.noise_options["beta_schedule"] == "cosine"  # resolved: the process's defaults spelled out
    assert resolve_classifier_spec(spec) == spec and resolve_classifier_spec(spec).hash() == spec.hash()


def test_prediction_type_does_not_change_the_classifier_but_the_process_does():
    """q(x_t | x_0) does not depend on what the denoiser predicts: one classifier serves every prediction type."""
    eps_model = TINY_TRAIN.replace(noise_options={"num_timesteps": 50, "prediction_type": "epsilon"})
    assert classifier_spec_for(eps_model, size="tiny").hash() == classifier_spec_for(TINY_TRAIN, size="tiny").hash()
    linear = TINY_TRAIN.replace(noise_options={"num_timesteps": 50, "beta_schedule": "linear"})
    assert classifier_spec_for(linear, size="tiny").hash() != classifier_spec_for(TINY_TRAIN, size="tiny").hash()
    blur = TINY_TRAIN.replace(noise="blurring", noise_options={"num_timesteps": 50, "image_size": 16})
    bspec = classifier_spec_for(blur, size="tiny")
    assert bspec.noise == "blurring" and bspec.noise_options["sigma_blur_max"] == 5.0
    assert "prediction_type" not in bspec.noise_options


def test_spec_validation():
    with pytest.raises(CardiobenchError, match="steps"):
        ClassifierSpec(steps=0)
    with pytest.raises(CardiobenchError, match="size"):
        ClassifierSpec(size="huge")
    with pytest.raises(CardiobenchError, match="unknown classifier option"):
        classifier_spec_for(TINY_TRAIN, widht=3)
    assert ClassifierSpec.from_dict(tiny_spec().to_dict()) == tiny_spec()


def test_time_buckets_cover_every_timestep_once():
    assert time_buckets(1000) == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    assert time_buckets(3) == [(0, 1), (1, 2), (2, 3)]  # empty quarters dropped
    assert sum(hi - lo for lo, hi in time_buckets(50)) == 50


# -- training, cache, files -------------------------------------------------------------------------------
def test_training_is_deterministic_and_cached(monkeypatch):
    spec = tiny_spec()
    first = prepare_classifier(spec, device="cpu")
    assert first.status == "trained" and first.path.name == f"{spec.hash()}.pt"
    model_a, loaded_spec, meta = load_classifier(first.path)
    assert loaded_spec == spec and meta["spec_hash"] == spec.hash()
    weights = {k: v.clone() for k, v in model_a.state_dict().items()}

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been reused")

    with monkeypatch.context() as mp:  # (monkeypatch.undo() would also undo conftest's private cache folder)
        mp.setattr(C, "train_classifier", no_training)
        assert prepare_classifier(spec, device="cpu").status == "reused"
        assert ensure_classifier(spec, device="cpu") == first.path

    again = prepare_classifier(spec, device="cpu", retrain=True)
    assert again.status == "trained"
    model_b, _, _ = load_classifier(again.path)
    for key, value in model_b.state_dict().items():
        assert torch.equal(value, weights[key]), key
    other = prepare_classifier(tiny_spec(seed=1), device="cpu")
    model_c, _, _ = load_classifier(other.path)
    assert not all(torch.equal(v, weights[k]) for k, v in model_c.state_dict().items())


def test_checkpoint_is_weights_only_and_holds_spec_weights_and_accuracy():
    spec = tiny_spec()
    path = ensure_classifier(spec, device="cpu")
    state = torch.load(path, weights_only=True)
    assert state["kind"] == "noisy-classifier" and state["spec_hash"] == spec.hash()
    assert state["spec"] == spec.to_dict() and "stem.weight" in state["model"]
    acc = state["accuracy"]
    assert set(acc["buckets"]) == {"0-11", "12-24", "25-37", "38-49"}
    assert 0.0 <= acc["overall"] <= 1.0 and acc["n"] > 0
    buckets = [b["accuracy"] for b in acc["buckets"].values()]
    assert acc["overall"] == pytest.approx(sum(buckets) / len(buckets), abs=1e-4)
    assert len(state["loss_history"]) == spec.steps
    model, _, meta = load_classifier(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert meta["params"] == sum(p.numel() for p in model.parameters())


def test_a_shipped_classifier_is_copied_into_the_cache(monkeypatch, tmp_path):
    spec = tiny_spec()
    trained = ensure_classifier(spec, device="cpu")
    shipped = tmp_path / "assets"
    shipped.mkdir()
    (shipped / trained.name).write_bytes(trained.read_bytes())
    trained.unlink()
    monkeypatch.setattr(C, "SHIPPED_CLASSIFIERS", shipped)
    monkeypatch.setattr(C, "train_classifier", lambda *a, **k: pytest.fail("should copy the shipped file"))
    result = prepare_classifier(spec, device="cpu")
    assert result.status == "reused-shipped" and result.path == trained
    assert result.path.read_bytes() == (shipped / trained.name).read_bytes()


def test_a_corrupt_cache_entry_is_trained_again():
    spec = tiny_spec()
    path = ensure_classifier(spec, device="cpu")
    path.write_bytes(b"garbage")
    assert prepare_classifier(spec, device="cpu").status == "trained"
    load_classifier(path)


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    for path, words in ((tmp_path / "nope.pt", "cardiobench classifier train"), (bad, "corrupt")):
        with pytest.raises(CardiobenchError) as err:
            load_classifier(path)
        msg = str(err.value)
        assert str(path) in msg and words in msg and "\n" not in msg
    other = tmp_path / "other.pt"
    torch.save({"format": "cardiobench-checkpoint", "model": {}}, other)
    with pytest.raises(CardiobenchError, match="not a cardiobench noisy-classifier checkpoint"):
        load_classifier(other)


def test_a_process_of_another_family_is_rejected(register_plugin):
    from cardiobench.hookspecs import hookimpl

    class Other:
        family = "discrete"
        num_timesteps = 10

        def config(self):
            return {}

    class Plugin:
        @hookimpl
        def register_noise_processes(self, register):
            register("other-noise", lambda **kw: Other(), family="discrete")

    register_plugin(Plugin(), "other-noise")
    with pytest.raises(IncompatibleError, match="linear-gaussian"):
        classifier_spec_for(TINY_TRAIN.replace(noise="other-noise", noise_options={}))


@pytest.mark.parametrize("noise", ["gaussian", "blurring"])
def test_the_quick_preset_s_classifiers_ship_with_cardiobench(noise):
    """`cardiobench run --conditioning classifier-guidance` on the quick models trains nothing."""
    from cardiobench.engine import pipeline
    from cardiobench.engine.train import resolve_spec

    plan = pipeline.plan_from_config(pipeline.resolve("quick", None, {"diffusion.noise": noise,
                                                                       "conditioning.method": "classifier-guidance"},
                                                      []))
    h = classifier_spec_for(resolve_spec(plan.train)).hash()
    path = C.shipped_classifier(h)
    assert path is not None, (f"no shipped classifier for the quick {noise} spec {h[:12]}: regenerate it with "
                              f"`cardiobench classifier train --noise {noise} --retrain` and copy it to "
                              "cardiobench/assets/classifiers")
    _, spec, meta = load_classifier(path)
    assert spec.hash() == h and meta["accuracy"]["overall"] > meta["accuracy"]["chance"] + 0.1
