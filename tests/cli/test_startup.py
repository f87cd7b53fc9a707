"""Startup: `cardiobench --version` and `--help` never import torch, and help still lists every command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from cardiobench import cli

HEAVY = ("torch", "torchvision", "torch_fidelity", "monai", "diffusers", "scipy")


def imported_modules(*args: str) -> set[str]:
    """Top-level names of every module `python -X importtime -m cardiobench ARGS` imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cardiobench", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == (0 if args else 2), proc.stderr[-2000:]  # no arguments: help, exit code 2 (click)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no -X importtime output"
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


@pytest.mark.parametrize("args", [("--version",), ("--help",), (), ("run", "--help"), ("bench", "--help"),
                                  ("cache", "--help")])
def test_version_and_help_do_not_import_torch(args):
    modules = imported_modules(*args)
    assert "cardiobench" in modules and "typer" in modules  # the check sees imports at all
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_a_command_that_computes_still_imports_torch():  # the check above can fail
    assert "torch" in imported_modules("plugins", "--json")


def _names(app: typer.Typer) -> set[str]:
    command = typer.main.get_command(app)
    return set(command.commands)  # type: ignore[attr-defined]


def test_help_lists_the_same_commands_as_a_full_start():
    light = _names(cli.build_app(cli._commands_manager()))
    assert light == _names(cli.build_app())
    assert {"run", "compare", "train", "sample", "bench", "cache", "plugins", "leaderboard"} <= light


def test_lazy_module_imports_on_first_use_and_forwards_every_access(monkeypatch):
    name = "cardiobench.testing.metrics"
    monkeypatch.delitem(sys.modules, name, raising=False)
    lazy = cli.lazy_module(name)
    assert name not in sys.modules
    real_function = lazy.contract_masks
    assert name in sys.modules and real_function is sys.modules[name].contract_masks
    monkeypatch.setattr(sys.modules[name], "contract_masks", "patched")
    assert lazy.contract_masks == "patched"
    assert cli.lazy_module(name) is sys.modules[name]  # already imported: the module itself
