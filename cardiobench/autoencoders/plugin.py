"""The built-in autoencoder (``vae``: a KL-regularised conv VAE for label maps), registered through the same hook a
third-party plugin uses (``register_autoencoders``)."""

from __future__ import annotations

from cardiobench.autoencoders.vae import MaskVAE
from cardiobench.hookspecs import hookimpl


@hookimpl
def register_autoencoders(register):
    register("vae", MaskVAE, data="mask")
