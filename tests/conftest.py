"""Test guard: installed third-party plugins never leak into unit tests.

Every test starts with ``CARDIOBENCH_LOAD_PLUGINS=""`` (built-ins only) and a fresh plugin manager.
Use the ``register_plugin`` fixture to register an in-process plugin for one test.
"""

from __future__ import annotations

import pytest

from cardiobench import plugins


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("CARDIOBENCH_LOAD_PLUGINS", "")
    monkeypatch.delenv("CARDIOBENCH_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("CARDIOBENCH_DEBUG", raising=False)
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


@pytest.fixture
def register_plugin():
    """Register an object with ``@hookimpl`` functions for the duration of one test."""
    pm = plugins.get_plugin_manager()
    registered: list[str] = []

    def _register(obj, name: str, origin: tuple[str, str] = ("test-plugin", "0.0")):
        pm.register(obj, name=name, origin=origin)
        registered.append(name)
        return pm

    yield _register
    for name in registered:
        if pm.has_plugin(name):
            pm.unregister(name=name)


@pytest.fixture
def one_thread():
    """Run a test with one torch thread: tiny models are faster without OpenMP barriers, and timings stay
    steady on a busy machine. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
