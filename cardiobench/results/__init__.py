"""The results store (SQLite) and the leaderboard built on it.

- ``store``: ``ResultStore`` and ``RunRecord``, where every run is kept.
- ``environment``: what a run ran on (versions, plugins, device, git revision).
- ``report``: ranking runs into boards and rendering them (rich table, Markdown, CSV, JSON, HTML).

The ``--results PATH`` option every command shares lives with the CLI (``cardiobench.cli.options``).
"""

from cardiobench.results.store import (
    DEFAULT_RESULTS_PATH,
    RESULTS_ENV,
    SCHEMA_VERSION,
    TASKS,
    ResultStore,
    RunRecord,
    SkippedRow,
    StoreError,
    default_results_path,
    resolve_results_path,
)

__all__ = [
    "DEFAULT_RESULTS_PATH",
    "RESULTS_ENV",
    "SCHEMA_VERSION",
    "TASKS",
    "ResultStore",
    "RunRecord",
    "SkippedRow",
    "StoreError",
    "default_results_path",
    "resolve_results_path",
]
