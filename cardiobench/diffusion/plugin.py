"""The built-in representations (``onehot``, ``bits``, ``latent``; ``mri``: the image, for synthesis), noise
processes (``gaussian``, ``blurring``: linear-Gaussian; ``d3pm``: categorical) and samplers (``ddpm``, ``ddim``,
``dpm-solver++``; ``d3pm``), registered through the same hooks a third-party plugin uses.

Metadata ``spatial_dims=(2, 3)``: the component works on slices and volumes (docs/diffusion.md, "3-D volumes");
``latent`` follows its autoencoder (a volumetric run builds a 3-D one; docs/latent.md)."""

from __future__ import annotations

from cardiobench.diffusion.bits import AnalogBitsRepresentation
from cardiobench.diffusion.blurring import BlurringProcess
from cardiobench.diffusion.categorical import FAMILY as CATEGORICAL
from cardiobench.diffusion.categorical import D3PMProcess, D3PMSampler
from cardiobench.diffusion.ddim import DDIMSampler
from cardiobench.diffusion.ddpm import DDPMSampler
from cardiobench.diffusion.dpm_solver import DPMSolverSampler
from cardiobench.diffusion.gaussian import GaussianProcess
from cardiobench.diffusion.intensity import IntensityRepresentation
from cardiobench.diffusion.latent import LatentRepresentation
from cardiobench.diffusion.representation import OneHotRepresentation
from cardiobench.hookspecs import hookimpl

FAMILY = "linear-gaussian"
#: registration metadata ``spatial_dims`` of a component that works on slices (B, C, H, W) and volumes (B, C, D, H, W)
VOLUMES = (2, 3)


@hookimpl
def register_representations(register):
    register("onehot", OneHotRepresentation, spatial_dims=VOLUMES)
    register("bits", AnalogBitsRepresentation, families=(FAMILY,), spatial_dims=VOLUMES)
    register("latent", LatentRepresentation, families=(FAMILY,), autoencoder=True, spatial_dims=VOLUMES)
    register("mri", IntensityRepresentation, families=(FAMILY,), diffuses="image", spatial_dims=VOLUMES)


@hookimpl
def register_noise_processes(register):
    register("gaussian", GaussianProcess, family=FAMILY, spatial_dims=VOLUMES)
    register("blurring", BlurringProcess, family=FAMILY, spatial_dims=VOLUMES)
    register("d3pm", D3PMProcess, family=CATEGORICAL, spatial_dims=VOLUMES)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPMSampler, families=(FAMILY,), spatial_dims=VOLUMES)
    register("ddim", DDIMSampler, families=(FAMILY,), spatial_dims=VOLUMES)
    register("d3pm", D3PMSampler, families=(CATEGORICAL,), spatial_dims=VOLUMES)
    register("dpm-solver++", DPMSolverSampler, families=(FAMILY,), order=2, spatial_dims=VOLUMES)
