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
    def __init__(self, dim_in: int, dim: int, emb_dim: int, block: dict, attn: dict | None, downsample: bool):
        super().__init__()
        self.block1 = ConvNextBlock(dim_in, dim, emb_dim, **block)
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block)
        self.attn = PreNormResidual(dim, LinearAttention(dim, **attn)) if attn else nn.Identity()
        self.down = Downsample(dim) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.attn(self.block2(self.block1(x, emb), emb))
        return skip, self.down(skip)


class MiddleBlock(nn.Module):
    def __init__(self, dim: int, emb_dim: int, block: dict, attn: dict):
        super().__init__()
        self.block1 = ConvNextBlock(dim, dim, emb_dim, **block)
        self.attn = PreNormResidual(dim, Attention(dim, **attn))
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.block2(self.attn(self.block1(x, emb)), emb)


class UpLevel(nn.Module):
    def __init__(self, dim: int, dim_next: int | None, emb_dim: int, block: dict, attn: dict | None):
        super().__init__()
        self.block1 = ConvNextBlock(dim * 2, dim, emb_dim, **block)
        self.block2 = ConvNextBlock(dim, dim, emb_dim, **block)
        self.attn = PreNormResidual(dim, LinearAttention(dim, **attn)) if attn else nn.Identity()
        self.up = Upsample(dim, dim_next) if dim_next else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(torch.cat([x, skip], dim=1), emb)
        return self.up(self.attn(self.block2(h, emb)))


class UNet(nn.Module):
    """The seed's ConvNeXt U-Net: ``model(x, t, class_labels=None, residuals=None) -> (B, out_channels, H, W)``.

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
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        mults = tuple(int(m) for m in channel_mults)
        if not mults or any(m < 1 for m in mults):
            raise ValueError(f"channel_mults must be positive integers, got {channel_mults}")
        if base_channels < 4 or base_channels % 2:
            raise ValueError(f"base_channels must be even and >= 4, got {base_channels}")
        levels = len(mults)
        attn_levels = tuple(range(levels)) if attn_levels is None else tuple(int(i) for i in attn_levels)
        time_dim = time_dim or 4 * base_channels
        self._config = dict(
            in_channels=in_channels, out_channels=out_channels, base_channels=base_channels,
            channel_mults=list(mults), num_classes=num_classes, init_kernel=init_kernel, ds_kernel=ds_kernel,
            inner_kernel=inner_kernel, convnext_mult=convnext_mult, attn_heads=attn_heads,
            attn_dim_head=attn_dim_head, attn_levels=list(attn_levels), time_dim=time_dim,
        )
        self.num_classes = num_classes
        self.dims = [base_channels * m for m in mults]
        block = dict(mult=convnext_mult, ds_kernel=ds_kernel, inner_kernel=inner_kernel)
        attn = dict(heads=attn_heads, dim_head=attn_dim_head)

        self.init_conv = nn.Conv2d(in_channels, self.dims[0], init_kernel, padding=init_kernel // 2)
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
            )
            for i in range(levels)
        )
        self.mid = MiddleBlock(self.dims[-1], time_dim, block, attn)
        self.ups = nn.ModuleList(
            UpLevel(self.dims[i], self.dims[i - 1] if i > 0 else None, time_dim, block,
                    attn if i in attn_levels else None)
            for i in reversed(range(levels))
        )
        self.final_block = ConvNextBlock(self.dims[0], self.dims[0], time_dim, **block)
        self.final_conv = nn.Conv2d(self.dims[0], out_channels, 1)

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

    def skip_channels(self) -> list[int]:
        """Channels of each skip returned by ``encode`` (its spatial size halves per level from H, W)."""
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
        """The encoder and middle block: ``(skips, mid)``. ``hint`` is added after the first convolution."""
        f = self.downsample_factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"H and W must be multiples of {f} for channel_mults of length {len(self.dims)}, "
                             f"got {tuple(x.shape[-2:])}")
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
    """A ``UNet`` of a named size (``tiny``, ``small``, ``base``); keyword ``overrides`` replace its settings."""
    if size not in SIZES:
        raise CardiobenchError(f"unknown unet size {size!r}", f"use one of: {', '.join(SIZES)}")
    kwargs = {**SIZES[size], **overrides}
    try:
        return UNet(in_channels, out_channels, **kwargs)
    except (TypeError, ValueError) as exc:
        raise CardiobenchError(f"bad unet option: {exc}", "see `UNet` in cardiobench/models/unet.py") from None
