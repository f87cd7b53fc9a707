"""Contract suites for autoencoder plugins (kind ``autoencoder``) and for representations backed by one (``latent``).

In your plugin's tests::

    from cardiobench.testing.autoencoders import AutoencoderContract

    class TestMyVAE(AutoencoderContract):
        autoencoder_name = "my-vae"                 # as registered
        autoencoder_options = {"size": "tiny"}

``AutoencoderContract`` checks: the registration (an ``Autoencoder``, a summary); ``encode`` gives (mean, logvar)
of shape ``(B, *latent_shape(S))`` and ``decode`` (B, K, *S) logits; ``encode`` is deterministic and per item;
``loss`` is finite, differentiable and reproducible from the generator; ``config()`` is JSON and rebuilds the
architecture (the state dict loads); after a short training on phantom masks (``train_steps``) the checkpoint
reads with ``torch.load(weights_only=True)``, loads back to the same encodings, and its round trip
``argmax decode(encode(m))`` on the test split scores a mean Dice of at least ``dice_floor`` (every structure at
least ``dice_floor - 0.1``). ``LatentRepresentationContract`` is ``RepresentationContract`` for a lossy,
downsampling representation: shapes on the latent grid, a Dice floor instead of an exact round trip.
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

from cardiobench.autoencoders.base import Autoencoder
from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    AutoencoderSpec,
    encode_masks,
    load_autoencoder,
    reconstruct,
    resolve_autoencoder_spec,
    train_autoencoder,
)
from cardiobench.data import open_dataset
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


def phantom_masks(resolution: int, split: str, n: int | None = None) -> torch.Tensor:
    data = open_dataset("phantom", size=resolution, cache=False, **PHANTOM).load(split)
    masks = torch.from_numpy(data.masks.astype("uint8"))
    return masks if n is None else masks[torch.linspace(0, len(masks) - 1, n).round().long()]


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
    #: the round trip's mean Dice on the test split after ``train_steps`` must reach this
    dice_floor: ClassVar[float] = 0.7

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

    def masks(self) -> torch.Tensor:
        return phantom_masks(self.resolution, "train", self.batch)

    def test_registered_as_an_autoencoder(self):
        assert isinstance(self.make(), Autoencoder), "the factory must return a cardiobench Autoencoder"
        assert self.component().summary, "give the factory a docstring or a summary"

    def test_encode_decode_shapes(self):
        ae, m = self.make(), self.masks()
        latent = ae.latent_shape(self.resolution)
        assert len(latent) == 1 + ae.spatial_dims and latent[0] == ae.latent_channels
        with torch.no_grad():
            mean, logvar = ae.encode(m)
            assert mean.shape == logvar.shape == (self.batch, *latent), (mean.shape, latent)
            assert mean.dtype == torch.float32 and torch.isfinite(mean).all() and torch.isfinite(logvar).all()
            logits = ae.decode(mean)
        assert logits.shape == (self.batch, ae.num_classes, *m.shape[1:]), logits.shape
        with pytest.raises(ValueError):
            ae.latent_shape(self.resolution + 1)

    def test_encode_is_deterministic_and_per_item(self):
        ae, m = self.make(), self.masks()
        with torch.no_grad():
            a, b = ae.encode(m)[0], ae.encode(m)[0]
            one = ae.encode(m[1:2])[0]
        assert torch.equal(a, b), "encode must be deterministic (the posterior mean)"
        torch.testing.assert_close(one, a[1:2], rtol=1e-4, atol=1e-5)

    def test_loss_is_finite_reproducible_and_differentiable(self):
        ae, m = self.make().train(), self.masks()
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
        m = phantom_masks(self.resolution, "train")
        z = encode_masks(loaded.model, m)
        assert abs(float(z.std()) * loaded.scale_factor - 1.0) < 1e-3, "the scaled latent has unit variance"

    def test_round_trip_on_masks_above_the_dice_floor(self):
        path, _ = trained_autoencoder(self.spec())
        loaded = load_autoencoder(path)
        m = phantom_masks(self.resolution, "test")
        per = mean_dice(reconstruct(loaded.model, m), m, loaded.model.num_classes)
        assert float(per.mean()) >= self.dice_floor, f"round-trip Dice {per.tolist()} below {self.dice_floor}"
        assert float(per.min()) >= self.dice_floor - 0.1, f"a structure's round-trip Dice is poor: {per.tolist()}"
        assert abs(float(per.mean()) - loaded.report["reconstruction"]["dice_mean"]) < 1e-3


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
