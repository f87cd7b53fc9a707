"""Typer options shared by the commands that read or write the results store."""

from __future__ import annotations

import typer

from cardiobench.results.store import DEFAULT_RESULTS_PATH, RESULTS_ENV


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
