"""User-facing errors: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

try:  # typer >= 0.20 ships its own copy of click; its commands only handle that copy's exceptions
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import ClickException as _ClickException


class CardiobenchError(_ClickException):
    """An error the user can fix. ``str(err)`` is the one-line message shown by the CLI.

    ``hint`` (optional) says what to do about it and is appended after " - ". Subclassing
    typer's ``ClickException`` makes every command print ``Error: <message>`` and exit with code 2,
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
