"""``vae``: a KL-regularised convolutional VAE for label maps (Rombach et al. 2022, sec. 3 and appendix G).

The network is MONAI's ``AutoencoderKL`` (``monai.networks.nets``; 2-D and 3-D, residual blocks, GroupNorm,
optional attention): a well-kept, tested implementation of the latent-diffusion first stage, preferred over a
hand-written copy (docs/latent.md says why, and what it costs). MONAI is imported when a ``vae`` is built, not
when the plugin registers, so ``cardiobench --help`` and every pixel-space command stay as fast as before.

``KLAutoencoder`` is what every MONAI-backed VAE here shares (``vae`` and ``image-vae``,
``cardiobench.autoencoders.image_vae``): the options and their checks, the network, ``encode``/``decode``, the
reparameterised loss and its KL term, ``config()``. A subclass says how items become the network's input
(``inputs``) and what the reconstruction term is (``reconstruction``). With ``q(z | x) = N(mu, sigma^2)`` from the
encoder, ``z = mu + sigma eps`` (``eps ~ N(0, I)`` from the training generator, drawn on the CPU) and the decoder
output ``y = decoder(z)``::

    L_KL   = mean_latent  (mu^2 + sigma^2 - 1 - log sigma^2) / 2    (KL(q(z|x) || N(0, I)) per latent element)
    L      = L_rec(y, x) + beta L_KL

``MaskVAE`` (``vae``): input the one-hot map in {-1, 1} (K channels), output K class logits ``l = y``::

    L_CE   = mean_pixels  -log softmax(l)_m                         (cross-entropy against the labels m)
    L_Dice = 1 - (1/K) sum_k (2 sum p_k g_k + 1) / (sum p_k + sum g_k + 1),   p = softmax(l), g = onehot(m)
    L_rec  = L_CE + L_Dice

``beta`` is small (default 1e-3 on the per-element mean): the KL term only keeps the latent near a unit
Gaussian's scale, as the paper's "KL-reg" first stage does; reconstruction dominates.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange

from cardiobench.autoencoders.base import Autoencoder
from cardiobench.data.base import NUM_CLASSES

__all__ = ["SIZES", "KLAutoencoder", "MaskVAE", "kl_divergence"]

#: named sizes: channels per level (len - 1 halvings: f = 2^(len-1)); parameter counts in docs/latent.md
SIZES: dict[str, tuple[int, ...]] = {
    "tiny": (8, 16, 16),  # tests: 30 k parameters (vae), f = 4
    "small": (32, 64, 64),  # the vae's default: 0.46 M parameters, f = 4
    "shallow": (32, 64),  # the image-vae's default: 0.23 M parameters, f = 2 (f = 4 blurs MR texture away)
}


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per latent element, averaged: mean (mu^2 + sigma^2 - 1 - log sigma^2) / 2."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).mean()


class KLAutoencoder(Autoencoder):
    """A KL-regularised conv VAE on MONAI's AutoencoderKL; subclasses give ``inputs`` and ``reconstruction``."""

    #: the plugin's name, for error messages
    plugin_name: ClassVar[str] = "vae"

    def __init__(self, *, in_channels: int, out_channels: int, size: str = "small",
                 channels: list[int] | None = None, latent_channels: int = 4, num_res_blocks: int = 1,
                 beta: float = 1e-3, norm_num_groups: int = 8, spatial_dims: int = 2) -> None:
        super().__init__()
        name = self.plugin_name
        if channels is None:
            if size not in SIZES:
                raise ValueError(f"unknown {name} size {size!r}; use one of: {', '.join(SIZES)}")
            channels = list(SIZES[size])
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 or c % int(norm_num_groups) for c in channels):
            raise ValueError(f"{name} channels must be positive multiples of norm_num_groups={norm_num_groups}, "
                             f"got {channels}")
        if int(latent_channels) < 1 or int(num_res_blocks) < 1:
            raise ValueError(f"{name}: latent_channels and num_res_blocks must be >= 1")
        if not float(beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if int(spatial_dims) not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        from monai.networks.nets import AutoencoderKL  # a runtime dependency; imported here: it takes seconds
        self.spatial_dims = int(spatial_dims)  # type: ignore[misc]
        self.channels = channels
        self.latent_channels = int(latent_channels)
        self.num_res_blocks = int(num_res_blocks)
        self.beta = float(beta)
        self.norm_num_groups = int(norm_num_groups)
        self.downsampling = 2 ** (len(channels) - 1)
        self.net = AutoencoderKL(
            spatial_dims=self.spatial_dims, in_channels=int(in_channels), out_channels=int(out_channels),
            channels=tuple(channels), num_res_blocks=(self.num_res_blocks,) * len(channels),
            attention_levels=(False,) * len(channels), latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups, with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False)

    def config(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "latent_channels": self.latent_channels,
                "num_res_blocks": self.num_res_blocks, "beta": self.beta, "norm_num_groups": self.norm_num_groups,
                "spatial_dims": self.spatial_dims}

    @abstractmethod
    def inputs(self, items: torch.Tensor) -> torch.Tensor:
        """(B, *S) items -> (B, C_in, *S) float network input x on the module's device."""

    @abstractmethod
    def reconstruction(self, output: torch.Tensor, x: torch.Tensor, items: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        """L_rec of the decoder output y (B, C_out, *S) against the input x and the items; and its parts."""

    def encode(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = self.net.encode(self.inputs(items))
        return mu, 2.0 * torch.log(sigma)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.decode(z)

    def loss(self, items: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.inputs(items)
        mu, sigma = self.net.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)  # drawn on the CPU: same on every device
        rec, parts = self.reconstruction(self.net.decode(mu + sigma * eps), x, items)
        kl = kl_divergence(mu, sigma)
        total = rec + self.beta * kl  # L = L_rec + beta L_KL
        return total, {**parts, "kl": float(kl.detach())}


class MaskVAE(KLAutoencoder):
    """KL-regularised conv VAE for label maps: one-hot in, class logits out (MONAI AutoencoderKL)."""

    data: ClassVar[str] = "mask"
    plugin_name: ClassVar[str] = "vae"

    def __init__(self, num_classes: int = NUM_CLASSES, size: str = "small", channels: list[int] | None = None,
                 latent_channels: int = 4, num_res_blocks: int = 1, beta: float = 1e-3, norm_num_groups: int = 8,
                 spatial_dims: int = 2) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"vae: num_classes must be >= 2, got {num_classes}")
        super().__init__(in_channels=int(num_classes), out_channels=int(num_classes), size=size, channels=channels,
                         latent_channels=latent_channels, num_res_blocks=num_res_blocks, beta=beta,
                         norm_num_groups=norm_num_groups, spatial_dims=spatial_dims)
        self.num_classes = int(num_classes)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, **super().config()}

    def onehot(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, *S) labels -> (B, K, *S) one-hot in {-1, 1} on the module's device."""
        device = next(self.parameters()).device
        onehot = F.one_hot(torch.as_tensor(masks, device=device).long(), self.num_classes)
        return rearrange(onehot, "b ... k -> b k ...").float() * 2.0 - 1.0

    def inputs(self, items: torch.Tensor) -> torch.Tensor:
        return self.onehot(items)

    def reconstruction(self, output: torch.Tensor, x: torch.Tensor, items: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        # L_rec = L_CE + L_Dice on the logits l = output
        target = torch.as_tensor(items, device=output.device).long()
        ce = F.cross_entropy(output, target)
        p, g = output.softmax(dim=1), (x + 1.0) / 2.0
        axes = (0, *range(2, p.ndim))  # per class, over the batch and the pixels
        dice = 1.0 - ((2.0 * (p * g).sum(axes) + 1.0) / (p.sum(axes) + g.sum(axes) + 1.0)).mean()
        return ce + dice, {"ce": float(ce.detach()), "dice": float(dice.detach())}
