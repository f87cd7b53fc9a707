"""The plugin manager: in-process plugins, isolation of failures, compatibility checks."""

from types import SimpleNamespace

import pytest

from cardiobench import plugins
from cardiobench.errors import CardiobenchError, IncompatibleError, PluginLoadError
from cardiobench.hookspecs import hookimpl


def _plugin(**hooks):
    return SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_builtins_register_through_the_same_hooks():
    pm = plugins.get_plugin_manager()
    for module in plugins.DEFAULT_PLUGINS:
        assert pm.has_plugin(module)
        assert pm.origin(module)[0] == "cardiobench"
    assert pm.failures == []


def test_in_process_plugin_registers_and_unregisters(register_plugin):
    def register_samplers(register):
        register("toy-sampler", lambda process, **o: None, summary="A toy.", families=("toy",))

    register_plugin(_plugin(register_samplers=register_samplers), "toy")
    comp = plugins.get_component("sampler", "toy-sampler")
    assert comp.origin == "test-plugin" and comp.summary == "A toy."
    plugins.get_plugin_manager().unregister(name="toy")
    with pytest.raises(CardiobenchError, match="unknown sampler 'toy-sampler'"):
        plugins.get_component("sampler", "toy-sampler")


def test_failing_register_hook_is_reported_and_skipped(register_plugin):
    def register_metrics(register):
        register("half-done", lambda: None)
        raise ValueError("boom")

    def register_datasets(register):
        register("still-works", lambda **o: None)

    register_plugin(_plugin(register_metrics=register_metrics), "bad", origin=("bad-dist", "0.1"))
    register_plugin(_plugin(register_datasets=register_datasets), "good")
    pm = plugins.get_plugin_manager()
    regs = pm.registries()
    assert "still-works" in regs["dataset"]
    assert "half-done" not in regs["metric"]  # a failed plugin's partial registrations are dropped
    [failure] = pm.failures
    assert failure.distribution == "bad-dist" and failure.stage == "register" and "boom" in failure.error


def test_strict_mode_turns_failures_into_errors(register_plugin, monkeypatch):
    monkeypatch.setenv("CARDIOBENCH_STRICT_PLUGINS", "1")

    def register_metrics(register):
        raise ValueError("boom")

    register_plugin(_plugin(register_metrics=register_metrics), "bad", origin=("bad-dist", "0.1"))
    with pytest.raises(PluginLoadError, match="bad-dist"):
        plugins.get_plugin_manager().registries()


def test_two_plugins_claiming_one_name(register_plugin):
    def reg_a(register):
        register("twin", lambda **o: None)

    def reg_b(register):
        register("twin", lambda **o: None)

    register_plugin(_plugin(register_datasets=reg_a), "a", origin=("dist-a", "1"))
    register_plugin(_plugin(register_datasets=reg_b), "b", origin=("dist-b", "1"))
    with pytest.raises(CardiobenchError, match="registered twice: by dist-a and by dist-b"):
        plugins.get_component("dataset", "twin")
    assert any("registered twice" in f.error for f in plugins.get_plugin_manager().failures)


def test_compatibility_is_checked_from_metadata(register_plugin):
    def register_noise_processes(register):
        register("cat-noise", lambda **o: None, family="categorical")
        register("lin-noise", lambda **o: None, family="linear-gaussian")

    def register_samplers(register):
        register("lin-sampler", lambda p, **o: None, families=("linear-gaussian",))

    def register_conditioning(register):
        register("seg-only", lambda **o: None, tasks=("segmentation",), samplers=("lin-sampler",))

    register_plugin(
        _plugin(
            register_noise_processes=register_noise_processes,
            register_samplers=register_samplers,
            register_conditioning=register_conditioning,
        ),
        "compat",
    )
    plugins.check_compatible(noise="lin-noise", sampler="lin-sampler")
    with pytest.raises(IncompatibleError, match="does not support noise process 'cat-noise'"):
        plugins.check_compatible(noise="cat-noise", sampler="lin-sampler")
    with pytest.raises(IncompatibleError, match="does not apply to task 'generation'"):
        plugins.check_compatible(noise="lin-noise", sampler="lin-sampler", conditioning="seg-only", task="generation")
    plugins.check_compatible(noise="lin-noise", sampler="lin-sampler", conditioning="seg-only", task="segmentation")


def test_load_plugins_env_restricts_entry_points(monkeypatch):
    class FakeDist:
        metadata = {"Name": "cardiobench-fake"}
        version = "9.9"

    class FakeEP:
        name = "fake"
        value = "cardiobench_fake"
        dist = FakeDist()

        def load(self):
            raise ImportError("no module named cardiobench_fake")

    monkeypatch.setattr(plugins, "entry_points", lambda group: [FakeEP()])
    monkeypatch.setenv("CARDIOBENCH_LOAD_PLUGINS", "")
    assert plugins.get_plugin_manager().failures == []  # built-ins only: the entry point is not even loaded
    plugins.reset_plugin_manager()
    monkeypatch.setenv("CARDIOBENCH_LOAD_PLUGINS", "cardiobench-fake")
    [failure] = plugins.get_plugin_manager().failures
    assert failure.distribution == "cardiobench-fake" and failure.stage == "import"
    assert "ImportError: no module named cardiobench_fake" == failure.error
