"""An example third-party cardiobench plugin.

It registers ``gaussian-linear``: the built-in Gaussian DDPM process with the linear beta schedule
of Ho et al. (2020) as the default, so ``cardiobench run --noise gaussian-linear`` compares it
against the cosine default without extra options.
"""

from cardiobench.hookspecs import hookimpl
from cardiobench.plugins import get_component


def gaussian_linear(**options):
    """Gaussian DDPM with the linear beta schedule (1e-4 to 0.02, Ho et al. 2020)."""
    options.setdefault("beta_schedule", "linear")
    return get_component("noise", "gaussian").create(**options)


@hookimpl
def register_noise_processes(register):
    register("gaussian-linear", gaussian_linear, family="linear-gaussian")
