"""The ``cardiobench`` command line: a Typer app whose commands all come from plugins.

Built-in command groups register through the ``register_commands`` hook exactly like
third-party ones. ``main`` turns every error into one line on stderr (exit code 2 for errors the
user can fix); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import typer

from cardiobench import __version__
from cardiobench.errors import CardiobenchError, _ClickException, os_error
from cardiobench.plugins import get_plugin_manager

INTERRUPTED = "Interrupted. Finished work is saved; run the same command again to continue."


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cardiobench {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """A fresh Typer app with every plugin's commands."""
    app = typer.Typer(
        name="cardiobench",
        help="Benchmark diffusion models on cardiac segmentation masks (ACDC).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    ) -> None:
        """Benchmark diffusion models on cardiac segmentation masks (ACDC)."""
        if debug:
            os.environ["CARDIOBENCH_DEBUG"] = "1"

    get_plugin_manager().add_commands(app)
    return app


def _one_line_warnings(debug: bool) -> None:
    """Show each distinct warning once, as ``Warning: message`` on stderr (full form with --debug)."""
    if debug:
        return
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings API
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            typer.echo(f"Warning: {text}", err=True)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CARDIOBENCH_DEBUG") == "1"
    saved = warnings.showwarning
    _one_line_warnings(debug)
    try:
        _main(args, debug)
    finally:
        warnings.showwarning = saved


def _main(args: list[str], debug: bool) -> None:
    try:
        command = typer.main.get_command(build_app())
        code = command.main(args=args, prog_name="cardiobench", standalone_mode=False)
        if code == 130:  # typer turned Ctrl-C into Exit(130) and returned its code
            typer.echo(INTERRUPTED, err=True)
    except typer.Exit as exc:
        code = exc.exit_code
    except _ClickException as exc:
        if debug and isinstance(exc, CardiobenchError):
            traceback.print_exc()
        exc.show()
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo(INTERRUPTED, err=True)
        code = 130
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be: the user's to fix
        if debug:
            traceback.print_exc()
        err = os_error(exc)
        err.show()
        code = err.exit_code
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        msg = str(exc).strip().splitlines()
        typer.echo(
            f"Error: unexpected {type(exc).__name__}: {msg[0] if msg else ''} (run with --debug for the traceback)",
            err=True,
        )
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
