"""The autoencoder interface: items (label maps or MR images) -> a latent grid -> back (kind ``autoencoder``).

An autoencoder plugin's factory takes keyword options and returns an :class:`Autoencoder`, a ``torch.nn.Module``
with::

    encode(items)            (B, *S) uint8 items                -> (mean, logvar), each (B, c, *S / f)
    decode(z)                (B, c, *S / f) real latent         -> (B, C_out, *S) raw decoder output
    to_items(output)         (B, C_out, *S) decoder output      -> (B, *S) uint8 items
    loss(items, generator)   one training batch                  -> (scalar loss, {part: float})
    config()                 JSON options: factory(**config()) rebuilds the same architecture

``data`` says what the items are (the plugin's registration metadata ``data`` says the same):

- ``"mask"`` (the default): label maps 0..K-1; ``decode`` gives K class logits, ``to_items`` is their ``argmax``;
- ``"image"``: 8-bit grey levels 0..255 of MR slices (``K = 256``); ``decode`` gives (B, 1, *S) in about
  [-1, 1] (the ``mri`` representation's scale, x = 2 g / 255 - 1), ``to_items`` clips and rounds it back.

``f`` (``downsampling``) is the spatial downsampling factor, ``c`` (``latent_channels``) the latent's channels and
``K`` (``num_classes``) the number of item values. ``encode`` is deterministic (the posterior's parameters); the
training loss draws its reparameterisation noise from ``generator`` only, so a seed gives the same weights. The
latent representation (``cardiobench.diffusion.latent``) diffuses ``scale_factor * mean`` and decodes by
``to_items(decode(z))``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["DATA_KINDS", "Autoencoder"]


#: what an autoencoder encodes: label maps or 8-bit MR images
DATA_KINDS = ("mask", "image")


class Autoencoder(nn.Module):
    """Items (label maps or grey levels) <-> a KL-regularised latent grid (see the module docstring for shapes)."""

    #: 2 (slices) or 3 (volumes)
    spatial_dims: ClassVar[int] = 2
    #: what the items are, "mask" or "image" (equal to the registration metadata ``data``)
    data: ClassVar[str] = "mask"
    num_classes: int
    latent_channels: int
    #: spatial downsampling factor f of the latent grid (every side of the input must divide by it)
    downsampling: int

    @abstractmethod
    def encode(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, *S) items (labels, or grey levels for ``data = "image"``) -> ``(mean, logvar)`` of q(z | x), each
        (B, c, *S / f) float32."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c, *S / f) latent -> (B, C_out, *S) raw output: K class logits, or one channel in about [-1, 1]."""

    def to_items(self, output: torch.Tensor) -> torch.Tensor:
        """(B, C_out, *S) decoder output -> (B, *S) uint8 items; for label maps the ``argmax`` over the classes."""
        return output.argmax(dim=1).to(torch.uint8)

    @abstractmethod
    def loss(self, items: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of one batch of items (B, *S), and its parts as floats (for progress)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Explicit options (JSON) from which the factory rebuilds the same architecture."""

    def latent_shape(self, spatial: int | tuple[int, ...]) -> tuple[int, ...]:
        """``(c, *S / f)`` of one item whose label map has spatial shape ``spatial`` (an int: a square/cube).

        A ``ValueError`` for a side that does not divide by ``f``."""
        sides = (spatial,) * self.spatial_dims if isinstance(spatial, int) else tuple(spatial)
        bad = [s for s in sides if s % self.downsampling]
        if bad:
            raise ValueError(f"this autoencoder downsamples by {self.downsampling}: every side must divide by it, "
                             f"got {tuple(sides)}")
        return (self.latent_channels, *(s // self.downsampling for s in sides))
