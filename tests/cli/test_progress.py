"""The CLI's reporter off a terminal: one plain line per report (never wrapped), with counts, rate and fields."""

from __future__ import annotations

import io

from rich.console import Console

from cardiobench.cli import progress as cli_progress


def test_plain_lines_off_a_terminal_are_never_wrapped(monkeypatch):
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=False)
    monkeypatch.setattr(cli_progress, "LOG_SECONDS", -1.0)  # a line at every update
    reporter = cli_progress.RichProgress(console)
    with reporter.task("train", total=500, unit="step", loss="-", ips="-") as bar:
        bar.update(275, loss="0.0005", loss_avg="0.0004", ips="20")
    lines = [line for line in buf.getvalue().splitlines() if line]
    assert lines and all(line.startswith("train ") for line in lines), lines
    assert "275/500 step" in lines[0] and "loss avg 0.0004" in lines[0] and "ips 20" in lines[0]
