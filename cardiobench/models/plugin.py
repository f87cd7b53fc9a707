"""The built-in backbone ``unet``, registered through ``register_backbones`` like any plugin."""

from __future__ import annotations

from typing import Any

from cardiobench.hookspecs import hookimpl


def unet(in_channels: int, out_channels: int | None = None, size: str = "small", **options: Any):
    """The seed's ConvNeXt U-Net (linear attention, sinusoidal time); sizes tiny, small, base."""
    from cardiobench.models.unet import build_unet

    return build_unet(in_channels, out_channels, size=size, **options)


@hookimpl
def register_backbones(register):
    from cardiobench.models.unet import SIZES

    register("unet", unet, sizes=tuple(SIZES), default_size="small", class_labels=True, residuals=True)
