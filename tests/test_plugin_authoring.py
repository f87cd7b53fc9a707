"""What docs/plugins.md promises plugin authors: the ``cardiobench_register`` fixture, and the worked example
(a multistep sampler, extracted from the page) passing the sampler contract at its declared order, while the
same sampler with its second-order correction doubled fails the contract's convergence-order check."""

from __future__ import annotations

import re
import types
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from cardiobench import plugins
from cardiobench.errors import CardiobenchError
from cardiobench.testing import contract_suite
from cardiobench.testing.diffusion import SamplerContract
from cardiobench.testing.pytest_plugin import ComponentRegistrar

# the fixture comes from cardiobench's pytest11 entry point; a checkout installed before the entry point was
# added (pip install -e . not rerun) loads the plugin module here instead
_INSTALLED = any(ep.value == "cardiobench.testing.pytest_plugin" for ep in entry_points(group="pytest11"))
pytest_plugins = ["pytester"] + ([] if _INSTALLED else ["cardiobench.testing.pytest_plugin"])

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
EXAMPLE_HEADER = "# cardiobench_multistep/__init__.py\n"


def worked_example() -> types.ModuleType:
    """The worked example's module, executed from the code block in docs/plugins.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    [code] = [b for b in blocks if b.startswith(EXAMPLE_HEADER)]
    module = types.ModuleType("cardiobench_multistep")
    exec(compile(code, f"{DOC}:cardiobench_multistep", "exec"), module.__dict__)
    return module


EXAMPLE = worked_example()


class DoubledCorrection(EXAMPLE.DPMSolver2M):
    """DPM-Solver++(2M) with its second-order correction doubled: still convergent, but first order only."""

    correction = 1.0


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: small tensors, one thread


# -- the worked example passes the sampler contract ------------------------------------------------------------
class TestWorkedExampleContract(SamplerContract):
    """The page's plugin module, registered through its own ``@hookimpl register_samplers``."""

    sampler_name = "dpm-2m"
    sampler_options = {"num_inference_steps": 10}

    @pytest.fixture(autouse=True)
    def _registered(self, cardiobench_register):
        cardiobench_register.plugin(EXAMPLE, name="cardiobench-multistep")


def test_worked_example_is_registered_with_order_2(cardiobench_register):
    cardiobench_register.plugin(EXAMPLE, name="cardiobench-multistep")
    comp = plugins.get_component("sampler", "dpm-2m")
    assert comp.metadata == {"families": ("linear-gaussian",), "order": 2}
    assert comp.summary.startswith("DPM-Solver++(2M)")
    plugins.check_compatible(noise="blurring", sampler="dpm-2m")


def test_worked_example_is_more_accurate_than_ddim_at_equal_steps():
    from cardiobench.testing.diffusion import GaussianData

    data = GaussianData(channels=1, size=4)
    process = plugins.get_component("noise", "gaussian").create(num_timesteps=1000)
    x_T = torch.randn((32, *data.shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    contract = SamplerContract()
    ddim = plugins.get_component("sampler", "ddim").create(process, eta=0.0, clip_x0=False)
    ours = EXAMPLE.DPMSolver2M(process, clip_x0=False)
    for steps in (10, 20):
        e_ddim = contract.convergence_error(ddim, data, process, x_T, steps)
        e_ours = contract.convergence_error(ours, data, process, x_T, steps)
        assert e_ours < e_ddim / 5, (steps, e_ours, e_ddim)


# -- the convergence-order check fails a wrong second-order sampler -------------------------------------------
def _order_check(name: str) -> None:
    contract_suite("sampler", name)().test_deterministic_sampler_converges_at_its_order()


def test_doubled_correction_fails_the_order_check(cardiobench_register):
    cardiobench_register("sampler", "dpm-2m-doubled", DoubledCorrection, families=("linear-gaussian",), order=2)
    with pytest.raises(AssertionError, match="but the sampler declares order 2") as err:
        _order_check("dpm-2m-doubled")
    measured = float(re.search(r"shrinks at order (-?[\d.]+)", str(err.value)).group(1))
    assert 0.7 < measured < 1.3, measured  # first order: the doubled correction leaves an O(h^2) local error


def test_doubled_correction_passes_the_rest_of_the_contract_and_order_1(cardiobench_register):
    """The order check is what catches it: the doubled sampler is a consistent first-order method."""
    cardiobench_register("sampler", "dpm-2m-doubled", DoubledCorrection, families=("linear-gaussian",), order=1)
    _order_check("dpm-2m-doubled")
    contract_suite("sampler", "dpm-2m-doubled")().test_step_agrees_with_iter_sample()


def test_a_first_order_sampler_claiming_order_2_fails(cardiobench_register):
    ddim = plugins.get_component("sampler", "ddim").factory
    cardiobench_register("sampler", "ddim-claims-2", ddim, summary="DDIM, over-declared.",
                         families=("linear-gaussian",), order=2)
    with pytest.raises(AssertionError, match="declares order 2"):
        _order_check("ddim-claims-2")


def test_order_metadata_must_be_a_positive_int(cardiobench_register):
    cardiobench_register("sampler", "dpm-2m-bad-order", EXAMPLE.DPMSolver2M, families=("linear-gaussian",),
                         order="2")
    with pytest.raises(AssertionError, match="positive int"):
        _order_check("dpm-2m-bad-order")


def test_a_stochastic_sampler_is_skipped_by_the_order_check():
    with pytest.raises(pytest.skip.Exception, match="stochastic"):
        _order_check("ddpm")


# -- the cardiobench_register fixture ------------------------------------------------------------------------
def test_fixture_registers_through_the_hooks(cardiobench_register):
    comp = cardiobench_register("noise", "fixture-noise", lambda **o: None, summary="A stand-in.",
                                family="linear-gaussian")
    assert (comp.kind, comp.name, comp.origin, comp.summary) == ("noise", "fixture-noise", "pytest", "A stand-in.")
    assert comp.metadata == {"family": "linear-gaussian"}
    impls = plugins.get_plugin_manager().hook.register_noise_processes.get_hookimpls()
    assert any(i.plugin_name.startswith("cardiobench-register-noise-fixture-noise") for i in impls)
    assert plugins.get_component("noise", "fixture-noise") is comp


def test_close_unregisters_everything():
    registrar = ComponentRegistrar()
    registrar("metric", "gone-soon", lambda: None, direction={})
    registrar("dataset", "gone-too", lambda **o: None, needs_data=False)
    assert "gone-soon" in plugins.registry("metric") and "gone-too" in plugins.registry("dataset")
    registrar.close()
    assert "gone-soon" not in plugins.registry("metric") and "gone-too" not in plugins.registry("dataset")
    assert plugins.get_plugin_manager().failures == []


def test_fixture_refuses_an_unknown_kind_a_bad_name_and_a_taken_name(cardiobench_register):
    with pytest.raises(CardiobenchError, match="unknown plugin kind 'samplers'"):
        cardiobench_register("samplers", "x", lambda p, **o: None)
    with pytest.raises(CardiobenchError, match="invalid name"):
        cardiobench_register("sampler", "Bad Name", lambda p, **o: None)
    with pytest.raises(CardiobenchError, match="sampler 'ddim' is registered twice: by cardiobench and by pytest"):
        cardiobench_register("sampler", "ddim", lambda p, **o: None)
    # the failed registrations are undone at once: the built-in is usable and nothing is reported
    assert plugins.get_component("sampler", "ddim").origin == "cardiobench"
    assert plugins.get_plugin_manager().failures == []


def test_fixture_is_a_pytest11_plugin_and_nothing_leaks_between_tests(pytester):
    """A plugin author's test suite: no conftest, no import; the fixture comes with cardiobench."""
    pytester.makepyfile(test_author="""
        from cardiobench.plugins import get_component, registry

        def test_registers(cardiobench_register):
            cardiobench_register("representation", "author-rep", lambda **o: None, families=("linear-gaussian",))
            assert get_component("representation", "author-rep").origin == "pytest"

        def test_next_test_sees_nothing(cardiobench_register):
            assert "author-rep" not in registry("representation")
    """)
    args = ["-p", "cardiobench.testing.pytest_plugin"] if not _INSTALLED else []
    result = pytester.runpytest_inprocess(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
