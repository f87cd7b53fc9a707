"""What is diffused: representations (label maps <-> tensors) and the variable the engine works on.

The engine never decides what a diffused tensor is. Two plugins decide together:

- a **representation** (kind ``representation``) turns label maps into the tensor the model sees and
  back: ``encode`` (B, *spatial) integer labels -> (B, C, *spatial) float, ``decode`` the inverse,
  ``channels`` and ``spatial_dims`` (2 for slices, 3 for volumes). The built-in ``onehot`` is the
  one-hot map in [-1, 1] decoded by argmax; analog bits or an autoencoder's latent are other
  representations of the same label maps.
- the **noise process** (kind ``noise``) owns the randomness: the prior draw ``x_T`` (``prior``) and the
  training loss (``training_loss``), because both belong to its family (white Gaussian noise and a
  regression loss for the linear-Gaussian family; a uniform categorical draw and a cross-entropy for a
  categorical family).

:class:`DiffusedVariable` binds the two at a resolution: the one object the trainer, the sampling
runner, segmentation, the GIF and the bench call. Why two plugins and not one: representations and
processes combine freely (one-hot x {gaussian, blurring, categorical}; bits x {gaussian, blurring}),
and each pair would otherwise be written again. A representation lists the process families it fits
in its registration metadata (``families``; absent: every family).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from einops import rearrange

from cardiobench.data.base import NUM_CLASSES

__all__ = ["DiffusedVariable", "OneHotRepresentation", "Representation"]


class Representation(ABC):
    """Label maps <-> the tensor a diffusion model is trained on.

    ``encode`` and ``decode`` run on the tensor's device; ``decode(encode(m)) == m`` for every label map ``m``.
    """

    #: 2 (slices, (B, C, H, W)) or 3 (volumes, (B, C, D, H, W))
    spatial_dims: ClassVar[int] = 2
    channels: int
    num_classes: int

    @abstractmethod
    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, *spatial) integer labels in ``0..num_classes-1`` -> (B, channels, *spatial) float32."""

    @abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, *spatial) -> (B, *spatial) uint8 labels. Any real input decodes (it may be a noisy state)."""

    def shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """``(channels, *spatial)`` of one item at ``resolution`` (an int: a square / cube of that side)."""
        spatial = (resolution,) * self.spatial_dims if isinstance(resolution, int) else tuple(resolution)
        return (self.channels, *spatial)

    def config(self) -> dict[str, Any]:
        """Explicit options (JSON), so ``factory(**config())`` rebuilds it."""
        return {}


class OneHotRepresentation(Representation):
    """One-hot label maps in [-1, 1], decoded by argmax over channels (the default)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = self.channels = int(num_classes)

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        # (B, H, W) -> (B, K, H, W): 2 * onehot - 1
        onehot = torch.nn.functional.one_hot(torch.as_tensor(masks).long(), self.num_classes)
        return rearrange(onehot, "b ... k -> b k ...").float() * 2.0 - 1.0

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=1).to(torch.uint8)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}


#: model_fn(x_t, t) -> network output; what ``training_loss`` calls (conditioning already applied)
TrainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DiffusedVariable:
    """The diffused variable of one model: its representation, its noise process and its size.

    Shapes: ``masks`` (B, *spatial) uint8/long; tensors (B, C, *spatial) with ``C = representation.channels``.
    """

    representation: Representation
    process: Any  # a NoiseProcess (linear-Gaussian or another family)
    resolution: int | tuple[int, ...]

    @property
    def item_shape(self) -> tuple[int, ...]:
        """(C, *spatial) of one item."""
        return self.representation.shape(self.resolution)

    def shape(self, batch: int) -> tuple[int, ...]:
        return (int(batch), *self.item_shape)

    @property
    def channels(self) -> int:
        return self.representation.channels

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        return self.representation.encode(masks)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.representation.decode(x)

    def prior(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T for ``batch`` items, drawn on the CPU from ``generator`` (the caller moves it to its device)."""
        return self.process.prior(self.shape(batch), generator=generator)

    def training_loss(self, model_fn: TrainFn, x0: torch.Tensor, generator: torch.Generator, *,
                      loss: str = "mse") -> torch.Tensor:
        """The process's training loss of one batch of encoded data ``x0`` (scalar tensor)."""
        return self.process.training_loss(model_fn, x0, generator, loss=loss)
