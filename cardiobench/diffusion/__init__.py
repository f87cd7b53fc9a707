"""Noise processes and samplers. See ``docs/diffusion.md`` for every formula."""

from cardiobench.diffusion.base import PREDICTION_TYPES, ModelFn, NoiseProcess, Sampler, SampleStep, per_item
from cardiobench.diffusion.blurring import BlurringProcess
from cardiobench.diffusion.ddim import DDIMSampler
from cardiobench.diffusion.ddpm import DDPMSampler
from cardiobench.diffusion.dpm_solver import DPMSolverSampler
from cardiobench.diffusion.gaussian import GaussianProcess

__all__ = [
    "PREDICTION_TYPES",
    "BlurringProcess",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverSampler",
    "GaussianProcess",
    "ModelFn",
    "NoiseProcess",
    "SampleStep",
    "Sampler",
    "per_item",
]
