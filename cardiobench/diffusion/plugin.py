"""The built-in representations (``onehot``, ``bits``, ``latent``; ``mri``: the image, for synthesis), noise
processes (``gaussian``, ``blurring``: linear-Gaussian; ``d3pm``: categorical) and samplers (``ddpm``, ``ddim``,
``dpm-solver++``; ``d3pm``), registered through the same hooks a third-party plugin uses."""

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


@hookimpl
def register_representations(register):
    register("onehot", OneHotRepresentation)
    register("bits", AnalogBitsRepresentation, families=(FAMILY,))
    register("latent", LatentRepresentation, families=(FAMILY,), autoencoder=True)
    register("mri", IntensityRepresentation, families=(FAMILY,), diffuses="image")


@hookimpl
def register_noise_processes(register):
    register("gaussian", GaussianProcess, family=FAMILY)
    register("blurring", BlurringProcess, family=FAMILY)
    register("d3pm", D3PMProcess, family=CATEGORICAL)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPMSampler, families=(FAMILY,))
    register("ddim", DDIMSampler, families=(FAMILY,))
    register("d3pm", D3PMSampler, families=(CATEGORICAL,))
    register("dpm-solver++", DPMSolverSampler, families=(FAMILY,), order=2)
