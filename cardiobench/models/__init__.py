"""Denoising backbones. ``unet``: the seed's ConvNeXt U-Net (``cardiobench.models.unet``)."""

from cardiobench.models.unet import SIZES, UNet, build_unet

__all__ = ["SIZES", "UNet", "build_unet"]
