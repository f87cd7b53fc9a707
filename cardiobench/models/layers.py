"""Building blocks of the seed's U-Net: time embedding, ConvNeXt blocks, attention, resampling; 2-D or 3-D.

The seed (``seeds/000``, section 4.1) uses the ConvNeXt-style denoiser of the "annotated diffusion"
notebook: a depthwise 7x7 convolution, the time embedding added, then a small convolutional MLP, with
a residual connection (Liu et al., "A ConvNet for the 2020s", CVPR 2022, arXiv 2201.03545); linear
attention in the down/up blocks (Shen et al. 2021, "Efficient attention", arXiv 1812.01243, as in
Katharopoulos et al. 2020) and full softmax attention in the middle block.

Shapes: feature maps are ``(B, C, H, W)`` with ``spatial_dims=2`` (the default; the layers are then exactly the
seed's) or ``(B, C, D, H, W)`` with ``spatial_dims=3``; the embedding ``emb`` is ``(B, E)``.

**3-D volumes are anisotropic**: short-axis cine stacks have ~10 mm between slices (D) and 1.5-3 mm pixels
(H, W). A ``k x k`` in-plane kernel therefore becomes ``(min(k, 3), k, k)`` (``kernel_nd``): three slices are
the neighbours that still see the same structure, a 7-slice kernel would span ~70 mm (most of the ventricle,
and mostly zero padding at D = 8), and on a CPU a 7x7x7 depthwise convolution costs 343 taps per voxel against
147 for 3x7x7. ``Downsample`` / ``Upsample`` halve / double H and W only unless built with ``pool_depth=True``.
``PreNormResidual`` and ``SinusoidalTimeEmbedding`` need no change in 3-D.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

#: einops names of the spatial axes of a feature map, by ``spatial_dims``
AXES = {2: "x y", 3: "z x y"}


def check_spatial_dims(spatial_dims: int) -> int:
    """``spatial_dims`` as an int, 2 or 3 (``ValueError`` otherwise)."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def conv_nd(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` for 2-D feature maps, ``nn.Conv3d`` for 3-D ones."""
    return nn.Conv2d if check_spatial_dims(spatial_dims) == 2 else nn.Conv3d


def kernel_nd(k: int, spatial_dims: int) -> tuple[int | tuple[int, ...], int | tuple[int, ...]]:
    """``(kernel_size, padding)`` of an in-plane ``k x k`` kernel: ``k`` in 2-D, ``(min(k, 3), k, k)`` in 3-D
    (at most 3 along the coarse slice axis D; see the module docstring). Padding keeps the size (odd ``k``)."""
    if spatial_dims == 2:
        return k, k // 2
    size = (min(k, 3), k, k)
    return size, tuple(s // 2 for s in size)


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself, except a 5-D CPU tensor: made channels-last (NDHWC). PyTorch's CPU backward of a depthwise
    3-D convolution takes a slow generic path on NCDHW tensors; on NDHWC ones it goes through oneDNN (~3x
    faster measured at (2, 32, 8, 32, 32), kernel 3x7x7, one thread). Values are unchanged; 2-D is untouched."""
    if x.ndim == 5 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


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
    A 1x1 convolution maps the residual when ``dim != dim_out``. In 3-D every ``k x k`` kernel is
    ``(min(k, 3), k, k)``. Shapes: ``(B, dim, *spatial)`` and emb ``(B, emb_dim)`` -> ``(B, dim_out, *spatial)``.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        emb_dim: int | None = None,
        mult: int = 2,
        ds_kernel: int = 7,
        inner_kernel: int = 3,
        spatial_dims: int = 2,
    ):
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.emb_pattern = "b c -> b c" + " 1" * spatial_dims
        self.emb_proj = nn.Sequential(nn.GELU(), nn.Linear(emb_dim, dim)) if emb_dim else None
        ds_size, ds_pad = kernel_nd(ds_kernel, spatial_dims)
        self.ds_conv = conv(dim, dim, ds_size, padding=ds_pad, groups=dim)
        hidden = dim_out * mult
        in_size, in_pad = kernel_nd(inner_kernel, spatial_dims)
        self.net = nn.Sequential(
            nn.GroupNorm(1, dim),
            conv(dim, hidden, in_size, padding=in_pad),
            nn.GELU(),
            nn.GroupNorm(1, hidden),
            conv(hidden, dim_out, in_size, padding=in_pad),
        )
        self.res_conv = conv(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ds_conv(channels_last_on_cpu(x))
        if self.emb_proj is not None:
            if emb is None:
                raise ValueError("this ConvNextBlock needs an embedding")
            h = h + rearrange(self.emb_proj(emb), self.emb_pattern)
        return self.net(h) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear attention, cost O(N d^2) in the number of pixels (voxels in 3-D) N: softmax over features for q,
    positions for k. Shapes: ``(B, dim, *spatial) -> (B, dim, *spatial)``."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, spatial_dims: int = 2):
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.heads = heads
        self.scale = dim_head**-0.5
        self.axes = AXES[spatial_dims]
        hidden = heads * dim_head
        self.to_qkv = conv(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(conv(hidden, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = dict(zip(self.axes.split(), x.shape[2:], strict=True))
        q, k, v = (rearrange(z, f"b (h d) {self.axes} -> b h d ({self.axes})", h=self.heads)
                   for z in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(rearrange(out, f"b h e ({self.axes}) -> b (h e) {self.axes}", **sizes))


class Attention(nn.Module):
    """Full multi-head softmax self-attention over all pixels (voxels in 3-D) (used in the middle block).
    Shapes: ``(B, dim, *spatial) -> (B, dim, *spatial)``."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, spatial_dims: int = 2):
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.heads = heads
        self.axes = AXES[spatial_dims]
        hidden = heads * dim_head
        self.to_qkv = conv(dim, hidden * 3, 1, bias=False)
        self.to_out = conv(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = dict(zip(self.axes.split(), x.shape[2:], strict=True))
        q, k, v = (rearrange(z, f"b (h d) {self.axes} -> b h ({self.axes}) d", h=self.heads)
                   for z in self.to_qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, f"b h ({self.axes}) d -> b (h d) {self.axes}", **sizes))


class PreNormResidual(nn.Module):
    """``x + fn(GroupNorm(x))``; any number of spatial axes (GroupNorm does not care)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(self.norm(x))


class Downsample(nn.Module):
    """Halve H and W (and D too if ``pool_depth``): space-to-depth (einops) then a 1x1 convolution to ``dim_out``.

    Shapes: ``(B, dim, H, W) -> (B, dim_out, H/2, W/2)``; in 3-D ``(B, dim, D, H, W) -> (B, dim_out, D', H/2, W/2)``
    with ``D' = D/2`` if ``pool_depth`` else ``D``.
    """

    def __init__(self, dim: int, dim_out: int | None = None, spatial_dims: int = 2, pool_depth: bool = False):
        super().__init__()
        if pool_depth and spatial_dims != 3:
            raise ValueError("pool_depth needs spatial_dims=3")
        self.spatial_dims = spatial_dims
        self.p0 = 2 if pool_depth else 1
        self.proj = conv_nd(spatial_dims)(dim * 4 * self.p0, dim_out or dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Downsample needs even H and W, got {tuple(x.shape[-2:])}")
        if self.spatial_dims == 2:
            return self.proj(rearrange(x, "b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2))
        if x.shape[2] % self.p0:
            raise ValueError(f"Downsample needs an even D, got {x.shape[2]}")
        return self.proj(rearrange(x, "b c (d p0) (h p1) (w p2) -> b (c p0 p1 p2) d h w", p0=self.p0, p1=2, p2=2))


class Upsample(nn.Module):
    """Double H and W (and D too if ``pool_depth``): nearest-neighbour upsampling then a 3x3 (3x3x3) convolution.

    Shapes: the inverse of ``Downsample``'s: ``(B, dim, *spatial) -> (B, dim_out, *2 spatial)``.
    """

    def __init__(self, dim: int, dim_out: int | None = None, spatial_dims: int = 2, pool_depth: bool = False):
        super().__init__()
        if pool_depth and spatial_dims != 3:
            raise ValueError("pool_depth needs spatial_dims=3")
        size, pad = kernel_nd(3, spatial_dims)
        self.scale: float | tuple[float, ...] = 2.0 if spatial_dims == 2 else (2.0 if pool_depth else 1.0, 2.0, 2.0)
        self.conv = conv_nd(spatial_dims)(dim, dim_out or dim, size, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


def check_input_shape(x: torch.Tensor, *, name: str, spatial_dims: int, factor: int, depth_factor: int = 1,
                      depth_downsample: int = 0, levels: str = "") -> None:
    """A one-line ``ValueError`` unless ``x`` is ``(B, C, H, W)`` (``(B, C, D, H, W)`` for ``spatial_dims=3``) with
    H, W multiples of ``factor`` and D of ``depth_factor``; ``levels`` says why (e.g. "for 3 levels")."""
    if x.ndim != 2 + spatial_dims:
        layout = "(B, C, H, W)" if spatial_dims == 2 else "(B, C, D, H, W)"
        raise ValueError(f"a {name} with spatial_dims={spatial_dims} takes {layout} input, got shape {tuple(x.shape)}")
    in_plane = x.shape[-1] % factor or x.shape[-2] % factor
    if spatial_dims == 3 and (x.shape[2] % depth_factor or in_plane):
        raise ValueError(f"D must be a multiple of {depth_factor} (depth_downsample={depth_downsample}) and H, W "
                         f"multiples of {factor} {levels}, got {tuple(x.shape[2:])}")
    if in_plane:
        raise ValueError(f"need H and W multiples of {factor} {levels}, got {tuple(x.shape[-2:])}")
