"""Progress reporting for long work, without a terminal library.

Library code (training, sampling, evaluation) reports through a :class:`Progress` it is handed; the default,
``SILENT``, shows nothing, so a notebook call stays quiet unless asked. The CLI hands in a rich-based
reporter (``cardiobench.cli.progress``) with bars, rates and ETAs; a plugin or a script may pass its own
subclass (e.g. one that logs)::

    with progress.task("sample", total=steps * n, unit="step") as bar:
        for ...:
            bar.update(advance=1, samples=f"{done}/{n}")
    progress.log("evaluate 64 samples")

``task`` fields are free-form keyword values shown beside the bar (``loss="0.0123"``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SILENT", "Progress", "ProgressTask", "resolve"]


class ProgressTask:
    """One bar. ``update(completed=..., advance=..., **fields)``; a context manager that closes it."""

    def __init__(self, total: int | None = None, completed: int = 0) -> None:
        self.total = total
        self.completed = completed
        self.fields: dict[str, Any] = {}

    def update(self, completed: int | None = None, *, advance: int = 0, **fields: Any) -> None:
        if completed is not None:
            self.completed = int(completed)
        self.completed += int(advance)
        self.fields.update(fields)

    def close(self) -> None:
        """Called once when the work ends (or fails)."""

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Where long work reports. This base class shows nothing (``SILENT``); subclasses render it."""

    #: whether messages and bars are shown at all (work that would only print may be skipped when False)
    enabled: bool = False

    def task(self, label: str, total: int | None, *, unit: str = "it", completed: int = 0,
             **fields: Any) -> ProgressTask:
        """A new bar for ``total`` units of ``unit`` (``None``: unknown length)."""
        task = ProgressTask(total, completed)
        task.fields.update(fields)
        return task

    def log(self, message: str) -> None:
        """One line of information (rich markup allowed; plain reporters strip nothing)."""


SILENT = Progress()


def resolve(progress: Progress | None) -> Progress:
    """``progress`` or the silent reporter."""
    return SILENT if progress is None else progress
