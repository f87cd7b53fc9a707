"""Drive the ``cardiobench`` CLI in-process in tests (plugins' tests can use it too).

``invoke`` runs the real entry point (``cardiobench.cli.main``) inside typer's ``CliRunner``
isolation, so tests see exactly what a user sees: one-line errors and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from typer.testing import CliRunner

from cardiobench.cli import main


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr interleaved


def invoke(*args: str, input: str | None = None, env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run ``cardiobench ARGS...`` and return its exit code and output."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, mixed):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode(), mixed.getvalue().decode())


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """The command failed as a user error should: exit code 2, one ``Error: ...`` line on stderr holding every
    ``needle``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
