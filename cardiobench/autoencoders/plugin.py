"""The built-in autoencoders, registered through the same hook a third-party plugin uses
(``register_autoencoders``): ``vae`` (label maps, ``data="mask"``) and ``image-vae`` (MR slices,
``data="image"``), KL-regularised conv VAEs on MONAI's AutoencoderKL, 2-D and 3-D (``spatial_dims=(2, 3)``: a
volumetric run builds them with ``spatial_dims=3``)."""

from __future__ import annotations

from cardiobench.autoencoders.image_vae import ImageVAE
from cardiobench.autoencoders.vae import MaskVAE
from cardiobench.hookspecs import hookimpl


@hookimpl
def register_autoencoders(register):
    register("vae", MaskVAE, data="mask", spatial_dims=(2, 3))
    register("image-vae", ImageVAE, data="image", spatial_dims=(2, 3))
