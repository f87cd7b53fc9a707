"""The plugin manager: built-ins and third-party plugins, registered through the same hooks.

Built-in component modules are listed in ``DEFAULT_PLUGINS`` and registered exactly like a third-party
distribution's ``cardiobench`` entry point. The built-in commands are not plugins: the CLI
(``cardiobench.cli``) adds them itself, then those of third-party ``register_commands`` hooks; this
module imports no CLI framework. Third-party entry points are loaded one at a time: a
plugin that fails to import or to register is recorded in ``failures`` (which distribution, what
error) and skipped, so the rest keep working. "Fails" means any exception, and any other
``BaseException`` too (``sys.exit()``, ``GeneratorExit``, a custom subclass), except
``KeyboardInterrupt``, which still stops the program. The CLI records its command name clashes here
too (a command whose name is already taken, by a built-in or a plugin registered earlier, is not added).

Environment:
- ``CARDIOBENCH_LOAD_PLUGINS=a,b`` loads only those third-party plugins (distribution or entry-point
  names); set but empty loads the built-ins only.
- ``CARDIOBENCH_STRICT_PLUGINS=1`` turns load and registration failures into errors.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from cardiobench import __version__, hookspecs
from cardiobench.errors import CardiobenchError, IncompatibleError, PluginLoadError
from cardiobench.registry import KINDS, Component, Registry

ENTRY_POINT_GROUP = "cardiobench"

#: built-in component plugin modules, each a module with ``@hookimpl`` functions (the built-in commands are
#: added by ``cardiobench.cli``, not through the plugin manager)
DEFAULT_PLUGINS: tuple[str, ...] = (
    "cardiobench.data.plugin",
    "cardiobench.metrics.plugin",
    "cardiobench.diffusion.plugin",
    "cardiobench.models.plugin",
    "cardiobench.conditioning.plugin",
    "cardiobench.autoencoders.plugin",
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used."""

    distribution: str
    plugin: str
    stage: str  # "import" or "register"
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"distribution": self.distribution, "plugin": self.plugin, "stage": self.stage, "error": self.error}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _strict() -> bool:
    return os.environ.get("CARDIOBENCH_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def _format_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def describe_exception(exc: BaseException, where: str) -> str:
    """One line for a plugin's failure; ``where`` is e.g. "at import" or "in register_metrics"."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"called sys.exit({code}) {where}"
    return _format_exc(exc)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus plugin origins, isolated failures and cached registries."""

    def __init__(self) -> None:
        super().__init__("cardiobench")
        self.add_hookspecs(hookspecs)
        # (source, failure); source is "import", "components" or "commands", so that rebuilding the
        # registries or the CLI replaces that source's failures instead of repeating or losing them
        self._failures: list[tuple[str, PluginFailure]] = []
        self._origins: dict[str, tuple[str, str]] = {}
        self._registries: dict[str, Registry] | None = None
        self._conflicts: dict[tuple[str, str], str] = {}

    # -- registration --------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None, origin: tuple[str, str] | None = None):
        plugin_name = super().register(plugin, name=name)
        if plugin_name is not None:
            self._origins[plugin_name] = origin or ("cardiobench", __version__)
        self._registries = None
        return plugin_name

    def unregister(self, plugin: Any = None, name: str | None = None):
        result = super().unregister(plugin=plugin, name=name)
        self._registries = None
        return result

    def origin(self, plugin_name: str) -> tuple[str, str]:
        return self._origins.get(plugin_name, ("unknown", ""))

    @property
    def failures(self) -> list[PluginFailure]:
        """Every plugin that failed to import or register (or clashed), in the order found."""
        return [failure for _, failure in self._failures]

    def record_failure(self, failure: PluginFailure, source: str) -> None:
        """Add ``failure`` to ``failures`` (raise ``PluginLoadError`` instead in strict mode). ``source`` names
        who found it ("import", "components", or "commands" for the CLI), see ``forget_failures``."""
        if _strict():
            raise PluginLoadError(
                f"plugin {failure.plugin!r} from {failure.distribution} failed to {failure.stage}: {failure.error}",
                "fix or uninstall it, or unset CARDIOBENCH_STRICT_PLUGINS to skip it",
            )
        self._failures.append((source, failure))

    def forget_failures(self, source: str) -> None:
        """Drop the failures recorded by ``source``, before it checks every plugin again."""
        self._failures = [(s, f) for s, f in self._failures if s != source]

    def load_builtins(self) -> None:
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(module, name=module_name, origin=("cardiobench", __version__))

    def load_entry_points(self) -> None:
        wanted_env = os.environ.get("CARDIOBENCH_LOAD_PLUGINS")
        wanted = None
        if wanted_env is not None:
            wanted = {_normalise(n) for n in wanted_env.split(",") if n.strip()}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ep.value.split(":")[0]
            dist_version = dist.version if dist is not None else ""
            if wanted is not None and _normalise(dist_name) not in wanted and _normalise(ep.name) not in wanted:
                continue
            if self.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
                self.register(module, name=ep.name, origin=(dist_name, dist_version))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin must not take the others down, not even by sys.exit()
                failure = PluginFailure(dist_name, ep.name, "import", describe_exception(exc, "at import"))
                self.record_failure(failure, "import")

    # -- registries ----------------------------------------------------------------------
    def registries(self) -> dict[str, Registry]:
        """Every registry, built by calling each plugin's register hooks one plugin at a time."""
        if self._registries is None:
            self.forget_failures("components")
            self._conflicts = {}
            regs = {kind: Registry(kind) for kind in KINDS}
            for kind, hook_name in KINDS.items():
                for impl in getattr(self.hook, hook_name).get_hookimpls():
                    self._register_from(impl, regs[kind], hook_name)
            self._registries = regs
        return self._registries

    def _register_from(self, impl: Any, registry: Registry, hook_name: str) -> None:
        origin, version = self.origin(impl.plugin_name)
        pending: list[tuple[tuple, dict]] = []

        def register(name: str, factory: Any, summary: str | None = None, **metadata: Any) -> None:
            pending.append(((name, factory), {"summary": summary, **metadata}))

        try:
            impl.function(*([register] if impl.argnames else []))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            failure = PluginFailure(origin, impl.plugin_name, "register", describe_exception(exc, f"in {hook_name}"))
            self.record_failure(failure, "components")
            return
        for (name, factory), meta in pending:
            if name in registry:
                other = registry.get(name).origin
                message = f"{registry.kind} {name!r} is registered twice: by {other} and by {origin}"
                self._conflicts[(registry.kind, name)] = message
                self.record_failure(PluginFailure(origin, impl.plugin_name, "register", message), "components")
                continue
            try:
                registry.add(name, factory, origin=origin, version=version, **meta)
            except CardiobenchError as exc:
                self.record_failure(PluginFailure(origin, impl.plugin_name, "register", str(exc)), "components")

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``; a clear error if unknown or claimed twice."""
        regs = self.registries()
        if (kind, name) in self._conflicts:
            hint = "uninstall one of them, or restrict loading with CARDIOBENCH_LOAD_PLUGINS"
            raise CardiobenchError(self._conflicts[(kind, name)], hint)
        return regs[kind].get(name)


_pm: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (built-ins + entry points), created on first use."""
    global _pm
    if _pm is None:
        pm = PluginManager()
        pm.load_builtins()
        pm.load_entry_points()
        _pm = pm
    return _pm


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests, or after installing a plugin in-process)."""
    global _pm
    _pm = None


def get_component(kind: str, name: str) -> Component:
    return get_plugin_manager().get(kind, name)


def registry(kind: str) -> Registry:
    return get_plugin_manager().registries()[kind]


def check_compatible(
    *,
    noise: str | None = None,
    sampler: str | None = None,
    conditioning: str | None = None,
    task: str | None = None,
    representation: str | None = None,
) -> None:
    """Raise ``IncompatibleError`` before any work starts if the named components can't work together.

    Rules, all from registration metadata: a sampler's ``families`` must contain the noise process's
    ``family``, and so must a representation's (if given); a conditioning method's ``families`` (if given)
    must contain it too, its ``samplers`` (if given) must contain the sampler, and its ``tasks`` (if given) must
    contain the task.
    """
    pm = get_plugin_manager()
    family = pm.get("noise", noise).metadata.get("family") if noise else None
    # each component's `families` (if given) must contain the noise process's family
    checks = (("representation", representation, "does not fit"), ("sampler", sampler, "does not support"),
              ("conditioning", conditioning, "does not support"))
    for kind, name, verb in checks:
        fits = tuple(pm.get(kind, name).metadata.get("families", ())) if name else ()
        if family is not None and fits and family not in fits:
            raise IncompatibleError(f"{kind} {name!r} {verb} noise process {noise!r} (family {family!r})",
                                    f"{name!r} supports: {', '.join(fits)}; see `cardiobench plugins`")
    if conditioning:
        meta = pm.get("conditioning", conditioning).metadata
        samplers = tuple(meta.get("samplers", ()))
        if sampler and samplers and sampler not in samplers:
            raise IncompatibleError(
                f"conditioning {conditioning!r} cannot be used with sampler {sampler!r}",
                f"use one of: {', '.join(samplers)}",
            )
        tasks = tuple(meta.get("tasks", ()))
        if task and tasks and task not in tasks:
            raise IncompatibleError(
                f"conditioning {conditioning!r} does not apply to task {task!r}",
                f"it applies to: {', '.join(tasks)}",
            )
