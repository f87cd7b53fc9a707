"""Real plugin distributions, installed with pip and discovered through their entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding pip-installed plugin distributions: the example, a good and a broken one."""
    dists = [ROOT / "plugins" / "cardiobench-example", FIXTURES / "hello-plugin", FIXTURES / "broken-plugin"]
    return _pip_install(tmp_path_factory.mktemp("site"), dists)


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    """A folder holding a plugin that calls sys.exit(3) at import, one that claims the built-in
    ``leaderboard`` command and raises a BaseException in a hook, and a good one."""
    return _pip_install(tmp_path_factory.mktemp("hostile-site"),
                        [FIXTURES / "exit-plugin", FIXTURES / "clash-plugin", FIXTURES / "hello-plugin"])


def _pip_install(target: Path, dists: list[Path]) -> Path:
    """``dists`` pip-installed (offline, no dependencies) into the folder ``target``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), *map(str, dists)],
        check=True,
        capture_output=True,
    )
    return target


def _cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOBENCH_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ["COLUMNS"] = "200"
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cardiobench", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def test_installed_plugins_are_listed_with_their_distribution_and_broken_one_is_reported(site):
    proc = _cli(site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    origins = {(c["kind"], c["name"]): (c["origin"], c["version"]) for c in data["components"]}
    assert origins[("noise", "gaussian-linear")] == ("cardiobench-example", "0.1.0")
    assert origins[("metric", "hello-foreground")] == ("cardiobench-hello", "1.2.3")
    [failure] = data["failures"]
    assert failure["distribution"] == "cardiobench-broken"
    assert failure["stage"] == "import"
    assert "this plugin is broken on purpose" in failure["error"]


def test_rich_table_still_works_with_a_broken_plugin(site):
    proc = _cli(site, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert "hello-foreground" in proc.stdout
    assert "cardiobench-broken" in proc.stdout and "broken on purpose" in proc.stdout


def test_plugin_command_is_added_to_the_cli(site):
    proc = _cli(site, "hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from cardiobench-hello"


def test_load_plugins_env_restricts_and_empty_means_builtins_only(site):
    data = json.loads(_cli(site, "plugins", "--json", CARDIOBENCH_LOAD_PLUGINS="cardiobench-hello").stdout)
    names = {c["name"] for c in data["components"]}
    assert "hello-foreground" in names and "gaussian-linear" not in names
    assert data["failures"] == []
    data = json.loads(_cli(site, "plugins", "--json", CARDIOBENCH_LOAD_PLUGINS="").stdout)
    assert {c["origin"] for c in data["components"]} <= {"cardiobench"}


def test_strict_mode_fails_with_one_line_and_exit_2(site):
    proc = _cli(site, "plugins", CARDIOBENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cardiobench-broken" in lines[0] and "Traceback" not in proc.stderr


def test_plugin_calling_sys_exit_or_claiming_a_builtin_command_is_isolated(hostile_site, tmp_path):
    proc = _cli(hostile_site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {(f["distribution"], f["stage"], f["error"]) for f in data["failures"]} == {
        ("cardiobench-exit", "import", "called sys.exit(3) at import"),
        ("cardiobench-clash", "register", "Bail: metrics hook bailed out"),
        ("cardiobench-clash", "register",
         "command 'leaderboard' is registered twice: by cardiobench and by cardiobench-clash"),
    }
    assert "hello-foreground" in {c["name"] for c in data["components"]}
    proc = _cli(hostile_site, "hello")
    assert proc.returncode == 0 and proc.stdout.strip() == "hello from cardiobench-hello", proc.stderr
    proc = _cli(hostile_site, "leaderboard", "--results", str(tmp_path / "results.db"))
    assert proc.returncode == 0, proc.stderr
    assert "No results yet" in proc.stdout and "hijacked" not in proc.stdout + proc.stderr


def test_strict_mode_with_a_plugin_calling_sys_exit_or_claiming_a_command_is_one_line_exit_2(hostile_site, tmp_path):
    proc = _cli(hostile_site, "plugins", "--json", CARDIOBENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert "cardiobench-exit" in line and "called sys.exit(3) at import" in line
    proc = _cli(
        hostile_site, "leaderboard", "--results", str(tmp_path / "results.db"),
        CARDIOBENCH_STRICT_PLUGINS="1", CARDIOBENCH_LOAD_PLUGINS="cardiobench-clash",
    )
    assert proc.returncode == 2 and "hijacked" not in proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert "command 'leaderboard' is registered twice: by cardiobench and by cardiobench-clash" in line
