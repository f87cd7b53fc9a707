"""The built-in backbones ``unet`` and ``monai-unet``, registered through ``register_backbones`` like any plugin.

Their modules import torch (and MONAI), so they are imported when a backbone is built, not at registration: the
size names below are spelled out (``tests/models`` checks them against each module's ``SIZES``).
"""

from __future__ import annotations

from typing import Any

from cardiobench.hookspecs import hookimpl

#: the named sizes of each backbone (the keys of ``cardiobench.models.unet.SIZES`` / ``monai_unet.SIZES``)
UNET_SIZES = ("tiny", "small", "base")
MONAI_UNET_SIZES = ("tiny", "small", "base")


def unet(in_channels: int, out_channels: int | None = None, size: str = "small", **options: Any):
    """The seed's ConvNeXt U-Net (linear attention, sinusoidal time); sizes tiny, small, base; 2-D or 3-D."""
    from cardiobench.models.unet import build_unet

    return build_unet(in_channels, out_channels, size=size, **options)


def monai_unet(in_channels: int, out_channels: int | None = None, size: str = "small", **options: Any):
    """MONAI's DiffusionModelUNet (residual blocks, self-attention); sizes tiny, small, base; 2-D or 3-D."""
    from cardiobench.models.monai_unet import build_monai_unet

    return build_monai_unet(in_channels, out_channels, size=size, **options)


@hookimpl
def register_backbones(register):
    register("unet", unet, sizes=UNET_SIZES, default_size="small", class_labels=True, residuals=True,
             spatial_dims=(2, 3))
    # residuals=False: cardiobench's ControlNet needs unet's embed/encode/decode split, which MONAI's net lacks
    register("monai-unet", monai_unet, sizes=MONAI_UNET_SIZES, default_size="small", class_labels=True,
             residuals=False, spatial_dims=(2, 3))
