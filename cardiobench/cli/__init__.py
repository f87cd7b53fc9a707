"""The ``cardiobench`` command line: a Typer app with the built-in commands and those of plugins.

The built-in commands are added directly (``cardiobench.cli.commands.BUILTIN_COMMANDS``); third-party
plugins add theirs through the ``register_commands`` hook, and can neither replace nor remove a
built-in one. ``main`` turns every error into one line on stderr (``Error: <message>``, exit code 2 for
a ``CardiobenchError``, an error the user can fix); ``--debug`` shows the traceback. The library itself
imports neither typer nor rich: this package is the only place that knows about them.

Startup stays light: ``--version`` and ``--help`` (and no arguments) build the app from the command
modules alone (``cardiobench.cli.*`` and third-party plugins), so they never import torch. Every other
command first applies the thread policy of ``cardiobench.threads`` (global ``--threads N``,
``CARDIOBENCH_THREADS``), before anything imports torch.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
import types
import warnings
from typing import Any

import typer

from cardiobench import __version__, plugins
from cardiobench.cli.commands import add_builtin_commands, add_plugin_commands
from cardiobench.errors import CardiobenchError, os_error
from cardiobench.plugins import PluginManager, get_plugin_manager
from cardiobench.threads import ENV_VAR as THREADS_ENV_VAR
from cardiobench.threads import parse_threads, thread_policy

try:  # typer >= 0.20 ships its own copy of click; its commands only raise that copy's exceptions
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer runs on the click package
    from click import ClickException, UsageError

INTERRUPTED = "Interrupted. Finished work is saved; run the same command again to continue."
#: the thread policy's notice (``cardiobench.threads``), shown by the root callback once a command runs
_pending_notice: list[str] = []
#: commands that do no torch work: the thread notice would only be noise there
NO_COMPUTE_COMMANDS = frozenset({"plugins", "leaderboard", "cache"})


class _LazyModule(types.ModuleType):
    """Stands for a module that is imported on first attribute access (then every access is forwarded,
    so patching the real module still works)."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def lazy_module(name: str) -> types.ModuleType:
    """``name``, imported when first used: command modules use it for modules that import torch, so that
    loading the commands for ``--help`` stays fast."""
    return sys.modules.get(name) or _LazyModule(name)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cardiobench {__version__}")
        raise typer.Exit()


def _validate_threads(value: int | None) -> int | None:
    if value is not None:
        parse_threads(value, "--threads")  # main() already applied it, before torch was imported
    return value


def show_error(exc: CardiobenchError) -> None:
    """``Error: <message>`` on stderr, as the CLI shows an error the user can fix."""
    typer.echo(f"Error: {exc.format_message()}", err=True)


def build_app(pm: PluginManager | None = None) -> typer.Typer:
    """A fresh Typer app with the built-in commands, then the commands of every plugin registered with
    ``pm`` (default: the global plugin manager)."""
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
        ctx: typer.Context,
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
        threads: int = typer.Option(
            None, "--threads", callback=_validate_threads, metavar="N",
            help=f"CPU threads of torch (or {THREADS_ENV_VAR}=N), given before the command. Default: "
                 "OMP_NUM_THREADS if set, else the CPUs this process may use (affinity, container quota); "
                 "waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE) unless you set it.",
        ),
    ) -> None:
        """Benchmark diffusion models on cardiac segmentation masks (ACDC)."""
        if debug:
            os.environ["CARDIOBENCH_DEBUG"] = "1"
        if ctx.invoked_subcommand not in NO_COMPUTE_COMMANDS:
            for line in _pending_notice:  # the thread policy lowered threads: said once a command really runs
                typer.echo(line, err=True)
        _pending_notice.clear()

    add_builtin_commands(app)
    add_plugin_commands(app, pm or get_plugin_manager())
    return app


def _commands_manager() -> PluginManager:
    """A plugin manager with the third-party plugins only, for their commands (the built-in component
    modules, which import torch, are left out; commands that run use the global manager anyway)."""
    pm = PluginManager()
    pm.load_entry_points()
    return pm


def _root_options(args: list[str]) -> tuple[str | None, bool]:
    """(value of the global ``--threads`` or None, whether this only shows help or the version).

    Global options come before the command (click stops at the first argument that is not an option).
    """
    threads: str | None = None
    version = False
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        arg = args[i]
        if arg == "--threads":
            threads = args[i + 1] if i + 1 < len(args) else None
            i += 2
            continue
        if arg.startswith("--threads="):
            threads = arg.partition("=")[2]
        version = version or arg == "--version"
        i += 1
    return threads, version or not args or "--help" in args


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


def quiet_flags(command: Any) -> Any:
    """``command`` (and its subcommands) with no type column for on/off flags: Typer's help shows ``<bool>``
    beside every flag, which reads as if ``--force`` took a value."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    make_help = command.get_help_option  # click builds --help on demand

    def get_help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        quiet_flags(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CARDIOBENCH_DEBUG") == "1"
    threads, help_only = _root_options(args)
    saved = warnings.showwarning
    _one_line_warnings(debug)
    try:
        with contextlib.ExitStack() as stack:
            if not help_only:  # before any command module imports torch
                try:
                    decision = stack.enter_context(
                        thread_policy(None if threads is None else parse_threads(threads, "--threads")))
                except CardiobenchError as exc:
                    show_error(exc)
                    sys.exit(exc.exit_code)
                _pending_notice[:] = [decision.notice()] if decision.notice() else []
            _main(args, debug, help_only=help_only)
    finally:
        warnings.showwarning = saved
        _pending_notice.clear()


def _main(args: list[str], debug: bool, help_only: bool = False) -> None:
    try:
        # help and version need only the command modules; the global manager, if a caller made one, has all
        pm = _commands_manager() if help_only and plugins._pm is None else None
        command = quiet_flags(typer.main.get_command(build_app() if pm is None else build_app(pm)))
        code = command.main(args=args, prog_name="cardiobench", standalone_mode=False)
        if code == 130:  # typer turned Ctrl-C into Exit(130) and returned its code
            typer.echo(INTERRUPTED, err=True)
    except typer.Exit as exc:
        code = exc.exit_code
    except CardiobenchError as exc:  # the user's to fix: one line, exit code 2
        if debug:
            traceback.print_exc()
        show_error(exc)
        code = exc.exit_code
    except ClickException as exc:
        if isinstance(exc, UsageError) and not debug:  # click prints usage, a hint and the error: one line
            where = exc.ctx.command_path if exc.ctx is not None else "cardiobench"
            typer.echo(f"Error: {exc.format_message().rstrip('.')} - see '{where} --help'", err=True)
        else:
            exc.show()
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo(INTERRUPTED, err=True)
        code = 130
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be: the user's to fix
        if debug:
            traceback.print_exc()
        err = os_error(exc)
        show_error(err)
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
