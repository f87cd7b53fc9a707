"""The seed's U-Net denoiser (``seeds/000``, section 4.1), with hooks for conditioning.

Layout for ``channel_mults=(m_0, ..., m_{L-1})`` and ``dims[i] = base_channels * m_i``::

    init conv (in_channels -> dims[0])
    down level i:  ConvNeXt(dims[i-1] -> dims[i]), ConvNeXt, linear attention  -> skip_i, then downsample (i < L-1)
    middle:        ConvNeXt, full self-attention, ConvNeXt                      -> mid
    up level i:    concat(x, skip_i + r_i), ConvNeXt(2 dims[i] -> dims[i]), ConvNeXt, linear attention,
                   then upsample to dims[i-1] (i > 0)
    final:         ConvNeXt, 1x1 conv (dims[0] -> out_channels)

so ``(1, 2, 4)`` gives the seed's 3 down blocks, middle block and 3 up blocks with two resolution
changes. The time ``t`` (``(B,)`` long or float) goes through a sinusoidal embedding and a 2-layer MLP;
with ``num_classes=K`` a learned class embedding is added to it. **The embedding table always has
``K + 1`` rows: row ``K`` (``model.null_class``) is the "no label" token**, used when ``class_labels`` is
``None`` and by classifier-free guidance to drop the label (Ho & Salimans 2022).

Conditioning hooks (ControlNet, Zhang et al. 2023, without rewriting this class):

- ``embed(t, class_labels)`` -> the embedding ``emb``;
- ``encode(x, emb, hint=None)`` -> ``(skips, mid)``: init conv (+ ``hint``, a ``(B, dims[0], H, W)``
  feature added after it), every down level and the middle block. A ControlNet deep-copies the model
  and runs the copy's ``encode``; ``skip_channels()`` gives the channels of each skip;
- ``decode(mid, skips, emb)`` -> the output;
- ``forward(x, t, class_labels=None, residuals=None)`` with ``residuals = (skip_residuals, mid_residual)``:
  ``skip_residuals[i]`` (shaped like ``skips[i]``) is added to skip ``i`` and ``mid_residual`` (shaped like
  ``mid``, may be ``None``) to the middle block's output before decoding.

Extra input channels (e.g. the MRI image concatenated to ``x_t`` for segmentation) only need a larger
``in_channels``.

**3-D volumes** (``spatial_dims=3``): ``x`` is ``(B, C, D, H, W)`` (a short-axis stack: D slices ~10 mm apart,
1.5-3 mm pixels); every layer becomes its 3-D counterpart (``cardiobench.models.layers``), with ``k x k``
in-plane kernels made ``(min(k, 3), k, k)``, and both attentions run over all voxels. The slice axis is
coarse and short, so by default it is **never pooled**: every down level halves H and W only (space-to-depth
with ``p = (1, 2, 2)``; upsampling by ``(1, 2, 2)``). ``depth_downsample = n`` makes the ``n`` deepest down
levels halve D as well (nnU-Net's rule: pool an axis once the others have become about as coarse: 1.5 mm
pixels pooled twice are 6 mm, near the 10 mm slice spacing), so D must be a multiple of ``2**n`` (H, W of
``2**(L-1)``). The named sizes apply unchanged. Measured on one CPU thread (``torch.set_num_threads(1)``),
size ``small``, input ``(2, 4, 8, 32, 32)``, forward + backward: see ``docs/plugins.md`` ("3-D backbones").

In 2-D nothing changes: the same modules, parameter names, shapes and initialisation for a seed, and
``config()`` holds no ``spatial_dims`` (it feeds the spec hashes of cached and shipped checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cardiobench.errors import CardiobenchError
from cardiobench.models.layers import (
    Attention,
    ConvNextBlock,
    Downsample,
    LinearAttention,
    PreNormResidual,
    SinusoidalTimeEmbedding,
    Upsample,
    check_input_shape,
    check_spatial_dims,
    conv_nd,
    kernel_nd,
)

#: named sizes: keyword arguments of ``UNet`` (measured figures in ``docs/training.md``)
SIZES: dict[str, dict[str, Any]] = {
    # CPU tests: a few thousand parameters, milliseconds per call
    "tiny": dict(
        base_channels=8, channel_mults=(1, 2, 4), init_kernel=3, ds_kernel=3, inner_kernel=1,
        convnext_mult=2, attn_heads=1, attn_dim_head=8,
    ),
    # the quick CPU preset at 32x32 (~1 M parameters): pointwise ConvNeXt MLPs, attention below 32x32
    "small": dict(
        base_channels=32, channel_mults=(1, 2, 4), init_kernel=3, ds_kernel=7, inner_kernel=1,
        convnext_mult=2, attn_heads=2, attn_dim_head=16, attn_levels=(1, 2),
    ),
    # the seed's network: width 64 at 64x64, multipliers (1, 2, 4), 7x7 depthwise, 3x3 MLP convs
    "base": dict(
        base_channels=64, channel_mults=(1, 2, 4), init_kernel=7, ds_kernel=7, inner_kernel=3,
        convnext_mult=2, attn_heads=4, attn_dim_head=32,
    ),
}


class DownLevel(nn.Module):
    def __init__(self, dim_in: int, dim: int, emb_dim: int, block: dict, attn: dict | None, downsample: bool,
                 spatial_dims: int = 2, pool_depth: bool = False):
        super().__init__()
        self.block1 = ConvNextBlock(dim_in, dim, emb_dim, **block, spatial_dims=spatial_dims)
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block, spatial_dims=spatial_dims)
        self.attn = (PreNormResidual(dim, LinearAttention(dim, **attn, spatial_dims=spatial_dims))
                     if attn else nn.Identity())
        self.down = (Downsample(dim, spatial_dims=spatial_dims, pool_depth=pool_depth)
                     if downsample else nn.Identity())

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.attn(self.block2(self.block1(x, emb), emb))
        return skip, self.down(skip)


class MiddleBlock(nn.Module):
    def __init__(self, dim: int, emb_dim: int, block: dict, attn: dict, spatial_dims: int = 2):
        super().__init__()
        self.block1 = ConvNextBlock(dim, dim, emb_dim, **block, spatial_dims=spatial_dims)
        self.attn = PreNormResidual(dim, Attention(dim, **attn, spatial_dims=spatial_dims))
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block, spatial_dims=spatial_dims)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.block2(self.attn(self.block1(x, emb)), emb)


class UpLevel(nn.Module):
    def __init__(self, dim: int, dim_next: int | None, emb_dim: int, block: dict, attn: dict | None,
                 spatial_dims: int = 2, pool_depth: bool = False):
        super().__init__()
        self.block1 = ConvNextBlock(dim * 2, dim, emb_dim, **block, spatial_dims=spatial_dims)
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block, spatial_dims=spatial_dims)
        self.attn = (PreNormResidual(dim, LinearAttention(dim, **attn, spatial_dims=spatial_dims))
                     if attn else nn.Identity())
        self.up = (Upsample(dim, dim_next, spatial_dims=spatial_dims, pool_depth=pool_depth)
                   if dim_next else nn.Identity())

    def forward(self, x: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(torch.cat([x, skip], dim=1), emb)
        return self.up(self.attn(self.block2(h, emb)))


class UNet(nn.Module):
    """The seed's ConvNeXt U-Net: ``model(x, t, class_labels=None, residuals=None) -> (B, out_channels, *spatial)``
    for ``x`` of shape ``(B, in_channels, H, W)``, or ``(B, in_channels, D, H, W)`` with ``spatial_dims=3``.

    Arguments:
        in_channels, out_channels: input/output channels (``out_channels`` defaults to ``in_channels``).
        base_channels: width of the first level; level ``i`` has ``base_channels * channel_mults[i]``.
        channel_mults: one multiplier per resolution level (H and W must be divisible by ``2**(L-1)``).
        num_classes: number of class labels (e.g. 5 pathology groups); ``None`` = unconditional.
            The table has ``num_classes + 1`` rows, the last being the null label (``null_class``).
        init_kernel: kernel of the first convolution. ds_kernel: depthwise kernel of the ConvNeXt blocks.
        inner_kernel: kernel of the ConvNeXt MLP convolutions (3 = the seed's, 1 = the paper's pointwise).
        convnext_mult: width multiplier of the ConvNeXt MLP.
        attn_heads, attn_dim_head: heads and per-head width of every attention layer.
        attn_levels: levels with linear attention (``None`` = all, the seed's); the middle block always
            has full self-attention.
        time_dim: width of the time/class embedding (default ``4 * base_channels``).
        spatial_dims: 2 (slices) or 3 (volumes; layers as in the module docstring).
        depth_downsample: 3-D only: how many of the deepest down levels also halve D (0, the default, to
            ``len(channel_mults) - 1``); D must then be a multiple of ``2**depth_downsample``.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        num_classes: int | None = None,
        init_kernel: int = 7,
        ds_kernel: int = 7,
        inner_kernel: int = 3,
        convnext_mult: int = 2,
        attn_heads: int = 4,
        attn_dim_head: int = 32,
        attn_levels: Sequence[int] | None = None,
        time_dim: int | None = None,
        spatial_dims: int = 2,
        depth_downsample: int = 0,
    ):
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        out_channels = out_channels or in_channels
        mults = tuple(int(m) for m in channel_mults)
        if not mults or any(m < 1 for m in mults):
            raise ValueError(f"channel_mults must be positive integers, got {channel_mults}")
        if base_channels < 4 or base_channels % 2:
            raise ValueError(f"base_channels must be even and >= 4, got {base_channels}")
        levels = len(mults)
        attn_levels = tuple(range(levels)) if attn_levels is None else tuple(int(i) for i in attn_levels)
        time_dim = time_dim or 4 * base_channels
        if not 0 <= depth_downsample <= levels - 1:
            raise ValueError(f"depth_downsample must be in 0..{levels - 1} for {levels} levels, got {depth_downsample}")
        if depth_downsample and spatial_dims != 3:
            raise ValueError("depth_downsample needs spatial_dims=3")
        self._config = dict(
            in_channels=in_channels, out_channels=out_channels, base_channels=base_channels,
            channel_mults=list(mults), num_classes=num_classes, init_kernel=init_kernel, ds_kernel=ds_kernel,
            inner_kernel=inner_kernel, convnext_mult=convnext_mult, attn_heads=attn_heads,
            attn_dim_head=attn_dim_head, attn_levels=list(attn_levels), time_dim=time_dim,
        )
        if spatial_dims == 3:  # absent in 2-D: the 2-D config (and the hashes it feeds) stays as it was
            self._config["spatial_dims"] = 3
            if depth_downsample:
                self._config["depth_downsample"] = depth_downsample
        self.spatial_dims = spatial_dims
        self.depth_downsample = depth_downsample
        #: down level i (i < L-1) halves D as well: the ``depth_downsample`` deepest ones
        pool_depth = [i >= levels - 1 - depth_downsample for i in range(levels - 1)]
        self.num_classes = num_classes
        self.dims = [base_channels * m for m in mults]
        block = dict(mult=convnext_mult, ds_kernel=ds_kernel, inner_kernel=inner_kernel)
        attn = dict(heads=attn_heads, dim_head=attn_dim_head)
        conv = conv_nd(spatial_dims)

        init_size, init_pad = kernel_nd(init_kernel, spatial_dims)
        self.init_conv = conv(in_channels, self.dims[0], init_size, padding=init_pad)
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(base_channels),
            nn.Linear(base_channels, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )
        self.class_emb = nn.Embedding(num_classes + 1, time_dim) if num_classes else None
        self.downs = nn.ModuleList(
            DownLevel(
                self.dims[max(i - 1, 0)], self.dims[i], time_dim, block,
                attn if i in attn_levels else None, downsample=i < levels - 1,
                spatial_dims=spatial_dims, pool_depth=i < levels - 1 and pool_depth[i],
            )
            for i in range(levels)
        )
        self.mid = MiddleBlock(self.dims[-1], time_dim, block, attn, spatial_dims=spatial_dims)
        self.ups = nn.ModuleList(  # up level i > 0 undoes down level i - 1's resampling
            UpLevel(self.dims[i], self.dims[i - 1] if i > 0 else None, time_dim, block,
                    attn if i in attn_levels else None,
                    spatial_dims=spatial_dims, pool_depth=i > 0 and pool_depth[i - 1])
            for i in reversed(range(levels))
        )
        self.final_block = ConvNextBlock(self.dims[0], self.dims[0], time_dim, **block, spatial_dims=spatial_dims)
        self.final_conv = conv(self.dims[0], out_channels, 1)

    # -- introspection -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable): ``UNet(**model.config())`` rebuilds it."""
        return dict(self._config)

    @property
    def null_class(self) -> int | None:
        """The class id meaning "no label" (``num_classes``), or ``None`` for an unconditional model."""
        return self.num_classes

    @property
    def downsample_factor(self) -> int:
        """H and W must be multiples of this."""
        return 2 ** (len(self.dims) - 1)

    @property
    def depth_factor(self) -> int:
        """3-D: D must be a multiple of this (``2**depth_downsample``; 1 by default: D is never pooled)."""
        return 2**self.depth_downsample

    def skip_channels(self) -> list[int]:
        """Channels of each skip returned by ``encode`` (H, W halve per level; D only at the pooled levels)."""
        return list(self.dims)

    # -- the three stages ----------------------------------------------------------------------
    def embed(self, t: torch.Tensor | int | float, class_labels: torch.Tensor | None = None,
              batch: int | None = None) -> torch.Tensor:
        """(B, time_dim): time embedding plus, for a class-conditional model, the class embedding."""
        t = torch.as_tensor(t, device=self.init_conv.weight.device)
        if t.ndim == 0:
            t = t.expand(batch or 1)
        emb = self.time_mlp(t)
        if self.class_emb is not None:
            if class_labels is None:
                class_labels = torch.full((emb.shape[0],), self.num_classes, dtype=torch.long, device=emb.device)
            emb = emb + self.class_emb(class_labels.long())
        elif class_labels is not None:
            raise ValueError("class_labels given to a UNet built without num_classes")
        return emb

    def encode(self, x: torch.Tensor, emb: torch.Tensor,
               hint: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The encoder and middle block: ``(skips, mid)``. ``hint`` is added after the first convolution.

        Shapes: x ``(B, C, *spatial)``, hint ``(B, dims[0], *spatial)``; ``skips[i]`` ``(B, dims[i], ...)`` at level
        ``i``'s resolution, ``mid`` ``(B, dims[-1], ...)`` at the deepest one.
        """
        check_input_shape(x, name="UNet", spatial_dims=self.spatial_dims, factor=self.downsample_factor,
                          depth_factor=self.depth_factor, depth_downsample=self.depth_downsample,
                          levels=f"for channel_mults of length {len(self.dims)}")
        h = self.init_conv(x)
        if hint is not None:
            h = h + hint
        skips = []
        for level in self.downs:
            skip, h = level(h, emb)
            skips.append(skip)
        return skips, self.mid(h, emb)

    def decode(self, mid: torch.Tensor, skips: Sequence[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        """The decoder: up levels (deepest first, each taking its skip) and the output layers."""
        h = mid
        for level, skip in zip(self.ups, reversed(skips), strict=True):
            h = level(h, skip, emb)
        return self.final_conv(self.final_block(h, emb))

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int | float,
        class_labels: torch.Tensor | None = None,
        residuals: tuple[Sequence[torch.Tensor], torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        emb = self.embed(t, class_labels, batch=x.shape[0])
        skips, mid = self.encode(x, emb)
        if residuals is not None:
            skip_res, mid_res = residuals
            if len(skip_res) != len(skips):
                raise ValueError(f"residuals has {len(skip_res)} skip tensors, the U-Net has {len(skips)} skips")
            skips = [s + r for s, r in zip(skips, skip_res, strict=True)]
            if mid_res is not None:
                mid = mid + mid_res
        return self.decode(mid, skips, emb)


def build_unet(in_channels: int, out_channels: int | None = None, size: str = "small", **overrides: Any) -> UNet:
    """A ``UNet`` of a named size (``tiny``, ``small``, ``base``); keyword ``overrides`` replace its settings
    (``spatial_dims=3`` builds the same size for volumes)."""
    if size not in SIZES:
        raise CardiobenchError(f"unknown unet size {size!r}", f"use one of: {', '.join(SIZES)}")
    kwargs = {**SIZES[size], **overrides}
    try:
        return UNet(in_channels, out_channels, **kwargs)
    except (TypeError, ValueError) as exc:
        raise CardiobenchError(f"bad unet option: {exc}", "see `UNet` in cardiobench/models/unet.py") from None
