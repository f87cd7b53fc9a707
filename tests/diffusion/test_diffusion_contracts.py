"""Every registered noise process and sampler passes its contract suite (cardiobench.testing.diffusion)."""

from cardiobench.plugins import registry
from cardiobench.testing.diffusion import NoiseProcessContract, SamplerContract


class TestGaussianContract(NoiseProcessContract):
    process_name = "gaussian"
    process_options = {"num_timesteps": 100}


class TestGaussianLinearContract(NoiseProcessContract):
    process_name = "gaussian"
    process_options = {"num_timesteps": 1000, "beta_schedule": "linear"}


class TestBlurringContract(NoiseProcessContract):
    process_name = "blurring"
    process_options = {"num_timesteps": 100, "image_size": 8}


class TestDDPMContract(SamplerContract):
    sampler_name = "ddpm"
    sampler_options = {"num_inference_steps": 20}


class TestDDIMContract(SamplerContract):
    sampler_name = "ddim"
    sampler_options = {"num_inference_steps": 10, "eta": 0.3, "timestep_spacing": "trailing"}


class TestDPMSolverContract(SamplerContract):
    sampler_name = "dpm-solver++"
    sampler_options = {"num_inference_steps": 10, "timestep_spacing": "trailing"}


class TestD3PMContract(NoiseProcessContract):
    process_name = "d3pm"
    process_options = {"num_timesteps": 50}
    shape = (3, 4, 8, 8)


class TestD3PMAbsorbingContract(NoiseProcessContract):
    process_name = "d3pm"
    process_options = {"num_timesteps": 50, "transition": "absorbing"}
    shape = (3, 4, 8, 8)


class TestD3PMSamplerContract(SamplerContract):
    sampler_name = "d3pm"
    sampler_options = {"num_inference_steps": 10}
    shape = (4, 4, 8, 8)
    processes = (("d3pm", {"num_timesteps": 50}), ("d3pm", {"num_timesteps": 50, "transition": "absorbing"}))


def test_every_builtin_component_has_a_contract_test():
    covered = {c.process_name for c in globals().values() if isinstance(c, type)
               and issubclass(c, NoiseProcessContract) and c is not NoiseProcessContract}
    assert set(registry("noise").names()) <= covered
    covered = {c.sampler_name for c in globals().values() if isinstance(c, type)
               and issubclass(c, SamplerContract) and c is not SamplerContract}
    assert set(registry("sampler").names()) <= covered
