"""The terminal reporter: rich progress bars with counts, rates and ETAs, for the library's ``Progress`` calls.

On a terminal each task is a live bar (``sample ━━━━╸  120/500 step  3.1 step/s  0:00:39 < 0:02:03
items 64/256 samples``). Elsewhere (a log file, CI, ``2>log``) a plain line every ``LOG_SECONDS`` and one at
the end, so a long run is never silent. Everything goes to the console it is given (stderr in every command,
so ``--json`` keeps stdout clean and still shows progress).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as RichBars,
)
from rich.text import Text

from cardiobench.progress import Progress, ProgressTask

#: interval of the plain progress lines when the console is not a terminal (seconds)
LOG_SECONDS = 30.0


def _fields(fields: dict[str, Any]) -> str:
    return "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items() if k != "unit" and v is not None)


class _RateColumn(ProgressColumn):
    """``3.1 step/s`` from rich's speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text("-" if not speed else f"{speed:.3g} {unit}/s", style="progress.data.speed")


class _FieldsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(_fields(task.fields))


class _BarTask(ProgressTask):
    def __init__(self, bars: RichBars, label: str, total: int | None, unit: str, completed: int,
                 fields: dict[str, Any]) -> None:
        super().__init__(total, completed)
        self.fields.update(fields)
        self._bars = bars
        self._id = bars.add_task(label, total=total, completed=completed, unit=unit, **fields)
        bars.start()

    def update(self, completed: int | None = None, *, advance: int = 0, **fields: Any) -> None:
        super().update(completed, advance=advance, **fields)
        self._bars.update(self._id, completed=self.completed, **fields)

    def close(self) -> None:
        self._bars.stop()


class _LineTask(ProgressTask):
    """Not a terminal: ``label 120/500 step  3.1 step/s  39 s  ETA 123 s  fields`` every LOG_SECONDS."""

    def __init__(self, console: Console, label: str, total: int | None, unit: str, completed: int,
                 fields: dict[str, Any]) -> None:
        super().__init__(total, completed)
        self.fields.update(fields)
        self._console, self._label, self._unit = console, label, unit
        self._t0 = self._last = time.perf_counter()
        self._start = completed

    def _line(self) -> None:
        dt = time.perf_counter() - self._t0
        done = self.completed - self._start
        rate = done / dt if dt > 0 and done > 0 else None
        parts = [f"{self._label} {self.completed}/{self.total if self.total is not None else '?'} {self._unit}"]
        if rate:
            parts.append(f"{rate:.3g} {self._unit}/s")
        parts.append(f"{dt:.0f} s")
        if rate and self.total is not None and self.completed < self.total:
            parts.append(f"ETA {(self.total - self.completed) / rate:.0f} s")
        extra = _fields(self.fields)
        self._console.print("  ".join(parts + ([extra] if extra else [])), highlight=False, markup=False,
                            soft_wrap=True)  # one line per report, however wide
        self._last = time.perf_counter()

    def update(self, completed: int | None = None, *, advance: int = 0, **fields: Any) -> None:
        super().update(completed, advance=advance, **fields)
        if time.perf_counter() - self._last > LOG_SECONDS:
            self._line()

    def close(self) -> None:
        if self.completed > self._start:
            self._line()


class RichProgress(Progress):
    """The CLI's reporter. ``enabled=False`` shows nothing (``--quiet``-style callers)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled

    def task(self, label: str, total: int | None, *, unit: str = "it", completed: int = 0,
             **fields: Any) -> ProgressTask:
        if not self.enabled:
            return super().task(label, total, unit=unit, completed=completed, **fields)
        if not self.console.is_terminal:
            return _LineTask(self.console, label, total, unit, completed, fields)
        bars = RichBars(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[unit]}"), _RateColumn(), TimeElapsedColumn(), TextColumn("<"),
                        TimeRemainingColumn(), _FieldsColumn(), console=self.console, transient=False)
        return _BarTask(bars, label, total, unit, completed, fields)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)


def terminal_progress(enabled: bool = True) -> RichProgress:
    """The reporter every command uses: rich on stderr."""
    from cardiobench.cli.output import console

    return RichProgress(console(stderr=True), enabled=enabled)
