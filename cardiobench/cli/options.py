"""Typer pieces shared by several commands: ``--preset``, ``--config``, ``--set``, ``--results`` and command groups.

They live in the CLI package so that the library (``cardiobench.config``, ``cardiobench.results``) never
imports typer.
"""

from __future__ import annotations

import typer

from cardiobench.config import DEFAULT_PRESET, preset_names
from cardiobench.results.store import DEFAULT_RESULTS_PATH, RESULTS_ENV


def preset_option(default: str | None = DEFAULT_PRESET, note: str = ""):
    """``--preset NAME|FILE`` for a Typer command (default: the quick preset; ``None``: the command chooses)."""
    return typer.Option(
        default,
        "--preset",
        help="Preset name (" + ", ".join(preset_names()) + ") or path to a TOML file." + (f" {note}" if note else ""),
        show_default=default is not None,
    )


def config_option():
    """``--config FILE.toml`` for a Typer command: overrides the preset, overridden by the command line."""
    return typer.Option(None, "--config", help="TOML file whose keys override the preset.")


def set_option():
    """Repeatable ``--set KEY=VALUE`` for any schema key, e.g. ``--set train.lr=3e-4``."""
    return typer.Option(None, "--set", help="Override any config key, e.g. --set train.lr=3e-4 (repeatable).")


def results_option():
    """``--results PATH`` (env ``CARDIOBENCH_RESULTS``); pass its value to ``ResultStore(value)``,
    which resolves ``None`` to the default ``./cardiobench-results/results.db`` and a folder to
    ``FOLDER/results.db``."""
    return typer.Option(
        None,
        "--results",
        envvar=RESULTS_ENV,
        show_envvar=True,
        metavar="PATH",
        help=f"Results store (SQLite file, or a folder holding results.db). Default: ./{DEFAULT_RESULTS_PATH}.",
    )


def command_group(name: str, help: str) -> typer.Typer:
    """A command group (``cardiobench NAME ...``) with the settings every group shares: help when called
    without a subcommand, no shell-completion commands, rich markup in help."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, rich_markup_mode="rich")
