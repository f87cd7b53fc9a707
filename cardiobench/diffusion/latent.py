"""``latent``: label maps or MR images as an autoencoder's scaled latent (latent diffusion, Rombach et al. 2022).

The representation is a trained autoencoder (kind ``autoencoder``, trained and stored by
``cardiobench.autoencoders.train``), named by its full spec in the option ``autoencoder``, so a denoiser's spec,
and its hash, include the autoencoder's identity. What it diffuses follows the autoencoder's ``data``:
``diffuses = "image"`` for an image autoencoder (``image-vae``: mask-to-image synthesis; the items are 8-bit grey
levels, ``num_classes = 256``), else ``"mask"`` (label maps). With ``mu`` the mean of ``q(z | m)`` of the items
``m`` and ``s`` the stored scale factor (``1 / std(mu)`` over the training split)::

    encode(m) = s mu(m)                          (B, c, H / f, W / f), deterministic: the posterior mean
    decode(x) = to_items(decoder(x / s))         (B, H, W) uint8, for any real x (noisy states too): the argmax
                                                 of the class logits, or the clipped, rounded grey levels

The diffused tensor has unit variance, so every linear-Gaussian process and sampler runs on it as it is; the
blurring process is built for the latent grid (the pipeline passes ``image_size = H / f``), so its DCT runs over
the latent's spatial axes. A latent is not bounded by [-1, 1] (``bounded = False``): samplers must not clip
their data estimate (the pipeline sets ``clip_x0 = false`` for samplers that take it).

The weights are read from the autoencoder store when first needed (``encode``/``decode``), so a plan can be made
and its hash computed before the autoencoder is trained; ``channels`` and ``shape`` come from the architecture.
"""

from __future__ import annotations

from typing import Any

import torch

from cardiobench.autoencoders.train import (
    AUTOENCODERS,
    TRAIN_HINT,
    AutoencoderSpec,
    LoadedAutoencoder,
    build_autoencoder,
    load_autoencoder,
)
from cardiobench.diffusion.representation import Representation, check_flag
from cardiobench.errors import CardiobenchError

__all__ = ["LatentRepresentation"]


class LatentRepresentation(Representation):
    """An autoencoder's latent, scaled to unit variance: encode = scaled posterior mean, decode = the items of the
    decoder's output (argmax logits for label maps, grey levels for images)."""

    bounded = False

    def __init__(self, autoencoder: dict[str, Any], self_condition: bool = False) -> None:
        if not isinstance(autoencoder, dict):
            raise ValueError("autoencoder must be an autoencoder spec (a table); set it with --autoencoder NAME")
        try:
            self.spec = AutoencoderSpec.from_dict(autoencoder)
        except (CardiobenchError, TypeError) as exc:
            raise ValueError(f"autoencoder is not an autoencoder spec: {exc}") from None
        net = build_autoencoder(self.spec)  # the architecture: channels, downsampling, classes
        #: what is diffused (``cardiobench.data.pairs.diffuses``): the image for an image autoencoder
        self.diffuses: str = "image" if net.data == "image" else "mask"
        self.spatial_dims = net.spatial_dims  # type: ignore[misc]
        self.channels = int(net.latent_channels)
        self.num_classes = int(net.num_classes)
        self.downsampling = int(net.downsampling)
        self.self_condition = check_flag("self_condition", self_condition)
        self._loaded: LoadedAutoencoder | None = None

    @property
    def spec_hash(self) -> str:
        return self.spec.hash()

    # -- the trained autoencoder ----------------------------------------------------------------------------
    def autoencoder(self) -> LoadedAutoencoder:
        """The trained autoencoder, read from the store on first use; one line if it is not there or damaged."""
        if self._loaded is None:
            h = self.spec_hash
            path = AUTOENCODERS.cache_path(h)
            if not path.is_file():
                raise CardiobenchError(
                    f"autoencoder {h[:12]} ({self.spec.autoencoder}, {self.spec.data}) is not trained yet",
                    f"{TRAIN_HINT}, or let `cardiobench run --autoencoder` train it")
            loaded = load_autoencoder(path)
            if loaded.spec_hash != h:
                raise CardiobenchError(f"autoencoder checkpoint {path} holds autoencoder "
                                       f"{loaded.spec_hash[:12]}, not {h[:12]}", f"delete it and {TRAIN_HINT}")
            self._loaded = loaded
        return self._loaded

    def _check_spatial(self, spatial: tuple[int, ...]) -> None:
        if tuple(spatial) != self.spec.spatial_shape:  # (H, W) slices, or (D, H, W) volumes
            raise CardiobenchError(
                f"autoencoder {self.spec_hash[:12]} was trained on {self.spec.data}, this model diffuses "
                f"{'x'.join(map(str, spatial))} items", "use an autoencoder trained at the model's item size")

    # -- the representation ---------------------------------------------------------------------------------
    def shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """``(c, H / f, W / f)``: the latent grid of one item at ``resolution`` (the autoencoder's)."""
        spatial = (resolution,) * self.spatial_dims if isinstance(resolution, int) else tuple(resolution)
        self._check_spatial(spatial)
        return (self.channels, *(s // self.downsampling for s in spatial))

    def mask_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        spatial = (resolution,) * self.spatial_dims if isinstance(resolution, int) else tuple(resolution)
        self._check_spatial(spatial)
        return spatial

    @torch.no_grad()
    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, H, W) uint8 items (labels, or grey levels for an image autoencoder) -> (B, c, H / f, W / f)
        float32: ``s mu(m)`` on the items' device."""
        items = torch.as_tensor(masks)
        self._check_spatial(tuple(items.shape[1:]))
        ae = self.autoencoder()
        model = ae.model.to(items.device)
        return (model.encode(items)[0].float() * ae.scale_factor).contiguous()

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) real -> (B, h f, w f) uint8 items: ``to_items(decoder(x / s))`` on ``x``'s device."""
        ae = self.autoencoder()
        model = ae.model.to(x.device)
        return model.to_items(model.decode(x.float() / ae.scale_factor)).to(torch.uint8)

    def config(self) -> dict[str, Any]:
        return {"autoencoder": self.spec.to_dict(), **({"self_condition": True} if self.self_condition else {})}
