"""Building blocks of the seed's U-Net: time embedding, ConvNeXt blocks, attention, resampling.

The seed (``seeds/000``, section 4.1) uses the ConvNeXt-style denoiser of the "annotated diffusion"
notebook: a depthwise 7x7 convolution, the time embedding added, then a small convolutional MLP, with
a residual connection (Liu et al., "A ConvNet for the 2020s", CVPR 2022, arXiv 2201.03545); linear
attention in the down/up blocks (Shen et al. 2021, "Efficient attention", arXiv 1812.01243, as in
Katharopoulos et al. 2020) and full softmax attention in the middle block.

Shapes: feature maps are ``(B, C, H, W)``; the embedding ``emb`` is ``(B, E)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """(B,) timesteps (long or float) -> (B, dim) sinusoidal features (Vaswani et al. 2017, Ho et al. 2020).

    ``emb[:, i] = sin(t * 10000^(-i / (dim/2 - 1)))`` for the first half and ``cos`` for the second,
    as in the seed's notebook; float timesteps (continuous-time processes) work unchanged.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"time embedding dim must be even and >= 4, got {dim}")
        self.dim = dim
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConvNextBlock(nn.Module):
    """ConvNeXt block with time conditioning: ``x -> dwconv(k) (+ emb) -> norm -> conv -> GELU -> norm -> conv``.

    ``inner_kernel=3`` is the seed's variant (3x3 convolutions in the MLP, width ``dim_out * mult``);
    ``inner_kernel=1`` is the paper's pointwise MLP (cheaper: use ``mult=4`` for the paper's ratio).
    A 1x1 convolution maps the residual when ``dim != dim_out``.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        emb_dim: int | None = None,
        mult: int = 2,
        ds_kernel: int = 7,
        inner_kernel: int = 3,
    ):
        super().__init__()
        self.emb_proj = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, dim)) if emb_dim else None
        self.ds_conv = nn.Conv2d(dim, dim, ds_kernel, padding=ds_kernel // 2, groups=dim)
        hidden = dim_out * mult
        self.net = nn.Sequential(
            nn.GroupNorm(1, dim),
            nn.Conv2d(dim, hidden, inner_kernel, padding=inner_kernel // 2),
            nn.GELU(),
            nn.GroupNorm(1, hidden),
            nn.Conv2d(hidden, dim_out, inner_kernel, padding=inner_kernel // 2),
        )
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ds_conv(x)
        if self.emb_proj is not None:
            if emb is None:
                raise ValueError("this ConvNextBlock needs an embedding")
            h = h + rearrange(self.emb_proj(emb), "b c -> b c 1 1")
        return self.net(h) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear attention, cost O(N d^2) in the number of pixels N: softmax over features for q, pixels for k."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = (rearrange(z, "b (h d) x y -> b h d (x y)", h=self.heads) for z in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(rearrange(out, "b h e (x y) -> b (h e) x y", x=h, y=w))


class Attention(nn.Module):
    """Full multi-head softmax self-attention over the pixels (used in the middle block)."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = (rearrange(z, "b (h d) x y -> b h (x y) d", h=self.heads) for z in self.to_qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h (x y) d -> b (h d) x y", x=h, y=w))


class PreNormResidual(nn.Module):
    """``x + fn(GroupNorm(x))``."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(self.norm(x))


class Downsample(nn.Module):
    """Halve H and W: space-to-depth (einops) then a 1x1 convolution back to ``dim`` channels."""

    def __init__(self, dim: int, dim_out: int | None = None):
        super().__init__()
        self.proj = nn.Conv2d(dim * 4, dim_out or dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Downsample needs even H and W, got {tuple(x.shape[-2:])}")
        return self.proj(rearrange(x, "b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2))


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling then a 3x3 convolution."""

    def __init__(self, dim: int, dim_out: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim_out or dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
