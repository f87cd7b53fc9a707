"""``image-vae``: the MRI-slice autoencoder (L1 + beta KL), its training report, CLI and latent representation;
and the label-map ``vae`` unchanged by the shared base class."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from cardiobench.autoencoders.image_vae import ImageVAE
from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    AutoencoderSpec,
    image_scores,
    load_autoencoder,
    reconstruct,
    resolve_autoencoder_spec,
)
from cardiobench.autoencoders.vae import MaskVAE, kl_divergence
from cardiobench.data.pairs import diffuses
from cardiobench.diffusion.intensity import IntensityRepresentation
from cardiobench.diffusion.latent import LatentRepresentation
from cardiobench.errors import CardiobenchError
from cardiobench.factories import create
from cardiobench.plugins import registry
from cardiobench.testing.autoencoders import PHANTOM, AutoencoderContract, phantom_items, trained_autoencoder
from cardiobench.testing.cli import invoke

pytestmark = pytest.mark.usefixtures("one_thread")


#: the tiny vae of tests/autoencoders/test_latent.py, and its hash (and the default spec's) as computed before the
#: image-vae and the shared KLAutoencoder base class: files already in users' caches keep these names
VAE_TINY = AutoencoderSpec(options={"size": "tiny"}, resolution=16, dataset_options=PHANTOM, steps=100,
                           batch_size=16, lr=3e-3)
VAE_TINY_HASH = "4d511320370787ae9657c2e7460770141625cefd2367b7b65b35247dd6fbfb2c"
VAE_DEFAULT_HASH = "b1e6de0c4c8a33a5f75c5b7d627fcd2b9cdc620434e58c9459b7e5187315e2bf"


def image_spec(steps: int = 100, **changes) -> AutoencoderSpec:
    return AutoencoderSpec(autoencoder="image-vae", options={"size": "tiny"}, resolution=16, dataset_options=PHANTOM,
                           steps=steps, batch_size=16, lr=3e-3, **changes)


def grey(n: int = 4, split: str = "train") -> torch.Tensor:
    return phantom_items(16, split, n, data="image")


def tiny_image_vae(seed: int = 0) -> ImageVAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create("autoencoder", "image-vae", size="tiny")


def test_registered_with_image_metadata():
    comp = registry("autoencoder").get("image-vae")
    assert comp.metadata["data"] == "image" and registry("autoencoder").get("vae").metadata["data"] == "mask"
    ae = tiny_image_vae()
    assert isinstance(ae, ImageVAE) and ae.data == "image" and ae.num_classes == 256
    assert ae.config() == {"channels": [8, 16, 16], "latent_channels": 4, "num_res_blocks": 1, "beta": 1e-3,
                           "norm_num_groups": 8, "spatial_dims": 2}
    with pytest.raises(ValueError, match="unknown image-vae size"):
        ImageVAE(size="huge")


def test_loss_parts_are_finite():
    ae = tiny_image_vae().train()
    loss, parts = ae.loss(grey(), torch.Generator().manual_seed(0))
    assert set(parts) == {"l1", "kl"} and all(torch.isfinite(torch.tensor(v)) for v in parts.values())
    assert torch.isfinite(loss) and parts["l1"] > 0 and parts["kl"] >= 0


def test_loss_is_l1_of_the_reparameterised_decoding_plus_beta_kl():
    """Recomputed independently: x = 2 g / 255 - 1, z = mu + sigma eps with eps from the same generator state
    (drawn on the CPU), L = mean |decoder(z) - x| + beta KL; the gradients agree too."""
    ae = tiny_image_vae().train()
    g = grey()
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    loss, parts = ae.loss(g, gen)
    grads = torch.autograd.grad(loss, list(ae.parameters()))

    gen.set_state(state)
    x = rearrange(g.float() / 255.0 * 2.0 - 1.0, "b h w -> b 1 h w")
    mu, sigma = ae.net.encode(x)
    z = mu + sigma * torch.randn(mu.shape, generator=gen)
    l1 = F.l1_loss(ae.net.decode(z), x)
    kl = 0.5 * (mu ** 2 + sigma ** 2 - 1.0 - torch.log(sigma ** 2)).mean()
    expected = l1 + 1e-3 * kl
    torch.testing.assert_close(loss, expected)
    assert parts["l1"] == pytest.approx(float(l1.detach()), rel=1e-6)
    assert parts["kl"] == pytest.approx(float(kl.detach()), rel=1e-5)
    for got, want in zip(grads, torch.autograd.grad(expected, list(ae.parameters())), strict=True):
        torch.testing.assert_close(got, want)


def test_to_items_clips_and_rounds_like_the_mri_representation():
    ae = tiny_image_vae()
    y = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.3, 1.0, 7.0, float("nan")]).reshape(1, 1, 2, 4)
    items = ae.to_items(y)
    assert items.dtype == torch.uint8 and items.shape == (1, 2, 4)
    assert torch.equal(items, IntensityRepresentation().decode(y))
    assert items.flatten().tolist() == [0, 0, 64, 128, 166, 255, 255, 128]
    # the encoder's input is the mri representation's encoding of the grey levels
    g = grey()
    torch.testing.assert_close(ae.inputs(g), IntensityRepresentation().encode(g))


def test_the_mask_vae_keeps_its_behaviour():
    """The shared base class changes nothing for label maps: the same options (so the same cached hashes), loss
    parts, argmax items and Dice report."""
    named = resolve_autoencoder_spec(VAE_TINY)
    assert named.options == {"num_classes": 4, "channels": [8, 16, 16], "latent_channels": 4, "num_res_blocks": 1,
                             "beta": 1e-3, "norm_num_groups": 8, "spatial_dims": 2}
    assert named.hash() == VAE_TINY_HASH, "a cached label-map autoencoder must keep its hash"
    assert resolve_autoencoder_spec(AutoencoderSpec()).hash() == VAE_DEFAULT_HASH
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ae = MaskVAE(size="tiny").train()
    assert ae.data == "mask"
    masks = phantom_items(16, "train", 4)
    loss, parts = ae.loss(masks, torch.Generator().manual_seed(1))
    assert list(parts) == ["ce", "dice", "kl"]
    gen = torch.Generator().manual_seed(1)
    x = ae.onehot(masks)
    mu, sigma = ae.net.encode(x)
    logits = ae.net.decode(mu + sigma * torch.randn(mu.shape, generator=gen))
    p, g = logits.softmax(1), (x + 1) / 2
    dice = 1 - ((2 * (p * g).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + g.sum((0, 2, 3)) + 1)).mean()
    expected = F.cross_entropy(logits, masks.long()) + dice + 1e-3 * kl_divergence(mu, sigma)
    assert torch.equal(loss, expected)
    with torch.no_grad():
        out = ae.decode(ae.encode(masks)[0])
    assert torch.equal(ae.to_items(out), out.argmax(1).to(torch.uint8))


def test_training_reports_l1_psnr_latent_shape_and_scale():
    path, spec = trained_autoencoder(image_spec())
    loaded = load_autoencoder(path)
    report = loaded.report
    rec = report["reconstruction"]
    assert set(rec) == {"l1", "psnr", "n", "split"} and rec["split"] == "test" and rec["n"] > 0
    assert rec["psnr"] >= AutoencoderContract.psnr_floor and 0 < rec["l1"] < 0.15
    assert report["latent_shape"] == [4, 4, 4] and 0.1 < loaded.scale_factor < 10
    assert loaded.spec.autoencoder == "image-vae" and "num_classes" not in loaded.spec.options
    recon = reconstruct(loaded.model, grey(8, "test"))
    assert recon.dtype == torch.uint8 and recon.shape == (8, 16, 16)


def test_the_cli_trains_it_and_prints_l1_and_psnr():
    result = invoke("autoencoder", "train", "image-vae", "--preset", "tiny", "--set", "autoencoder.options.size=tiny",
                    "--steps", "20")
    assert result.exit_code == 0, result.output
    assert "L1" in result.stdout and "PSNR" in result.stdout and "Dice" not in result.stdout, result.stdout
    assert "latent: 4x4x4" in result.stdout
    help_text = invoke("autoencoder", "train", "--help").stdout
    assert "PSNR" in help_text and "Dice" in help_text


def _image_latent() -> LatentRepresentation:
    path, spec = trained_autoencoder(image_spec())
    target = AUTOENCODERS.cache_path(spec.hash())
    if not target.is_file():
        AUTOENCODERS.save(target, AUTOENCODERS.read(path))
    return create("representation", "latent", autoencoder=spec.to_dict())


def test_the_latent_of_an_image_autoencoder_diffuses_images():
    rep = _image_latent()
    assert rep.diffuses == "image" and diffuses(rep) == "image" and rep.num_classes == 256
    g = grey(6, "test")
    x = rep.encode(g)
    assert x.shape == (6, 4, 4, 4) and x.dtype == torch.float32 and torch.isfinite(x).all()
    out = rep.decode(x)
    assert out.dtype == torch.uint8 and out.shape == (6, 16, 16)
    assert image_scores(out.numpy(), g.numpy())["psnr"] >= AutoencoderContract.psnr_floor
    noisy = rep.decode(torch.randn(2, 4, 4, 4) * 5)
    assert noisy.dtype == torch.uint8 and noisy.shape == (2, 16, 16)
    with pytest.raises(CardiobenchError, match="trained on phantom 16x16, this model diffuses 32x32 items"):
        rep.shape(32)


def test_the_image_vae_works_on_volumes():
    ae = create("autoencoder", "image-vae", spatial_dims=3, size="tiny")
    g = torch.randint(0, 256, (2, 8, 16, 16), dtype=torch.uint8)
    mean, _ = ae.encode(g)
    assert mean.shape == (2, 4, 2, 4, 4)
    out = ae.decode(mean)
    assert out.shape == (2, 1, 8, 16, 16) and ae.to_items(out).shape == (2, 8, 16, 16)
    loss, _ = ae.loss(g, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
