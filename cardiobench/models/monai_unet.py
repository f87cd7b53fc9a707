"""MONAI's ``DiffusionModelUNet`` as a cardiobench backbone (``monai-unet``), 2-D or 3-D.

Why offer it: a well-kept library implementation (MONAI Generative, Pinaya et al. 2022, arXiv 2209.07162: the
latent-diffusion / ADM U-Net with residual blocks, GroupNorm, SiLU and self-attention) that a user can compare
the seed's ConvNeXt U-Net (``unet``) against on the same benchmark, in slices or volumes.

Adapted to cardiobench's backbone call ``model(x, t, class_labels=None) -> same shape as x``:

- ``x`` is ``(B, C, H, W)`` (``spatial_dims=2``, the default) or ``(B, C, D, H, W)`` (``spatial_dims=3``);
  ``t`` is ``(B,)`` long or float timesteps, or a scalar (broadcast).
- ``num_classes=K`` makes it class-conditional with MONAI's class embedding of ``K + 1`` rows
  (``num_class_embeds=K+1``): row ``K`` (``null_class``) is the "no label" id, used when ``class_labels`` is
  ``None`` and by classifier-free guidance.
- **No ControlNet**: cardiobench's ControlNet needs the ``embed`` / ``encode`` / ``decode`` split of
  ``cardiobench.models.unet.UNet``, which this wrapper does not have; it is registered with ``residuals=False``
  and ``ControlNetModel`` refuses it (one-line ``IncompatibleError``).
- Every other keyword option goes to ``DiffusionModelUNet`` as it is (``norm_eps``, ``resblock_updown``,
  ``transformer_num_layers``, ``include_fc``, ``use_flash_attention``, ...); cross-attention conditioning
  (``with_conditioning``, ``cross_attention_dim``) is refused: cardiobench passes no context.
- Initialisation is MONAI's: the last convolution of every residual block and the output convolution are
  zero, so a fresh model outputs exactly 0 whatever ``x``, ``t`` and the label (training moves it at once).

**Anisotropic volumes.** MONAI's U-Net halves every spatial axis at each of its ``L - 1`` down levels (a
stride-2 3x3x3 convolution, or 2x2x2 average pooling with ``resblock_updown``), which would need D to be a
multiple of ``2**(L-1)`` and would pool the coarse slice axis (~10 mm) as much as the 1.5-3 mm pixels. MONAI
has no option for per-axis strides, so after building it this wrapper sets the stride / pooling window / scale
factor of the resampling layers to ``(1, 2, 2)``: by default D is never pooled (any D works). As in ``unet``,
``depth_downsample = n`` keeps the ``n`` deepest levels isotropic (D must then be a multiple of ``2**n``).
Parameters are unchanged (a stride is not a parameter), so MONAI checkpoints still load into ``model.net``.
Its kernels stay 3x3x3.

Measured on one CPU thread, size ``small``, input ``(2, 4, 8, 32, 32)``, forward + backward: see
``docs/plugins.md`` ("3-D backbones").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from cardiobench.errors import CardiobenchError
from cardiobench.models.layers import check_input_shape, check_spatial_dims

#: named sizes: keyword arguments of ``MonaiUNet`` (2-D parameters: tiny 71 k, small 1.2 M, base 16 M)
SIZES: dict[str, dict[str, Any]] = {
    # CPU tests: milliseconds per call
    "tiny": dict(channels=(8, 16, 16), attention_levels=(False, False, True), num_res_blocks=1,
                 norm_num_groups=8, num_head_channels=8),
    # CPU runs at 32x32: about the parameters of unet "small", attention below full resolution
    "small": dict(channels=(32, 64, 64), attention_levels=(False, True, True), num_res_blocks=1,
                  norm_num_groups=16, num_head_channels=32),
    # GPU: the layout of MONAI's 2-D DDPM tutorials, two residual blocks per level
    "base": dict(channels=(64, 128, 256), attention_levels=(False, True, True), num_res_blocks=2,
                 norm_num_groups=32, num_head_channels=32),
}

#: DiffusionModelUNet arguments this wrapper sets itself (or cardiobench cannot feed)
_OWN = ("spatial_dims", "in_channels", "out_channels", "num_class_embeds", "with_conditioning", "cross_attention_dim")


def _jsonable(value: int | Sequence[int] | Sequence[bool]) -> int | list:
    return int(value) if isinstance(value, int) else list(value)


class MonaiUNet(nn.Module):
    """MONAI's ``DiffusionModelUNet`` (``self.net``) behind cardiobench's backbone call.

    ``model(x, t, class_labels=None) -> (B, out_channels, *spatial)`` for ``x`` ``(B, in_channels, *spatial)``.

    Arguments:
        in_channels, out_channels: input/output channels (``out_channels`` defaults to ``in_channels``).
        channels, attention_levels, num_res_blocks, norm_num_groups, num_head_channels: MONAI's, one entry per
            level (H and W must be multiples of ``2**(len(channels) - 1)``).
        num_classes: class count ``K`` (``None`` = unconditional); the embedding has ``K + 1`` rows.
        spatial_dims: 2 or 3. depth_downsample: 3-D only, how many of the deepest down levels also halve D
            (0 = D is never pooled).
        monai_options: further ``DiffusionModelUNet`` keyword arguments, passed as they are.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, True, True),
        num_res_blocks: int | Sequence[int] = 1,
        norm_num_groups: int = 16,
        num_head_channels: int | Sequence[int] = 32,
        num_classes: int | None = None,
        spatial_dims: int = 2,
        depth_downsample: int = 0,
        **monai_options: Any,
    ):
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        refused = sorted(set(monai_options) & set(_OWN))
        if refused:
            raise ValueError(f"{', '.join(refused)} cannot be set on monai-unet (use num_classes for class labels; "
                             "cross-attention context is not supported)")
        out_channels = out_channels or in_channels
        levels = len(channels)
        if not 0 <= depth_downsample <= levels - 1:
            raise ValueError(f"depth_downsample must be in 0..{levels - 1} for {levels} levels, got {depth_downsample}")
        if depth_downsample and spatial_dims != 3:
            raise ValueError("depth_downsample needs spatial_dims=3")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        self._config: dict[str, Any] = dict(
            in_channels=in_channels, out_channels=out_channels, channels=_jsonable(channels),
            attention_levels=[bool(a) for a in attention_levels], num_res_blocks=_jsonable(num_res_blocks),
            norm_num_groups=norm_num_groups, num_head_channels=_jsonable(num_head_channels),
            num_classes=num_classes, **monai_options,
        )
        if spatial_dims == 3:  # as in unet: absent in 2-D, and the 3-D option only when not the default
            self._config["spatial_dims"] = 3
            if depth_downsample:
                self._config["depth_downsample"] = depth_downsample
        self.spatial_dims = spatial_dims
        self.depth_downsample = depth_downsample
        self.num_classes = num_classes
        self.levels = levels
        self.net = DiffusionModelUNet(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
            channels=tuple(channels), attention_levels=tuple(bool(a) for a in attention_levels),
            num_res_blocks=num_res_blocks if isinstance(num_res_blocks, int) else tuple(num_res_blocks),
            norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels if isinstance(num_head_channels, int) else tuple(num_head_channels),
            num_class_embeds=num_classes + 1 if num_classes else None, **monai_options,
        )
        if spatial_dims == 3:
            pooled = [i >= levels - 1 - depth_downsample for i in range(levels - 1)]  # down level i halves D
            for i, block in enumerate(self.net.down_blocks[: levels - 1]):
                if not pooled[i]:
                    _resample_in_plane(block.downsampler)
            for j, block in enumerate(self.net.up_blocks[: levels - 1]):  # up block j undoes down level L-2-j
                if not pooled[levels - 2 - j]:
                    _resample_in_plane(block.upsampler)

    # -- introspection -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable): ``MonaiUNet(**model.config())`` rebuilds it."""
        return dict(self._config)

    @property
    def null_class(self) -> int | None:
        """The class id meaning "no label" (``num_classes``), or ``None`` for an unconditional model."""
        return self.num_classes

    @property
    def downsample_factor(self) -> int:
        """H and W must be multiples of this."""
        return 2 ** (self.levels - 1)

    @property
    def depth_factor(self) -> int:
        """3-D: D must be a multiple of this (``2**depth_downsample``)."""
        return 2**self.depth_downsample

    # -- the call ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor | int | float, class_labels: torch.Tensor | None = None,
                residuals: None = None) -> torch.Tensor:
        """x (B, C, *spatial), t (B,) or a scalar, class_labels (B,) or None -> (B, out_channels, *spatial)."""
        if residuals is not None:
            raise ValueError("monai-unet takes no ControlNet residuals (it has no encode/decode split)")
        self._check_shape(x)
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if self.num_classes:
            if class_labels is None:
                class_labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
            class_labels = class_labels.long()
        elif class_labels is not None:
            raise ValueError("class_labels given to a monai-unet built without num_classes")
        return self.net(x, t, class_labels=class_labels)

    def _check_shape(self, x: torch.Tensor) -> None:
        check_input_shape(x, name="monai-unet", spatial_dims=self.spatial_dims, factor=self.downsample_factor,
                          depth_factor=self.depth_factor, depth_downsample=self.depth_downsample,
                          levels=f"for {self.levels} levels")


def _resample_in_plane(module: nn.Module) -> None:
    """Make the 3-D resampling layers inside ``module`` act on H and W only: strides and pooling windows
    ``(1, 2, 2)``, upsampling scale ``(1, 2, 2)``. Fails loudly if MONAI's layout no longer matches."""
    changed = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv3d) and layer.stride == (2, 2, 2):
            layer.stride = (1, 2, 2)
            changed += 1
        elif isinstance(layer, nn.AvgPool3d):
            layer.kernel_size, layer.stride = (1, 2, 2), (1, 2, 2)
            changed += 1
        elif isinstance(layer, nn.Upsample):
            layer.scale_factor = (1.0, 2.0, 2.0)
            changed += 1
    if changed != 1:
        raise RuntimeError(f"monai-unet: expected one resampling layer in {type(module).__name__}, found {changed} "
                           "(has MONAI's DiffusionModelUNet changed?)")


def build_monai_unet(in_channels: int, out_channels: int | None = None, size: str = "small",
                     **overrides: Any) -> MonaiUNet:
    """A ``MonaiUNet`` of a named size (``tiny``, ``small``, ``base``); keyword ``overrides`` replace its settings
    (``spatial_dims=3`` builds the same size for volumes)."""
    if size not in SIZES:
        raise CardiobenchError(f"unknown monai-unet size {size!r}", f"use one of: {', '.join(SIZES)}")
    kwargs = {**SIZES[size], **overrides}
    try:
        return MonaiUNet(in_channels, out_channels, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CardiobenchError(f"bad monai-unet option: {message}",
                               "see `MonaiUNet` in cardiobench/models/monai_unet.py") from None
