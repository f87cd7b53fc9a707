"""The autoencoder interface: label maps -> a latent grid -> class logits (kind ``autoencoder``).

An autoencoder plugin's factory takes keyword options and returns an :class:`Autoencoder`, a ``torch.nn.Module``
with::

    encode(masks)            (B, *S) integer labels        -> (mean, logvar), each (B, c, *S / f)
    decode(z)                (B, c, *S / f) real latent     -> (B, K, *S) class logits
    loss(masks, generator)   one training batch              -> (scalar loss, {part: float})
    config()                 JSON options: factory(**config()) rebuilds the same architecture

``f`` (``downsampling``) is the spatial downsampling factor, ``c`` (``latent_channels``) the latent's channels and
``K`` (``num_classes``) the label count. ``encode`` is deterministic (the posterior's parameters); the training
loss draws its reparameterisation noise from ``generator`` only, so a seed gives the same weights. The latent
representation (``cardiobench.diffusion.latent``) diffuses ``scale_factor * mean`` and decodes by ``argmax`` of
the logits.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["Autoencoder"]


class Autoencoder(nn.Module):
    """Label maps <-> a KL-regularised latent grid (see the module docstring for shapes)."""

    #: 2 (slices) or 3 (volumes)
    spatial_dims: ClassVar[int] = 2
    num_classes: int
    latent_channels: int
    #: spatial downsampling factor f of the latent grid (every side of the input must divide by it)
    downsampling: int

    @abstractmethod
    def encode(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, *S) integer labels -> ``(mean, logvar)`` of q(z | x), each (B, c, *S / f) float32."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c, *S / f) latent -> (B, K, *S) class logits."""

    @abstractmethod
    def loss(self, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of one batch of label maps (B, *S), and its parts as floats (for progress)."""

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
