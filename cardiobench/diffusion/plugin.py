"""The built-in representation (``onehot``), noise processes (``gaussian``, ``blurring``) and samplers
(``ddpm``, ``ddim``), registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from cardiobench.diffusion.blurring import BlurringProcess
from cardiobench.diffusion.ddim import DDIMSampler
from cardiobench.diffusion.ddpm import DDPMSampler
from cardiobench.diffusion.gaussian import GaussianProcess
from cardiobench.diffusion.representation import OneHotRepresentation
from cardiobench.hookspecs import hookimpl

FAMILY = "linear-gaussian"


@hookimpl
def register_representations(register):
    register("onehot", OneHotRepresentation)


@hookimpl
def register_noise_processes(register):
    register("gaussian", GaussianProcess, family=FAMILY)
    register("blurring", BlurringProcess, family=FAMILY)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPMSampler, families=(FAMILY,))
    register("ddim", DDIMSampler, families=(FAMILY,))
