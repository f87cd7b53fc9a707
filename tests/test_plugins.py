"""The plugin manager: in-process plugins, isolation of failures, compatibility checks."""

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from cardiobench import plugins
from cardiobench.errors import CardiobenchError, IncompatibleError, PluginLoadError
from cardiobench.hookspecs import hookimpl
from cardiobench.testing.cli import invoke

FIXTURES = Path(__file__).parent / "fixtures"

#: fixture distributions under tests/fixtures: entry-point name -> (folder, module, distribution, version)
FIXTURE_PLUGINS = {
    "hello": ("hello-plugin", "cardiobench_hello", "cardiobench-hello", "1.2.3"),
    "exit": ("exit-plugin", "cardiobench_exit", "cardiobench-exit", "0.0.1"),
    "clash": ("clash-plugin", "cardiobench_clash", "cardiobench-clash", "0.0.2"),
}


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


# -- isolation: BaseExceptions, command name clashes ------------------------------------------------


class _Dist:
    def __init__(self, name: str, version: str):
        self.metadata = {"Name": name}
        self.version = version


class _EntryPoint:
    """An entry point of the ``cardiobench`` group, as ``importlib.metadata`` gives it."""

    def __init__(self, name: str, module: str, dist: str, version: str, load=None):
        self.name, self.value, self.dist, self._load = name, module, _Dist(dist, version), load

    def load(self):
        return self._load() if self._load is not None else importlib.import_module(self.value)


@pytest.fixture
def entry_points(monkeypatch):
    """Make ``cardiobench.plugins`` discover these entry points (and only them), loaded in-process."""

    def install(*eps: _EntryPoint) -> None:
        monkeypatch.setattr(plugins, "entry_points", lambda group: list(eps))
        monkeypatch.setenv("CARDIOBENCH_LOAD_PLUGINS", ",".join(ep.name for ep in eps))
        plugins.reset_plugin_manager()

    return install


@pytest.fixture
def fixture_plugins(entry_points, monkeypatch):
    """Discover fixture distributions from tests/fixtures by entry-point name, imported from source."""

    def install(*names: str) -> None:
        eps = []
        for name in names:
            folder, module, dist, version = FIXTURE_PLUGINS[name]
            monkeypatch.syspath_prepend(str(FIXTURES / folder))
            eps.append(_EntryPoint(name, module, dist, version))
        entry_points(*eps)

    return install


def _failures(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["failures"]


def _leaderboard(tmp_path):
    return invoke("leaderboard", "--results", str(tmp_path / "results.db"))


def test_plugin_calling_sys_exit_at_import_is_skipped_and_reported(fixture_plugins, tmp_path):
    fixture_plugins("exit", "hello")
    result = invoke("plugins", "--json")
    assert _failures(result) == [
        {"distribution": "cardiobench-exit", "plugin": "exit", "stage": "import",
         "error": "called sys.exit(3) at import"}
    ]
    assert "hello-foreground" in {c["name"] for c in json.loads(result.stdout)["components"]}
    board = _leaderboard(tmp_path)
    assert board.exit_code == 0 and "No results yet" in board.stdout
    hello = invoke("hello")
    assert hello.exit_code == 0 and hello.stdout == "hello from cardiobench-hello\n"
    table = invoke("plugins", env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "cardiobench-exit" in table.stdout
    assert "called sys.exit(3) at import" in table.stdout


def test_strict_mode_sys_exit_at_import_is_one_line_exit_2(fixture_plugins, monkeypatch):
    fixture_plugins("exit")
    monkeypatch.setenv("CARDIOBENCH_STRICT_PLUGINS", "1")
    result = invoke("plugins", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "cardiobench-exit" in line and "called sys.exit(3) at import" in line


def test_hostile_fixture_plugin_cannot_replace_a_builtin_command_or_stop_the_cli(fixture_plugins, tmp_path):
    fixture_plugins("clash", "hello")
    result = invoke("plugins", "--json")
    assert sorted(_failures(result), key=lambda f: f["error"]) == [
        {"distribution": "cardiobench-clash", "plugin": "clash", "stage": "register",
         "error": "Bail: metrics hook bailed out"},
        {"distribution": "cardiobench-clash", "plugin": "clash", "stage": "register",
         "error": "command 'leaderboard' is registered twice: by cardiobench and by cardiobench-clash"},
    ]
    names = {c["name"] for c in json.loads(result.stdout)["components"]}
    assert "hello-foreground" in names and "clash-metric" not in names
    board = _leaderboard(tmp_path)
    assert board.exit_code == 0 and "No results yet" in board.stdout and "hijacked" not in board.output
    own = invoke("clash-hello")
    assert own.exit_code == 0 and own.stdout == "hello from cardiobench-clash\n"
    hello = invoke("hello")
    assert hello.exit_code == 0 and hello.stdout == "hello from cardiobench-hello\n"
    table = invoke("plugins", env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "command 'leaderboard' is registered twice" in table.stdout


def test_strict_mode_command_clash_is_one_line_exit_2(fixture_plugins, monkeypatch, tmp_path):
    fixture_plugins("clash")
    monkeypatch.setenv("CARDIOBENCH_STRICT_PLUGINS", "1")
    result = _leaderboard(tmp_path)
    assert result.exit_code == 2 and "hijacked" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert "command 'leaderboard' is registered twice: by cardiobench and by cardiobench-clash" in line


class _Bail(BaseException):
    """A ``BaseException`` that is not an ``Exception``."""


_BASE_EXCEPTIONS = [
    pytest.param(lambda: SystemExit(3), "called sys.exit(3) in {hook}", id="sys.exit"),
    pytest.param(lambda: SystemExit(), "called sys.exit() in {hook}", id="sys.exit-none"),
    pytest.param(GeneratorExit, "GeneratorExit", id="GeneratorExit"),
    pytest.param(lambda: _Bail("bailing out"), "_Bail: bailing out", id="custom"),
]


@pytest.mark.parametrize(("make_exc", "error"), _BASE_EXCEPTIONS)
def test_base_exception_in_command_hook_is_reported_and_its_commands_dropped(register_plugin, make_exc, error):
    def register_commands(app):
        app.command(name="half-done")(lambda: print("half done"))
        raise make_exc()

    register_plugin(_plugin(register_commands=register_commands), "bail", origin=("bail-dist", "0.1"))
    assert _failures(invoke("plugins", "--json")) == [
        {"distribution": "bail-dist", "plugin": "bail", "stage": "register",
         "error": error.format(hook="register_commands")}
    ]
    half = invoke("half-done")  # a failed plugin's partial commands are dropped
    assert half.exit_code == 2 and "No such command" in half.stderr


@pytest.mark.parametrize(("make_exc", "error"), _BASE_EXCEPTIONS)
def test_base_exception_in_component_hook_is_reported_and_skipped(register_plugin, make_exc, error):
    def register_samplers(register):
        register("half-done", lambda process, **o: None)
        raise make_exc()

    register_plugin(_plugin(register_samplers=register_samplers), "bail", origin=("bail-dist", "0.1"))
    pm = plugins.get_plugin_manager()
    assert "half-done" not in pm.registries()["sampler"]
    assert [f.to_dict() for f in pm.failures] == [
        {"distribution": "bail-dist", "plugin": "bail", "stage": "register",
         "error": error.format(hook="register_samplers")}
    ]


def test_strict_mode_base_exception_in_command_hook_is_one_line_exit_2(register_plugin, monkeypatch):
    def register_commands(app):
        raise _Bail("bailing out")

    register_plugin(_plugin(register_commands=register_commands), "bail", origin=("bail-dist", "0.1"))
    monkeypatch.setenv("CARDIOBENCH_STRICT_PLUGINS", "1")
    result = invoke("plugins")
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "bail-dist" in line and "_Bail: bailing out" in line


def test_failing_command_hook_is_listed_once_however_often_the_cli_runs(register_plugin):
    def register_commands(app):
        raise ValueError("no commands today")

    register_plugin(_plugin(register_commands=register_commands), "sulky", origin=("sulky-dist", "0.1"))
    for _ in range(3):
        assert _failures(invoke("plugins", "--json")) == [
            {"distribution": "sulky-dist", "plugin": "sulky", "stage": "register",
             "error": "ValueError: no commands today"}
        ]


def test_command_name_clashes_keep_the_first_registration(register_plugin, tmp_path):
    def first(app):
        app.command(name="greet")(lambda: print("first greet"))

    def second(app):
        @app.command()  # no name: typer derives "leaderboard" from the function
        def leaderboard() -> None:
            print("hijacked")

        data_app = typer.Typer()
        data_app.command(name="info")(lambda: print("hijacked data"))
        app.add_typer(data_app, name="data")
        app.command(name="greet")(lambda: print("second greet"))
        app.command(name="own")(lambda: print("own command"))

    def last(app):  # trylast puts this hook before the built-ins in pluggy's order: built-ins still win
        app.command(name="plugins")(lambda: print("hijacked plugins"))

    register_plugin(_plugin(register_commands=first), "first", origin=("dist-a", "1"))
    register_plugin(_plugin(register_commands=second), "second", origin=("dist-b", "1"))
    register_plugin(SimpleNamespace(register_commands=hookimpl(trylast=True)(last)), "last", origin=("dist-c", "1"))
    errors = sorted(f["error"] for f in _failures(invoke("plugins", "--json")))
    assert errors == [
        "command 'data' is registered twice: by cardiobench and by dist-b",
        "command 'greet' is registered twice: by dist-a and by dist-b",
        "command 'leaderboard' is registered twice: by cardiobench and by dist-b",
        "command 'plugins' is registered twice: by cardiobench and by dist-c",
    ]
    assert invoke("greet").stdout == "first greet\n"
    assert invoke("own").stdout == "own command\n"
    board = _leaderboard(tmp_path)
    assert board.exit_code == 0 and "No results yet" in board.stdout
    data_help = invoke("data", "--help")
    assert data_help.exit_code == 0 and "preview" in data_help.stdout
    assert "hijacked" not in board.output + data_help.output


def test_plugin_cannot_remove_builtin_commands(register_plugin, tmp_path):
    def register_commands(app):
        app.registered_commands.clear()
        app.command(name="only-me")(lambda: print("only me"))

    register_plugin(_plugin(register_commands=register_commands), "greedy", origin=("greedy-dist", "1"))
    errors = [f["error"] for f in _failures(invoke("plugins", "--json"))]
    assert len(errors) == 1 and errors[0].startswith("removed commands registered by others: ")
    assert "'leaderboard'" in errors[0]
    assert _leaderboard(tmp_path).exit_code == 0
    assert invoke("only-me").stdout == "only me\n"


def test_keyboard_interrupt_at_import_is_not_swallowed(entry_points):
    def ctrl_c():
        raise KeyboardInterrupt

    entry_points(_EntryPoint("ctrl-c", "cardiobench_ctrl_c", "cardiobench-ctrl-c", "1", load=ctrl_c))
    with pytest.raises(KeyboardInterrupt):
        plugins.get_plugin_manager()
    result = invoke("plugins", "--json")
    assert result.exit_code == 130 and result.stdout == "" and "Interrupted" in result.stderr


def test_keyboard_interrupt_in_a_hook_is_not_swallowed(register_plugin):
    def register_metrics(register):
        raise KeyboardInterrupt

    def register_commands(app):
        raise KeyboardInterrupt

    register_plugin(_plugin(register_metrics=register_metrics), "ctrl-c-metrics")
    with pytest.raises(KeyboardInterrupt):
        plugins.get_plugin_manager().registries()
    plugins.get_plugin_manager().unregister(name="ctrl-c-metrics")
    register_plugin(_plugin(register_commands=register_commands), "ctrl-c-commands")
    result = invoke("plugins", "--json")
    assert result.exit_code == 130 and result.stdout == "" and "Interrupted" in result.stderr
