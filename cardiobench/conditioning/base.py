"""The contract of a conditioning method, and the batch condition it reads.

A conditioning method decides three things (``ConditioningMethod``):

- **the network** (``build_network``): the backbone with class labels (classifier-free guidance), with the
  MRI image as extra input channels (``concat``), or a frozen base U-Net plus a trainable control branch
  (``controlnet``);
- **the training forward** (``forward_train``): how the condition enters one training batch (e.g. labels
  dropped to the null token with probability ``p_uncond``);
- **the sampling network function** (``model_fn``): ``(x_t, t) -> model output`` for the sampler, with the
  condition and the guidance scale folded in.

A method registers through ``register_conditioning`` with metadata ``condition`` (``"label"``: the
pathology group, or ``"image"``: the MRI slice), ``tasks`` (``"generation"`` and/or ``"segmentation"``),
``families`` (noise-process families it works with) and ``trains_network`` (``False`` for classifier
guidance, which steers an unconditional model with a separately trained classifier).

An image-conditioning method reads a paired map (``Condition.images``) at the label map's resolution. When the
diffused tensor is on a coarser grid (an autoencoder's latent, ``f`` times smaller per side), the engine sets the
method's ``map_downsampling = f`` and the method brings the map to that grid itself: ``concat`` by
space-to-depth (``maps_to_grid``, lossless, no parameters), ``controlnet`` with a strided hint encoder (the
ControlNet paper's design for Stable Diffusion's latent).
``cardiobench.testing.conditioning`` is the contract suite every method must pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from einops import rearrange
from torch import nn

from cardiobench.diffusion.base import ModelFn

#: builds the plain backbone: ``make_backbone(in_channels, out_channels, **extra_options)``
BackboneFactory = Callable[..., nn.Module]

CONDITIONS: tuple[str, ...] = ("label", "image")


@dataclass
class Condition:
    """The condition of one batch (tensors on the model's device; fields a method does not use are ``None``).

    labels: (B,) long, pathology group index into ``cardiobench.data.GROUPS`` (the null token is the
            network's ``null_class``)
    images: (B, 1, H, W) float32 in [-1, 1], the MRI slice paired with each mask
    """

    labels: torch.Tensor | None = None
    images: torch.Tensor | None = None

    def __len__(self) -> int:
        for value in (self.labels, self.images):
            if value is not None:
                return int(value.shape[0])
        return 0

    def index(self, idx: torch.Tensor | slice) -> Condition:
        """The condition of a sub-batch."""
        return Condition(*(None if v is None else v[idx] for v in (self.labels, self.images)))

    def to(self, device: torch.device | str) -> Condition:
        return Condition(*(None if v is None else v.to(device) for v in (self.labels, self.images)))

    def repeat(self, k: int) -> Condition:
        """Each item ``k`` times in a row (``[a, a, b, b]`` for k=2): the ensemble of a segmentation."""
        return Condition(*(None if v is None else v.repeat_interleave(k, dim=0) for v in (self.labels, self.images)))


class ConditioningMethod(ABC):
    """A conditioning method; options are keyword arguments of the constructor (see ``config``)."""

    name: ClassVar[str]
    #: what the model is conditioned on: "label" (the pathology group) or "image" (the MRI slice)
    condition: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    families: ClassVar[tuple[str, ...]] = ("linear-gaussian",)
    #: False when the diffusion network is the unconditional one (classifier guidance)
    trains_network: ClassVar[bool] = True
    #: False when the method has no guidance / conditioning scale (``--guidance-scale`` must then stay 1)
    has_scale: ClassVar[bool] = True
    #: an image-conditioning method's paired map: its channels, and how many times larger per side it is than the
    #: diffused grid (1 in pixel space; an autoencoder's f in its latent), and the data's spatial axes (2: slices,
    #: 3: volumes). Set by the engine before ``build_network`` (``cardiobench.factories.build_conditioning``).
    image_channels: int = 1
    map_downsampling: int = 1
    spatial_dims: int = 2

    def config(self) -> dict[str, Any]:
        """The method's explicit options (JSON values): part of the training spec and its hash."""
        return {}

    # -- training ----------------------------------------------------------------------------------------
    def build_network(self, make_backbone: BackboneFactory, in_channels: int, out_channels: int) -> nn.Module:
        """The network trained for this method (default: the plain backbone)."""
        return make_backbone(in_channels, out_channels)

    def trainable_parameters(self, net: nn.Module) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (ControlNet: the control branch only)."""
        return [p for p in net.parameters() if p.requires_grad]

    @abstractmethod
    def forward_train(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Condition,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The network output on a training batch ``x_t`` (B, C, H, W) at ``t`` (B,) under ``cond``.

        Random choices (e.g. dropping labels) draw from ``generator`` (a CPU generator), so training is
        reproducible bit for bit.
        """

    def base_spec(self, spec: Any) -> Any:
        """The ``TrainSpec`` of a trained model this method builds on (ControlNet's frozen base), else ``None``.

        Training loads that model's weights before the first step; the run summary names it."""
        return None

    def prepare(self, train_spec: Any, **kwargs: Any) -> Any:
        """Get ready to sample a model of ``train_spec`` (a ``TrainSpec``): e.g. train or reuse an auxiliary
        network (classifier guidance's noisy classifier). ``kwargs``: ``device``, ``data_root``, ``progress``
        (a ``cardiobench.progress.Progress``). The pipeline calls it before sampling; the default does nothing."""
        return None

    # -- sampling ----------------------------------------------------------------------------------------
    @abstractmethod
    def model_fn(self, net: nn.Module, cond: Condition, *, guidance_scale: float = 1.0,
                 process: Any = None) -> ModelFn:
        """``(x_t, t) -> model output`` for the sampler, conditioned on ``cond`` (batch B) at ``guidance_scale``."""

    #: True when ``model_fn`` needs autograd (the sampler then runs the network outside inference mode)
    needs_grad: ClassVar[bool] = False


def drop_labels(labels: torch.Tensor, null_class: int, p_uncond: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``labels`` (B,) with each entry replaced by ``null_class`` with probability ``p_uncond``.

    Draws B uniforms from ``generator`` on the CPU (also when ``p_uncond`` is 0 or 1, so the random
    stream does not depend on it), then moves the mask to the labels' device.
    """
    u = torch.rand(labels.shape[0], generator=generator)
    drop = (u < p_uncond).to(labels.device)
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def maps_to_grid(maps: torch.Tensor, factor: int) -> torch.Tensor:
    """Space-to-depth: (B, C, *S) -> (B, C f^n, *S / f) with f = ``factor`` on each of the n spatial axes.

    Each f x f (x f) block of the map becomes f^n channels of one grid cell (``pixel_unshuffle``), so a map at the
    label map's resolution is brought to a latent grid without losing anything; ``factor = 1`` returns it as is.
    """
    if factor == 1:
        return maps
    if maps.ndim == 4:
        return rearrange(maps, "b c (h p) (w q) -> b (c p q) h w", p=factor, q=factor)
    return rearrange(maps, "b c (d o) (h p) (w q) -> b (c o p q) d h w", o=factor, p=factor, q=factor)


__all__ = ["CONDITIONS", "BackboneFactory", "Condition", "ConditioningMethod", "drop_labels", "maps_to_grid"]
