"""The commands of the ``cardiobench`` app: the built-in ones, then those of third-party plugins.

Built-in commands are not plugins: ``add_builtin_commands`` imports each module of ``BUILTIN_COMMANDS``
and calls its ``register_commands(app)``. Third-party plugins add theirs through the
``register_commands`` hook (``add_plugin_commands``), one plugin at a time: a hook that raises has none
of its commands added; a command or group whose name is already taken (by a built-in, or by a plugin
registered before) is not added either, and commands a hook removed are put back, so a plugin can never
replace or remove a built-in command. Each of these is recorded in the plugin manager's ``failures``
(an error in strict mode), where ``cardiobench plugins`` shows it.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.main import get_command_name, solve_typer_info_defaults
from typer.models import CommandInfo

from cardiobench.plugins import PluginFailure, PluginManager, describe_exception

#: the built-in command modules, in the order their commands are added; each has ``register_commands(app)``.
#: Imported when the app is built (they import ``cardiobench.cli``, which must not import them back).
BUILTIN_COMMANDS: tuple[str, ...] = (
    "cardiobench.cli.plugins_cmd",
    "cardiobench.cli.leaderboard_cmd",
    "cardiobench.cli.run_cmd",
    "cardiobench.cli.data_cmd",
    "cardiobench.cli.evaluate_cmd",
    "cardiobench.cli.evaluator_cmd",
    "cardiobench.cli.train_cmd",
    "cardiobench.cli.sample_cmd",
    "cardiobench.cli.bench_cmd",
    "cardiobench.cli.classifier_cmd",
    "cardiobench.cli.autoencoder_cmd",
    "cardiobench.cli.cache_cmd",
    "cardiobench.cli.results_cmd",
)

#: the ``failures`` source of command problems (replaced each time the app is built)
SOURCE = "commands"


def command_names(entry: Any) -> list[str]:
    """The top-level command names a typer registration (``CommandInfo`` or ``TyperInfo``) adds."""
    if isinstance(entry, CommandInfo):
        if entry.name:
            return [entry.name]
        return [get_command_name(entry.callback.__name__)] if entry.callback is not None else []
    name = solve_typer_info_defaults(entry).name
    if name:
        return [name]
    sub = entry.typer_instance  # a group added without a name merges its commands into the parent
    return [n for e in [*sub.registered_commands, *sub.registered_groups] for n in command_names(e)]


def add_builtin_commands(app: typer.Typer) -> None:
    """Add every built-in command to ``app``."""
    for module_name in BUILTIN_COMMANDS:
        importlib.import_module(module_name).register_commands(app)


def add_plugin_commands(app: typer.Typer, pm: PluginManager) -> None:
    """Call every third-party ``register_commands`` hook of ``pm`` on ``app``, one plugin at a time, keeping
    the commands already there (the built-ins) and recording clashes and failures in ``pm.failures``."""
    pm.forget_failures(SOURCE)
    owners = {name: "cardiobench" for e in [*app.registered_commands, *app.registered_groups]
              for name in command_names(e)}
    for impl in pm.hook.register_commands.get_hookimpls():
        origin, _ = pm.origin(impl.plugin_name)
        commands, groups = list(app.registered_commands), list(app.registered_groups)
        try:
            impl.function(*([app] if impl.argnames else []))
            # (list it belongs to, as it was before the hook; the list after the hook)
            changes = ((commands, app.registered_commands), (groups, app.registered_groups))
            added = [
                (before, entry, command_names(entry))
                for before, after in changes
                for entry in _new_entries(before, after)
            ]
            removed = [
                name for before, after in changes for entry in _new_entries(after, before)
                for name in command_names(entry)
            ]
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not take the CLI down, not even by sys.exit()
            app.registered_commands, app.registered_groups = commands, groups
            failure = PluginFailure(origin, impl.plugin_name, "register",
                                    describe_exception(exc, "in register_commands"))
            pm.record_failure(failure, SOURCE)
            continue
        problems = []
        if removed:
            names = ", ".join(repr(n) for n in removed)
            problems.append(f"removed commands registered by others: {names} (kept)")
        for registered, entry, names in added:
            taken = [n for n in names if n in owners]
            for name in taken:
                problems.append(f"command {name!r} is registered twice: by {owners[name]} and by {origin}")
            if not taken:
                registered.append(entry)
                owners.update(dict.fromkeys(names, origin))
        app.registered_commands, app.registered_groups = commands, groups
        for message in problems:
            pm.record_failure(PluginFailure(origin, impl.plugin_name, "register", message), SOURCE)


def _new_entries(before: list[Any], after: list[Any]) -> list[Any]:
    """The entries of ``after`` that are not (the same object) in ``before``."""
    seen = {id(entry) for entry in before}
    return [entry for entry in after if id(entry) not in seen]
