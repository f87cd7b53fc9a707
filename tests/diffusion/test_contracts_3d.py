"""Every built-in noise process, sampler and pointwise representation passes its contract suite on volumes.

The suites of ``cardiobench.testing`` run on (B, C, D, H, W) tensors here: 4 slices of 8 x 8 (2 x 4 x 4 Gaussian
data for the samplers' statistical and convergence checks). Blurring diffusion is built for the volume
(``image_size = [D, H, W]``) with anisotropic spacing: slices 2.5 in-plane pixels apart. The ``latent``
representation follows its autoencoder's ``spatial_dims`` and is checked on volumes in tests/autoencoders.
"""

from __future__ import annotations

from typing import Any

from cardiobench.plugins import registry
from cardiobench.testing.diffusion import NoiseProcessContract, SamplerContract
from cardiobench.testing.representations import RepresentationContract

#: slices 2.5 in-plane pixels apart: the blur spreads 2.5x less far along D than in-plane
SPACING = [2.5, 1.0, 1.0]
BLURRING_3D: dict[str, Any] = {"num_timesteps": 100, "image_size": [4, 8, 8], "spacing": SPACING}
#: the linear-Gaussian processes a sampler runs with on volumes
LINEAR_GAUSSIAN_3D: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gaussian", {"num_timesteps": 200}),
    ("blurring", {**BLURRING_3D, "num_timesteps": 200}),
)


# -- noise processes -------------------------------------------------------------------------------------------------
class TestGaussian3DContract(NoiseProcessContract):
    process_name = "gaussian"
    process_options = {"num_timesteps": 100}
    shape = (3, 2, 4, 8, 8)


class TestBlurring3DContract(NoiseProcessContract):
    process_name = "blurring"
    process_options = BLURRING_3D
    shape = (3, 2, 4, 8, 8)


class TestD3PM3DContract(NoiseProcessContract):
    process_name = "d3pm"
    process_options = {"num_timesteps": 50}
    shape = (3, 4, 4, 8, 8)


class TestD3PMAbsorbing3DContract(NoiseProcessContract):
    process_name = "d3pm"
    process_options = {"num_timesteps": 50, "transition": "absorbing"}
    shape = (3, 4, 4, 8, 8)


# -- samplers --------------------------------------------------------------------------------------------------------
class _Sampler3D(SamplerContract):
    """The linear-Gaussian samplers' 3-D settings: volumes, blurring with spacing, 2 x 4 x 4 Gaussian data."""

    shape = (4, 2, 4, 8, 8)
    processes = LINEAR_GAUSSIAN_3D
    statistical_size = (2, 4, 4)
    convergence_size = (2, 4, 4)
    convergence_processes = (("gaussian", {"num_timesteps": 1000}),
                             ("blurring", {"num_timesteps": 1000, "image_size": [2, 4, 4], "spacing": SPACING}))


class TestDDPM3DContract(_Sampler3D):
    sampler_name = "ddpm"
    sampler_options = {"num_inference_steps": 20}


class TestDDIM3DContract(_Sampler3D):
    sampler_name = "ddim"
    sampler_options = {"num_inference_steps": 10, "eta": 0.3, "timestep_spacing": "trailing"}


class TestDPMSolver3DContract(_Sampler3D):
    sampler_name = "dpm-solver++"
    sampler_options = {"num_inference_steps": 10, "timestep_spacing": "trailing"}


class TestD3PMSampler3DContract(SamplerContract):
    sampler_name = "d3pm"
    sampler_options = {"num_inference_steps": 10}
    shape = (4, 4, 4, 8, 8)
    processes = (("d3pm", {"num_timesteps": 50}), ("d3pm", {"num_timesteps": 50, "transition": "absorbing"}))


# -- representations -------------------------------------------------------------------------------------------------
class TestOneHot3DContract(RepresentationContract):
    representation_name = "onehot"
    representation_options = {"spatial_dims": 3}
    expected_spatial_dims = 3


class TestBits3DContract(RepresentationContract):
    representation_name = "bits"
    representation_options = {"num_classes": 5, "spatial_dims": 3}  # 5 classes: 3 bits, 3 invalid codes
    expected_spatial_dims = 3


class TestMRI3DContract(RepresentationContract):
    representation_name = "mri"
    representation_options = {"spatial_dims": 3}
    expected_spatial_dims = 3


def _covered(base: type, attribute: str) -> set[str]:
    return {getattr(c, attribute) for c in globals().values()
            if isinstance(c, type) and issubclass(c, base) and c.__name__.startswith("Test")}


def _volumetric(kind: str) -> set[str]:
    """Built-ins of ``kind`` that declare volumes in their registration metadata ``spatial_dims``."""
    return {c.name for c in registry(kind)
            if c.origin == "cardiobench" and 3 in tuple(c.metadata.get("spatial_dims", ()))}


def test_every_builtin_process_and_sampler_has_a_3d_contract_test():
    builtin = {kind: {c.name for c in registry(kind) if c.origin == "cardiobench"} for kind in ("noise", "sampler")}
    assert builtin["noise"] == _volumetric("noise") <= _covered(NoiseProcessContract, "process_name")
    assert builtin["sampler"] == _volumetric("sampler") <= _covered(SamplerContract, "sampler_name")
    # every representation that declares volumes; the autoencoder's latent follows its autoencoder (a volumetric
    # run builds a 3-D one) and is checked on volumes end to end in tests/autoencoders/test_latent.py
    assert _volumetric("representation") == {"onehot", "bits", "mri", "latent"}
    assert _volumetric("representation") - {"latent"} <= _covered(RepresentationContract, "representation_name")


def test_2d_configs_are_unchanged():
    """Spec hashes of cached 2-D checkpoints hold: the new options are left out of config() at their defaults."""
    from cardiobench.plugins import get_component

    blur = get_component("noise", "blurring").create(num_timesteps=100, image_size=8)
    assert blur.config() == {"num_timesteps": 100, "image_size": 8, "sigma_blur_max": 2.5, "min_scale": 0.001,
                             "logsnr_min": -10.0, "logsnr_max": 10.0, "prediction_type": "epsilon"}
    assert get_component("representation", "onehot").create().config() == {"num_classes": 4}
    assert get_component("representation", "bits").create().config() == {"num_classes": 4, "scale": 1.0}
    assert get_component("representation", "mri").create().config() == {}
    volume = get_component("noise", "blurring").create(**BLURRING_3D)
    assert volume.config()["image_size"] == [4, 8, 8] and volume.config()["spacing"] == SPACING
    assert get_component("representation", "onehot").create(spatial_dims=3).config() == {"num_classes": 4,
                                                                                          "spatial_dims": 3}
