"""pytest plugin shipped with cardiobench: the ``cardiobench_register`` fixture.

Installed as a ``pytest11`` entry point (``cardiobench``), so every test suite in an environment where
cardiobench is installed can use the fixture without importing anything; ``-p no:cardiobench`` turns it off.

``cardiobench_register(kind, name, factory, summary=None, **metadata)`` registers one component for the
duration of a test through the real pluggy hooks: it builds a small plugin object holding an ``@hookimpl``
``register_<kind>`` function (the hook of ``cardiobench.registry.KINDS[kind]``), registers it on the process-wide
plugin manager (``cardiobench.plugins.get_plugin_manager()``) and returns the registered ``Component``. A name
that is invalid or already taken fails right there, with the registry's message. At teardown every plugin the
fixture registered is unregistered again, so nothing leaks into the next test.
``cardiobench_register.plugin(obj, name=None)`` registers a whole module or object with ``@hookimpl``
functions (several kinds, or commands) the same way::

    def test_my_sampler_passes_the_contract(cardiobench_register):
        cardiobench_register("sampler", "my-sampler", MySampler, families=("linear-gaussian",), order=2)
        ...

This module imports cardiobench lazily: loading the plugin costs nothing until the fixture is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

__all__ = ["ComponentRegistrar", "cardiobench_register"]


class ComponentRegistrar:
    """Registers components in-process through the ``register_*`` hooks; ``close()`` unregisters them all."""

    _ids = itertools.count()

    def __init__(self) -> None:
        self._registered: list[tuple[Any, str]] = []  # (plugin manager, plugin name), in registration order

    def __call__(self, kind: str, name: str, factory: Callable[..., Any], *, summary: str | None = None,
                 origin: tuple[str, str] = ("pytest", "0"), **metadata: Any) -> Any:
        """Register ``factory`` as the ``kind`` component ``name`` (with ``metadata``); returns its ``Component``."""
        from cardiobench.errors import CardiobenchError
        from cardiobench.hookspecs import hookimpl
        from cardiobench.registry import KINDS

        if kind not in KINDS:
            raise CardiobenchError(f"unknown plugin kind {kind!r}", f"use one of: {', '.join(KINDS)}")
        hook_name = KINDS[kind]

        def hook(register):
            register(name, factory, summary=summary, **metadata)

        hook.__name__ = hook_name
        plugin_name = f"cardiobench-register-{kind}-{name}-{next(self._ids)}"
        pm = self.plugin(SimpleNamespace(**{hook_name: hookimpl(hook)}), name=plugin_name, origin=origin)
        failures = [f for f in pm.failures if f.plugin == plugin_name]
        if failures:  # an invalid name, a name already taken: undo and say why
            self._unregister(pm, plugin_name)
            raise CardiobenchError(failures[0].error)
        return pm.get(kind, name)

    def plugin(self, obj: Any, name: str | None = None, origin: tuple[str, str] = ("pytest", "0")) -> Any:
        """Register ``obj`` (a module or object with ``@hookimpl`` functions); returns the plugin manager."""
        from cardiobench.plugins import get_plugin_manager

        pm = get_plugin_manager()
        plugin_name = name or getattr(obj, "__name__", None) or f"cardiobench-register-{next(self._ids)}"
        pm.register(obj, name=plugin_name, origin=origin)
        self._registered.append((pm, plugin_name))
        pm.registries()  # build now: registration failures are recorded (or raised in strict mode) here
        return pm

    @staticmethod
    def _unregister(pm: Any, plugin_name: str) -> None:
        if pm.has_plugin(plugin_name):
            pm.unregister(name=plugin_name)

    def close(self) -> None:
        """Unregister everything, newest first (the plugin manager then rebuilds its registries on next use)."""
        while self._registered:
            self._unregister(*self._registered.pop())


@pytest.fixture
def cardiobench_register() -> Iterator[ComponentRegistrar]:
    """Register cardiobench components in-process for one test: ``cardiobench_register(kind, name, factory,
    **metadata)``; ``cardiobench_register.plugin(module)`` for a module with ``@hookimpl`` functions."""
    registrar = ComponentRegistrar()
    try:
        yield registrar
    finally:
        registrar.close()
