"""``vae``: a KL-regularised convolutional VAE for label maps (Rombach et al. 2022, sec. 3 and appendix G).

The network is MONAI's ``AutoencoderKL`` (``monai.networks.nets``; 2-D and 3-D, residual blocks, GroupNorm,
optional attention): a well-kept, tested implementation of the latent-diffusion first stage, preferred over a
hand-written copy (docs/latent.md says why, and what it costs). MONAI is imported when a ``vae`` is built, not
when the plugin registers, so ``cardiobench --help`` and every pixel-space command stay as fast as before.

Input: the one-hot map in {-1, 1} (K channels); output: K class logits. With ``q(z | x) = N(mu, sigma^2)`` from
the encoder, ``z = mu + sigma eps`` (``eps ~ N(0, I)`` from the training generator) and ``l = decoder(z)``::

    L_CE   = mean_pixels  -log softmax(l)_m                         (cross-entropy against the labels m)
    L_Dice = 1 - (1/K) sum_k (2 sum p_k g_k + 1) / (sum p_k + sum g_k + 1),   p = softmax(l), g = onehot(m)
    L_KL   = mean_latent  (mu^2 + sigma^2 - 1 - log sigma^2) / 2    (KL(q(z|x) || N(0, I)) per latent element)
    L      = L_CE + L_Dice + beta L_KL

``beta`` is small (default 1e-3 on the per-element mean): the KL term only keeps the latent near a unit
Gaussian's scale, as the paper's "KL-reg" first stage does; reconstruction dominates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange

from cardiobench.autoencoders.base import Autoencoder
from cardiobench.data.base import NUM_CLASSES

__all__ = ["SIZES", "MaskVAE"]

#: named sizes: channels per level (len - 1 halvings: f = 2^(len-1)); parameter counts in docs/latent.md
SIZES: dict[str, tuple[int, ...]] = {
    "tiny": (8, 16, 16),  # tests: 30 k parameters, f = 4
    "small": (32, 64, 64),  # the default: 0.46 M parameters, f = 4
}


class MaskVAE(Autoencoder):
    """KL-regularised conv VAE for label maps: one-hot in, class logits out (MONAI AutoencoderKL)."""

    def __init__(self, num_classes: int = NUM_CLASSES, size: str = "small", channels: list[int] | None = None,
                 latent_channels: int = 4, num_res_blocks: int = 1, beta: float = 1e-3, norm_num_groups: int = 8,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        if channels is None:
            if size not in SIZES:
                raise ValueError(f"unknown vae size {size!r}; use one of: {', '.join(SIZES)}")
            channels = list(SIZES[size])
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 or c % int(norm_num_groups) for c in channels):
            raise ValueError(f"vae channels must be positive multiples of norm_num_groups={norm_num_groups}, "
                             f"got {channels}")
        if int(num_classes) < 2 or int(latent_channels) < 1 or int(num_res_blocks) < 1:
            raise ValueError("num_classes must be >= 2, latent_channels and num_res_blocks >= 1")
        if not float(beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if int(spatial_dims) not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        from monai.networks.nets import AutoencoderKL  # a runtime dependency; imported here: it takes seconds
        self.spatial_dims = int(spatial_dims)  # type: ignore[misc]
        self.num_classes = int(num_classes)
        self.channels = channels
        self.latent_channels = int(latent_channels)
        self.num_res_blocks = int(num_res_blocks)
        self.beta = float(beta)
        self.norm_num_groups = int(norm_num_groups)
        self.downsampling = 2 ** (len(channels) - 1)
        self.net = AutoencoderKL(
            spatial_dims=self.spatial_dims, in_channels=self.num_classes, out_channels=self.num_classes,
            channels=tuple(channels), num_res_blocks=(self.num_res_blocks,) * len(channels),
            attention_levels=(False,) * len(channels), latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups, with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "channels": list(self.channels),
                "latent_channels": self.latent_channels, "num_res_blocks": self.num_res_blocks, "beta": self.beta,
                "norm_num_groups": self.norm_num_groups, "spatial_dims": self.spatial_dims}

    def onehot(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, *S) labels -> (B, K, *S) one-hot in {-1, 1} on the module's device."""
        device = next(self.parameters()).device
        onehot = F.one_hot(torch.as_tensor(masks, device=device).long(), self.num_classes)
        return rearrange(onehot, "b ... k -> b k ...").float() * 2.0 - 1.0

    def encode(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = self.net.encode(self.onehot(masks))
        return mu, 2.0 * torch.log(sigma)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.decode(z)

    def loss(self, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.onehot(masks)
        mu, sigma = self.net.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)  # drawn on the CPU: same on every device
        logits = self.net.decode(mu + sigma * eps)
        target = torch.as_tensor(masks, device=logits.device).long()
        ce = F.cross_entropy(logits, target)
        p, g = logits.softmax(dim=1), (x + 1.0) / 2.0
        axes = (0, *range(2, p.ndim))  # per class, over the batch and the pixels
        dice = 1.0 - ((2.0 * (p * g).sum(axes) + 1.0) / (p.sum(axes) + g.sum(axes) + 1.0)).mean()
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).mean()
        total = ce + dice + self.beta * kl
        return total, {"ce": float(ce.detach()), "dice": float(dice.detach()), "kl": float(kl.detach())}
