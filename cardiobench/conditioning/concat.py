"""Conditioning on a paired map by concatenation (the MedSegDiff-style baseline, Wu et al. 2023).

Segmentation: the MRI slice is concatenated to ``x_t`` as an extra input channel, and the U-Net is trained from
scratch to denoise the mask given the image: ``m = net([x_t, image], t)``. Synthesis (mask-to-image, as in
segmentation-guided diffusion, Konz et al. 2024): the one-hot label map is concatenated to the noisy image.
The map's channel count is the paired map's (``cardiobench.data.pairs``). One network evaluation per step.

In an autoencoder's latent (``map_downsampling = f > 1``) the map is brought to the latent grid by
space-to-depth (``maps_to_grid``): each f x f block becomes f^2 channels, ``C_map f^2`` extra input channels in
all. Lossless and parameter-free, so the U-Net still sees every pixel of the condition.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from cardiobench.conditioning.base import BackboneFactory, Condition, ConditioningMethod, maps_to_grid
from cardiobench.diffusion.base import ModelFn
from cardiobench.errors import CardiobenchError


def require_images(cond: Condition, method: str) -> torch.Tensor:
    if cond.images is None:
        raise CardiobenchError(f"{method} needs the MRI image of each sample (paired data)")
    return cond.images


class Concat(ConditioningMethod):
    """The paired map (MRI image, or label map for synthesis) as extra input channels of the U-Net, from scratch."""

    name = "concat"
    has_scale = False
    condition = "image"
    tasks: ClassVar[tuple[str, ...]] = ("segmentation", "synthesis")
    #: the network output is mixed / conditioned as it is, whatever it means (eps, v, x0, or x0 logits)
    families: ClassVar[tuple[str, ...]] = ("linear-gaussian", "categorical")

    def build_network(self, make_backbone: BackboneFactory, in_channels: int, out_channels: int) -> nn.Module:
        return make_backbone(in_channels + self.image_channels * self.map_downsampling ** self.spatial_dims,
                             out_channels)

    def maps(self, cond: Condition) -> torch.Tensor:
        """The condition's maps on the diffused grid: (B, C_map f^n, *S / f)."""
        return maps_to_grid(require_images(cond, self.name), self.map_downsampling)

    def forward_train(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Condition,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        return net(torch.cat([x_t, self.maps(cond)], dim=1), t)

    def model_fn(self, net: nn.Module, cond: Condition, *, guidance_scale: float = 1.0,
                 process: Any = None) -> ModelFn:
        if float(guidance_scale) != 1.0:
            raise CardiobenchError(f"concat has no guidance scale (got {guidance_scale})",
                                   "leave --guidance-scale at 1")
        maps = self.maps(cond)
        return lambda x, t: net(torch.cat([x, maps], dim=1), t)
