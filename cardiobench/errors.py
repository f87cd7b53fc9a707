"""User-facing errors: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import click


class CardiobenchError(click.ClickException):
    """An error the user can fix. ``str(err)`` is the one-line message shown by the CLI.

    ``hint`` (optional) says what to do about it and is appended after " - ". Subclassing
    ``click.ClickException`` makes every command print ``Error: <message>`` and exit with code 2,
    also under ``typer.testing.CliRunner``.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        full = message if not hint else f"{message} - {hint}"
        super().__init__(" ".join(full.split("\n")))


class UnknownComponentError(CardiobenchError):
    """A plugin name that no registry knows."""


class IncompatibleError(CardiobenchError):
    """A combination of components that cannot work together."""


class PluginLoadError(CardiobenchError):
    """A third-party plugin failed to import or register (raised only in strict mode)."""


class DataError(CardiobenchError):
    """Bad input data: corrupt file, wrong labels, missing folder..."""
