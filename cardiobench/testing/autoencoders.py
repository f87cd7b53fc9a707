"""Contract suites for autoencoder plugins (kind ``autoencoder``) and for representations backed by one (``latent``).

In your plugin's tests::

    from cardiobench.testing.autoencoders import AutoencoderContract

    class TestMyVAE(AutoencoderContract):
        autoencoder_name = "my-vae"                 # as registered
        autoencoder_options = {"size": "tiny"}

The items follow the autoencoder's ``data`` (its registration metadata, equal to its class attribute): phantom
label maps for ``"mask"``, the phantom's MR slices as 8-bit grey levels for ``"image"``.

``AutoencoderContract`` checks: the registration (an ``Autoencoder``, a summary, ``data`` metadata equal to the
class's); ``encode`` gives (mean, logvar) of shape ``(B, *latent_shape(S))``, ``decode`` (B, K, *S) logits (masks)
or (B, 1, *S) (images), ``to_items`` (B, *S) uint8; ``encode`` is deterministic and per item; ``loss`` is finite,
differentiable and reproducible from the generator; ``config()`` is JSON and rebuilds the architecture (the state
dict loads); after a short training on the phantom (``train_steps``) the checkpoint reads with
``torch.load(weights_only=True)``, loads back to the same encodings, and its round trip
``to_items(decode(encode(m)))`` on the test split scores, for label maps, a mean Dice of at least ``dice_floor``
(every structure at least ``dice_floor - 0.1``), for images a mean PSNR of at least ``psnr_floor`` dB.
``LatentRepresentationContract`` is ``RepresentationContract`` for a lossy, downsampling representation of label
maps: shapes on the latent grid, a Dice floor instead of an exact round trip.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from cardiobench.autoencoders.base import DATA_KINDS, Autoencoder
from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    AutoencoderSpec,
    encode_items,
    image_scores,
    load_autoencoder,
    reconstruct,
    resolve_autoencoder_spec,
    train_autoencoder,
)
from cardiobench.data import open_dataset
from cardiobench.diffusion.intensity import images_to_grey
from cardiobench.errors import CardiobenchError
from cardiobench.metrics.functional import dice
from cardiobench.plugins import get_component
from cardiobench.testing.representations import RepresentationContract

__all__ = ["AutoencoderContract", "LatentRepresentationContract", "trained_autoencoder"]

#: the small phantom every check trains and scores on
PHANTOM = {"train_patients": 2, "test_patients": 1}
_TRAINED: dict[str, tuple[Path, AutoencoderSpec]] = {}


def trained_autoencoder(spec: AutoencoderSpec) -> tuple[Path, AutoencoderSpec]:
    """``(file, resolved spec)`` of ``spec`` trained once per test process into a temporary folder (not the cache),
    removed when the process ends."""
    spec = resolve_autoencoder_spec(spec)
    h = spec.hash()
    if h not in _TRAINED:
        folder = tempfile.mkdtemp(prefix="cardiobench-ae-")
        atexit.register(shutil.rmtree, folder, True)  # removed when the test process ends
        path = Path(folder) / f"{h}.pt"
        train_autoencoder(spec, path, device="cpu")
        _TRAINED[h] = (path, spec)
    return _TRAINED[h]


def phantom_items(resolution: int, split: str, n: int | None = None, data: str = "mask") -> torch.Tensor:
    """(N, H, W) uint8 items of the small phantom's ``split`` (``n`` evenly spread, or all): label maps, or the MR
    slices' 8-bit grey levels for ``data="image"``."""
    loaded = open_dataset("phantom", size=resolution, cache=False, **PHANTOM).load(split)
    arrays = images_to_grey(loaded.images) if data == "image" else loaded.masks.astype("uint8")
    items = torch.from_numpy(arrays)
    return items if n is None else items[torch.linspace(0, len(items) - 1, n).round().long()]


def phantom_masks(resolution: int, split: str, n: int | None = None) -> torch.Tensor:
    """(N, H, W) uint8 label maps of the small phantom (``phantom_items`` for ``data="mask"``)."""
    return phantom_items(resolution, split, n)


def mean_dice(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K - 1,) mean Dice per structure over the batch."""
    return torch.as_tensor(dice(pred.numpy(), target.numpy(), num_classes=num_classes)).mean(0)


class AutoencoderContract:
    """Subclass as ``Test...`` and set ``autoencoder_name`` (and ``autoencoder_options``)."""

    autoencoder_name: ClassVar[str] = ""
    autoencoder_options: ClassVar[dict[str, Any]] = {}
    resolution: ClassVar[int] = 16
    batch: ClassVar[int] = 4
    train_steps: ClassVar[int] = 100
    train_batch_size: ClassVar[int] = 16
    train_lr: ClassVar[float] = 3e-3
    #: label maps: the round trip's mean Dice on the test split after ``train_steps`` must reach this
    dice_floor: ClassVar[float] = 0.7
    #: images: the round trip's mean PSNR (dB, peak 1) on the test split after ``train_steps`` must reach this.
    #: Measured on the 16x16 phantom (one CPU thread): a tiny image-vae after 100 steps (batch 16, lr 3e-3)
    #: scores 18.05, 18.71, 18.85 dB (seeds 0, 1, 2); broken models score below: the mean training image 15.53,
    #: the untrained network 8.5-10.2, mid grey 12.51, zeros 5.51.
    psnr_floor: ClassVar[float] = 16.5

    def component(self):
        assert self.autoencoder_name, "set autoencoder_name in your AutoencoderContract subclass"
        return get_component("autoencoder", self.autoencoder_name)

    def make(self) -> Autoencoder:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self.component().create(**self.autoencoder_options).eval()

    def spec(self) -> AutoencoderSpec:
        return AutoencoderSpec(autoencoder=self.autoencoder_name, options=dict(self.autoencoder_options),
                               resolution=self.resolution, dataset_options=dict(PHANTOM), steps=self.train_steps,
                               batch_size=self.train_batch_size, lr=self.train_lr)

    def data(self) -> str:
        """What the autoencoder encodes, from its registration metadata: ``"mask"`` (the default) or ``"image"``."""
        return str(self.component().metadata.get("data", "mask"))

    def items(self, split: str = "train", *, whole: bool = False) -> torch.Tensor:
        """(B, H, W) uint8 phantom items of ``split``: ``batch`` of them, evenly spread, or the ``whole`` split."""
        return phantom_items(self.resolution, split, None if whole else self.batch, self.data())

    def test_registered_as_an_autoencoder(self):
        ae = self.make()
        assert isinstance(ae, Autoencoder), "the factory must return a cardiobench Autoencoder"
        assert self.component().summary, "give the factory a docstring or a summary"
        assert self.data() in DATA_KINDS, f"register it with data= one of {DATA_KINDS}, not {self.data()!r}"
        assert ae.data == self.data(), f"the class says data={ae.data!r}, the registration {self.data()!r}"

    def test_encode_decode_shapes(self):
        ae, m = self.make(), self.items()
        latent = ae.latent_shape(self.resolution)
        assert len(latent) == 1 + ae.spatial_dims and latent[0] == ae.latent_channels
        with torch.no_grad():
            mean, logvar = ae.encode(m)
            assert mean.shape == logvar.shape == (self.batch, *latent), (mean.shape, latent)
            assert mean.dtype == torch.float32 and torch.isfinite(mean).all() and torch.isfinite(logvar).all()
            out = ae.decode(mean)
            items = ae.to_items(out)
        channels = ae.num_classes if ae.data == "mask" else 1  # K class logits, or one grey channel
        assert out.shape == (self.batch, channels, *m.shape[1:]), out.shape
        assert items.shape == m.shape and items.dtype == torch.uint8, (items.shape, items.dtype)
        assert int(items.max()) < ae.num_classes
        with pytest.raises(ValueError):
            ae.latent_shape(self.resolution + 1)

    def test_encode_is_deterministic_and_per_item(self):
        ae, m = self.make(), self.items()
        with torch.no_grad():
            a, b = ae.encode(m)[0], ae.encode(m)[0]
            one = ae.encode(m[1:2])[0]
        assert torch.equal(a, b), "encode must be deterministic (the posterior mean)"
        torch.testing.assert_close(one, a[1:2], rtol=1e-4, atol=1e-5)

    def test_loss_is_finite_reproducible_and_differentiable(self):
        ae, m = self.make().train(), self.items()
        loss, parts = ae.loss(m, torch.Generator().manual_seed(3))
        again, _ = ae.loss(m, torch.Generator().manual_seed(3))
        assert loss.ndim == 0 and torch.isfinite(loss) and torch.equal(loss, again)
        assert all(isinstance(v, float) for v in parts.values())
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.parameters())

    def test_config_is_json_and_rebuilds_the_architecture(self):
        ae = self.make()
        cfg = ae.config()
        assert json.loads(json.dumps(cfg)) == cfg, "config() must be plain JSON"
        rebuilt = self.component().create(**cfg)
        assert rebuilt.config() == cfg
        rebuilt.load_state_dict(ae.state_dict())

    def test_checkpoint_is_weights_only_and_loads_back(self):
        path, spec = trained_autoencoder(self.spec())
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["spec_hash"] == spec.hash() and state["complete"]
        loaded = load_autoencoder(path)
        assert loaded.spec == spec and loaded.scale_factor > 0
        z = encode_items(loaded.model, self.items("train", whole=True))
        assert abs(float(z.std()) * loaded.scale_factor - 1.0) < 1e-3, "the scaled latent has unit variance"

    def test_round_trip_above_the_floor(self):
        path, _ = trained_autoencoder(self.spec())
        loaded = load_autoencoder(path)
        m = self.items("test", whole=True)
        recon = reconstruct(loaded.model, m)
        assert recon.shape == m.shape and recon.dtype == torch.uint8
        report = loaded.report["reconstruction"]
        if self.data() == "image":
            psnr = image_scores(recon.numpy(), m.numpy())["psnr"]
            assert psnr >= self.psnr_floor, f"round-trip PSNR {psnr:.2f} dB below {self.psnr_floor}"
            assert abs(psnr - report["psnr"]) < 1e-2 and set(report) >= {"l1", "psnr", "n", "split"}
            return
        per = mean_dice(recon, m, loaded.model.num_classes)
        assert float(per.mean()) >= self.dice_floor, f"round-trip Dice {per.tolist()} below {self.dice_floor}"
        assert float(per.min()) >= self.dice_floor - 0.1, f"a structure's round-trip Dice is poor: {per.tolist()}"
        assert abs(float(per.mean()) - report["dice_mean"]) < 1e-3


class LatentRepresentationContract(RepresentationContract):
    """``RepresentationContract`` for a representation backed by a trained autoencoder (lossy, downsampling).

    ``autoencoder_spec``: what to train (once per process) and name in the representation's ``autoencoder``
    option; the trained file is installed into the current autoencoder store before every check."""

    representation_name: ClassVar[str] = "latent"
    autoencoder_spec: ClassVar[dict[str, Any]] = {
        "autoencoder": "vae", "options": {"size": "tiny"}, "resolution": 16, "dataset_options": PHANTOM,
        "steps": 100, "batch_size": 16, "lr": 3e-3}
    size: ClassVar[int] = 16
    dice_floor: ClassVar[float] = 0.7

    def make(self, **overrides: Any):
        path, spec = trained_autoencoder(AutoencoderSpec.from_dict(self.autoencoder_spec))
        target = AUTOENCODERS.cache_path(spec.hash())
        if not target.is_file():
            AUTOENCODERS.save(target, AUTOENCODERS.read(path))
        return self.component().create(**{"autoencoder": spec.to_dict(), **self.representation_options,
                                          **overrides})

    def masks(self, rep, seed: int = 0, square: bool = True) -> torch.Tensor:
        """Phantom label maps (a lossy autoencoder reconstructs hearts, not noise); the first holds every class."""
        m = phantom_masks(self.size, "test")
        g = torch.Generator().manual_seed(seed)
        return m[torch.randperm(len(m), generator=g)[: self.batch]].long()

    def test_sizes(self):
        rep = self.make()
        shape = rep.shape(self.size)
        assert shape[0] == rep.channels and len(shape) == 1 + rep.spatial_dims
        assert all(s < self.size for s in shape[1:]), "a latent grid is smaller than its label map"
        assert tuple(rep.mask_shape(self.size)) == (self.size,) * rep.spatial_dims
        with pytest.raises(CardiobenchError, match="trained on"):
            rep.shape(self.size * 2)

    def test_encode_shape_and_dtype(self):
        rep = self.make()
        m = self.masks(rep)
        x = rep.encode(m)
        assert x.shape == (self.batch, *rep.shape(self.size)) and x.dtype == torch.float32
        assert torch.isfinite(x).all()
        assert torch.equal(rep.encode(m.to(torch.uint8)), x), "uint8 and int64 labels must encode alike"

    def test_round_trip_every_class(self):
        rep = self.make()
        m = self.masks(rep)
        out = rep.decode(rep.encode(m))
        assert out.dtype == torch.uint8 and out.shape == m.shape
        assert float(mean_dice(out, m.to(torch.uint8), rep.num_classes).mean()) >= self.dice_floor

    def test_round_trip_of_a_single_class_map(self):
        # a learned autoencoder reconstructs what it was trained on (hearts; an empty map is out of its
        # distribution): here, the background of real maps stays background
        rep = self.make()
        m = self.masks(rep, seed=1)
        out = rep.decode(rep.encode(m)).long()
        assert out.shape == m.shape and float((out[m == 0] == 0).float().mean()) >= 0.95

    def test_a_near_encoding_decodes_to_the_data(self):
        """A lossy latent: a noisy encoding decodes as the clean one does (not necessarily to the data itself)."""
        rep = self.make()
        x = rep.encode(self.masks(rep))
        near = rep.decode(x + 1e-4 * self.noisy(rep, 4))
        assert float((near == rep.decode(x)).float().mean()) >= 0.99

    def test_batch_items_are_independent(self):
        rep = self.make()
        m = self.masks(rep)
        torch.testing.assert_close(rep.encode(m[1:2]), rep.encode(m)[1:2], rtol=1e-4, atol=1e-5)
        y = self.noisy(rep)
        assert float((rep.decode(y[1:2]) == rep.decode(y)[1:2]).float().mean()) >= 0.99

    def test_device_is_preserved(self):
        rep = self.make()
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        for device in devices:
            x = rep.encode(self.masks(rep).to(device))
            assert x.device.type == device.type and rep.decode(x).device.type == device.type
