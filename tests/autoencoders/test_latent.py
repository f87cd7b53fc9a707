"""Latent diffusion: the autoencoder kind, its training and store, the ``latent`` representation, and runs."""

from __future__ import annotations

import json

import pytest
import torch

from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    AutoencoderSpec,
    load_autoencoder,
    prepare_autoencoder,
    resolve_autoencoder_spec,
    train_autoencoder,
)
from cardiobench.config import resolve_config
from cardiobench.diffusion.latent import LatentRepresentation
from cardiobench.engine.pipeline import plan_from_config, train_spec_from_config
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import registry
from cardiobench.specs import TrainSpec
from cardiobench.testing.autoencoders import PHANTOM
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.usefixtures("one_thread")

#: the tiny autoencoder every test here trains (about 3 s on one CPU thread)
AE_SETS = ["autoencoder.options.size=tiny", "autoencoder.steps=100", "autoencoder.batch_size=16",
           "autoencoder.lr=3e-3"]


def tiny_spec(steps: int = 100, **changes) -> AutoencoderSpec:
    return AutoencoderSpec(options={"size": "tiny"}, resolution=16, dataset_options=PHANTOM, steps=steps,
                           batch_size=16, lr=3e-3, **changes)


def test_the_kind_is_registered_and_listed():
    assert "vae" in registry("autoencoder")
    assert registry("representation").get("latent").metadata["autoencoder"] is True
    result = invoke("plugins", "--kind", "autoencoder", "--json")
    assert result.exit_code == 0, result.output
    assert "vae" in result.stdout


def test_named_and_spelled_out_options_share_a_hash():
    named = resolve_autoencoder_spec(tiny_spec())
    spelled = resolve_autoencoder_spec(tiny_spec().replace(options=named.options))
    assert named.hash() == spelled.hash() and named.options["channels"] == [8, 16, 16]
    assert named.hash() != resolve_autoencoder_spec(tiny_spec(seed=1)).hash()


def test_resume_gives_the_same_weights_bit_for_bit(tmp_path):
    straight = train_autoencoder(tiny_spec(steps=12), tmp_path / "a.pt", device="cpu")
    half = train_autoencoder(tiny_spec(steps=6), tmp_path / "b.pt", device="cpu")
    resumed = train_autoencoder(tiny_spec(steps=12), tmp_path / "c.pt", device="cpu",
                                start={**half, "complete": False})
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert resumed["step"] == 12 and len(resumed["loss_history"]) == 12


@pytest.mark.slow
def test_train_reports_dice_latent_shape_and_scale_and_is_reused():
    first = prepare_autoencoder(tiny_spec(), device="cpu")
    assert first.status == "trained"
    loaded = load_autoencoder(first.path)
    rec = loaded.report["reconstruction"]
    assert set(rec["dice"]) == {"RV", "MYO", "LV"} and rec["dice_mean"] >= 0.75 and rec["split"] == "test"
    assert loaded.report["latent_shape"] == [4, 4, 4]
    assert 0.1 < loaded.scale_factor < 10
    assert prepare_autoencoder(tiny_spec(), device="cpu").status == "reused"
    # the CLI reuses it (same spec from the preset and --set) and reports it
    result = invoke("autoencoder", "train", "vae", "--preset", "tiny", *sum((["--set", s] for s in AE_SETS), []),
                    "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "reused" and report["spec_hash"] == first.spec.hash()
    assert report["reconstruction"]["dice_mean"] == rec["dice_mean"]


def test_a_corrupt_checkpoint_is_one_line_exit_2(tmp_path):
    junk = tmp_path / "ae.pt"
    junk.write_bytes(b"PK\x03\x04 not a checkpoint")
    for args in (("autoencoder", "info", str(junk)),
                 ("run", "--preset", "tiny", "--autoencoder", str(junk), "--no-gif")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error")]
        assert len(lines) == 1 and str(junk.name) in result.stderr, result.stderr


def test_the_latent_representation_needs_a_trained_autoencoder():
    spec = resolve_autoencoder_spec(tiny_spec(steps=7))
    rep = LatentRepresentation(spec.to_dict())
    assert rep.shape(16) == (4, 4, 4) and rep.mask_shape(16) == (16, 16)
    with pytest.raises(CardiobenchError, match="not trained yet"):
        rep.encode(torch.zeros((1, 16, 16), dtype=torch.long))
    with pytest.raises(CardiobenchError, match="trained on phantom 16x16"):
        rep.shape(32)


def _latent_config(*sets: str, noise: str = "blurring", sampler: str = "ddim"):
    return resolve_config("tiny", None, {"diffusion.noise": noise, "sample.sampler": sampler,
                                         "autoencoder.name": "vae"}, [*AE_SETS, *sets])


def test_a_latent_plan_names_the_autoencoder_and_the_latent_grid():
    plan = plan_from_config(_latent_config())
    train = plan.train
    assert train.representation == "latent"
    assert train.representation_options["autoencoder"]["options"]["channels"] == [8, 16, 16]
    assert train.noise_options["image_size"] == 4  # blurring's DCT runs over the 4x4 latent grid
    assert plan.sampler_options["clip_x0"] is False  # an unbounded latent is not clipped to [-1, 1]
    other = plan_from_config(_latent_config("autoencoder.seed=1"))
    assert other.train.hash() != train.hash(), "the autoencoder's identity is in the denoiser's hash"
    pixel = train_spec_from_config(resolve_config("tiny", None, {}, []))
    assert pixel.noise_options.get("image_size") in (None, 16) and pixel.representation == "onehot"
    assert TrainSpec.from_dict(train.to_dict()) == train


@pytest.mark.slow
def test_run_trains_the_autoencoder_then_the_latent_model_and_shows_the_ceiling(tmp_path):
    import cardiobench as cb

    outcome = cb.run("blurring", "ddim", preset="tiny", autoencoder="vae", sets=AE_SETS, results=tmp_path / "r.db",
                     out=tmp_path, gif=False)
    rec = outcome.record
    assert rec.spec["train"]["representation"] == "latent"
    assert rec.metrics["ceiling_recon_dice_mean"] >= 0.75
    assert rec.metrics["ceiling_fid"] is not None and rec.metrics["fid"] is not None
    ceiling = json.loads((outcome.out_dir / "metrics.json").read_text())["meta"]["latent_ceiling"]
    assert ceiling["latent_shape"] == [4, 4, 4] and ceiling["n"] == 8
    samples = cb.sample(rec.artefacts["checkpoint"], sampler="ddim", steps=3, num_samples=3, device="cpu")
    assert samples.masks.shape == (3, 16, 16) and int(samples.masks.max()) <= 3
    assert samples.spec.sampler_options == {"clip_x0": False}  # a latent is not clipped to [-1, 1] by default
    kept = cb.sample(rec.artefacts["checkpoint"], sampler="ddim", steps=3, num_samples=3, device="cpu",
                     sampler_options={"clip_x0": True})
    assert kept.spec.sampler_options == {"clip_x0": True}  # the user's choice wins
    # the CLI's summary shows the ceiling beside the run's values; an autoencoder trained at another
    # resolution is refused in one line naming both
    result = invoke("run", "--preset", "tiny", "--noise", "gaussian", "--sampler", "ddpm", "--autoencoder", "vae",
                    *sum((["--set", s] for s in AE_SETS), []), "--no-gif", "--out", str(tmp_path),
                    "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 0, result.output
    assert "latent ceiling" in result.stdout and "reconstruction Dice" in result.stdout
    path = AUTOENCODERS.cache_path(AutoencoderSpec.from_dict(
        rec.spec["train"]["representation_options"]["autoencoder"]).hash())
    bad = invoke("run", "--preset", "tiny", "--autoencoder", str(path), "--set", "data.resolution=32", "--no-gif")
    assert bad.exit_code == 2, bad.output
    assert "phantom 16x16" in bad.stderr and "phantom 32x32" in bad.stderr, bad.stderr
    assert len([ln for ln in bad.stderr.splitlines() if ln.startswith("Error")]) == 1


def test_a_latent_of_a_categorical_process_is_refused_before_any_work(tmp_path):
    """The family check sees the representation as resolved (the autoencoder's latent), not the configured one."""
    result = invoke("run", "--preset", "tiny", "--noise", "d3pm", "--sampler", "d3pm", "--autoencoder", "vae",
                    "--results", str(tmp_path / "r.db"))
    assert result.exit_code == 2, result.output
    assert "representation 'latent' does not fit noise process 'd3pm'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_compare_sweeps_representations_and_pixel_against_latent(tmp_path):
    sets = sum((["--set", s] for s in AE_SETS), [])
    result = invoke("compare", "--preset", "tiny", "--noise", "gaussian", "--sampler", "ddim", "--no-gif",
                    "--representation", "onehot,bits", "--autoencoder", "none,vae", *sets,
                    "--results", str(tmp_path / "r.db"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["skipped"]) == 1 and "bits x vae" in data["skipped"][0]  # bits has no latent form
    kinds = sorted(r["representation"] for r in data["runs"])
    assert kinds == ["bits", "latent", "onehot"]


def test_the_vae_works_on_volumes():
    """spatial_dims=3 (MONAI's AutoencoderKL in 3-D): (B, D, H, W) labels -> a (B, c, D/f, H/f, W/f) latent ->
    (B, K, D, H, W) logits; encode is deterministic and one optimizer step lowers nothing to NaN."""
    from cardiobench.factories import create

    ae = create("autoencoder", "vae", spatial_dims=3, size="tiny")
    masks = torch.randint(0, 4, (2, 8, 16, 16))
    mean, logvar = ae.encode(masks)
    f = ae.downsampling
    assert mean.shape == logvar.shape == (2, ae.latent_channels, 8 // f, 16 // f, 16 // f)
    assert torch.equal(mean, ae.encode(masks)[0])
    assert ae.decode(mean).shape == (2, 4, 8, 16, 16)
    loss, parts = ae.loss(masks, torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in ae.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)


def test_a_volumetric_run_builds_a_3d_autoencoder_on_volumes():
    """``--dims 3 --autoencoder vae``: the autoencoder's data are the run's volumes (depth in its data-set options,
    as in the denoiser's spec) and it is built 3-D; the latent grid is (c, D/f, H/f, W/f) and blurring's DCT runs
    over it."""
    plan = plan_from_config(_latent_config("data.depth=8"))
    ae = AutoencoderSpec.from_dict(plan.train.representation_options["autoencoder"])
    assert ae.dataset_options["depth"] == 8 and ae.options["spatial_dims"] == 3
    assert ae.spatial_shape == (8, 16, 16) and ae.data == "phantom 8x16x16 volumes"
    assert plan.train.noise_options["image_size"] == [2, 4, 4]
    flat = plan_from_config(_latent_config())  # slices keep the 2-D autoencoder and its hash
    assert "depth" not in AutoencoderSpec.from_dict(flat.train.representation_options["autoencoder"]).dataset_options


def test_a_2d_autoencoder_on_volumes_is_one_line():
    from cardiobench.errors import IncompatibleError

    spec = tiny_spec().replace(dataset_options={**PHANTOM, "depth": 8}, options={"size": "tiny", "spatial_dims": 2})
    with pytest.raises(IncompatibleError, match=r"'vae' is 2-D, its data \(phantom 8x16x16 volumes\) are 3-D"):
        resolve_autoencoder_spec(spec)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["generation", "segmentation"])
def test_latent_diffusion_on_volumes_runs_end_to_end_with_its_ceiling(tmp_path, task):
    import cardiobench as cb

    options = {"conditioning": "concat", "ensemble_k": 2} if task == "segmentation" else {}
    outcome = cb.run("gaussian", "ddim", preset="tiny", task=task, dims=3, autoencoder="vae", gif=False,
                     sets=[*AE_SETS, "autoencoder.batch_size=8", "train.steps=20", "eval.num_samples=4",
                           "sample.steps=3"], results=tmp_path / "r.db", out=tmp_path, **options)
    rec = outcome.record
    assert rec.spec["train"]["representation"] == "latent" and rec.context["volume_shape"] == [8, 16, 16]
    ceiling = json.loads((outcome.out_dir / "metrics.json").read_text())["meta"]["latent_ceiling"]
    assert ceiling["latent_shape"] == [4, 2, 4, 4] and ceiling["n"] == 4
    assert rec.metrics["ceiling_volume_valid_frac"] is not None  # volumes through the 3-D autoencoder, scored alike
    if task == "segmentation":
        assert rec.metrics["ceiling_dice3d_mean"] >= 0.6 and 0 <= rec.metrics["dice3d_mean"] <= 1
    else:
        assert rec.metrics["ceiling_fid"] is not None and rec.metrics["fid"] is not None


def test_train_trains_the_autoencoder_first_and_names_it_in_the_spec(tmp_path):
    """``cardiobench train --autoencoder vae`` (and ``cb.train(autoencoder=...)``), like ``run``: the autoencoder is
    reused or trained before the latent denoiser, which is the one ``run`` with the same options would use."""
    import cardiobench as cb

    result = invoke("train", "--preset", "tiny", "--autoencoder", "vae", *sum((["--set", s] for s in AE_SETS), []),
                    "--set", "train.steps=3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["spec"]["representation"] == "latent"
    again = cb.train(preset="tiny", autoencoder="vae", sets=[*AE_SETS, "train.steps=3"])
    assert again.status == "reused" and again.spec_hash == data["spec_hash"]
    run_spec = plan_from_config(_latent_config("train.steps=3", noise="gaussian", sampler="ddpm")).train
    assert run_spec.hash() == data["spec_hash"]


def test_an_autoencoder_registered_with_an_unknown_data_kind_is_one_line(tmp_path, register_plugin):
    """What an autoencoder encodes is read once (``autoencoder_data``); a kind other than mask or image, or a class
    that disagrees with its registration, is a one-line error (exit 2), not a traceback."""
    from cardiobench.autoencoders.vae import MaskVAE
    from cardiobench.hookspecs import hookimpl

    class Odd:
        @hookimpl
        def register_autoencoders(self, register):
            register("odd-vae", MaskVAE, data="volume")
            register("liar-vae", MaskVAE, data="image")  # the class encodes label maps

    register_plugin(Odd(), "odd-ae")
    bad = invoke("run", "--preset", "tiny", "--autoencoder", "odd-vae", "--results", str(tmp_path / "r.db"))
    assert bad.exit_code == 2, bad.output
    assert "autoencoder 'odd-vae' is registered with data='volume'" in bad.stderr and "Traceback" not in bad.output
    with pytest.raises(CardiobenchError, match="encodes data='mask' but is registered with data='image'"):
        resolve_autoencoder_spec(tiny_spec().replace(autoencoder="liar-vae"))
