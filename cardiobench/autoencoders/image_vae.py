"""``image-vae``: a KL-regularised convolutional VAE for MR slices (the first stage of latent mask-to-image synthesis).

The same network and options as ``vae`` (``cardiobench.autoencoders.vae.KLAutoencoder``: MONAI's ``AutoencoderKL``,
``size`` tiny/small/shallow (the default) or ``channels``, ``latent_channels``, ``num_res_blocks``, ``beta``,
``norm_num_groups``, ``spatial_dims``), with one input and one output channel. Items are 8-bit grey levels ``g``
(uint8, 0..255), the ``mri`` representation's items (``cardiobench.diffusion.intensity``), mapped to [-1, 1] as it
maps them::

    x      = 2 g / 255 - 1                                           (B, 1, *S)
    z      = mu + sigma eps,  eps ~ N(0, I) from the training generator (drawn on the CPU)
    L_L1   = mean_pixels |decoder(z) - x|
    L_KL   = mean_latent (mu^2 + sigma^2 - 1 - log sigma^2) / 2      (KL(q(z|x) || N(0, I)) per latent element)
    L      = L_L1 + beta L_KL

``decode`` gives (B, 1, *S) in about [-1, 1]; ``to_items`` clips and rounds it to grey levels,
``g = round((clip(y, -1, 1) + 1) 255 / 2)``, as the ``mri`` representation decodes. The default size is
``shallow`` (channels 32, 64: f = 2), not the ``vae``'s f = 4: on real ACDC an L1 autoencoder at f = 4 smooths the
MR texture away (the real slices through it score image FID 18.1 against 3.4 at f = 2; docs/results-acdc.md). The
paper's first stage adds a perceptual (LPIPS) and a patch-adversarial term; neither is here: LPIPS needs pretrained
weights (none offline), and halving the compression measurably closed most of the gap they address.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from cardiobench.autoencoders.vae import KLAutoencoder
from cardiobench.diffusion.intensity import GREY_LEVELS, grey_to_signed, signed_to_grey

__all__ = ["ImageVAE"]


class ImageVAE(KLAutoencoder):
    """KL-regularised conv VAE for MR slices: 8-bit grey levels in, one channel in [-1, 1] out (L1 + beta KL)."""

    data: ClassVar[str] = "image"
    plugin_name: ClassVar[str] = "image-vae"

    def __init__(self, size: str = "shallow", channels: list[int] | None = None, latent_channels: int = 4,
                 num_res_blocks: int = 1, beta: float = 1e-3, norm_num_groups: int = 8,
                 spatial_dims: int = 2) -> None:
        super().__init__(in_channels=1, out_channels=1, size=size, channels=channels,
                         latent_channels=latent_channels, num_res_blocks=num_res_blocks, beta=beta,
                         norm_num_groups=norm_num_groups, spatial_dims=spatial_dims)
        self.num_classes = GREY_LEVELS

    def inputs(self, items: torch.Tensor) -> torch.Tensor:
        # (B, *S) grey levels g -> (B, 1, *S): x = 2 g / 255 - 1, on the module's device
        device = next(self.parameters()).device
        return grey_to_signed(torch.as_tensor(items, device=device))

    def reconstruction(self, output: torch.Tensor, x: torch.Tensor, items: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        l1 = F.l1_loss(output, x)  # L_L1 = mean |decoder(z) - x|
        return l1, {"l1": float(l1.detach())}

    def to_items(self, output: torch.Tensor) -> torch.Tensor:
        """(B, 1, *S) decoder output -> (B, *S) uint8 grey levels: round((clip(y, -1, 1) + 1) 255 / 2)."""
        return signed_to_grey(output)
