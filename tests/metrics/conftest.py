"""Fixtures for the metric tests: one phantom cache for the session, hand-made masks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def metrics_cache_dir(tmp_path_factory) -> Path:
    """One cache folder for the session (shared with tests/cli/test_evaluate.py), so the phantom is built
    once per size."""
    path = tmp_path_factory.getbasetemp() / "cardiobench-metrics-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def shared_cache(monkeypatch, metrics_cache_dir) -> Path:
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(metrics_cache_dir))
    return metrics_cache_dir


def _load(size: int, cache: Path) -> dict:
    from cardiobench import plugins
    from cardiobench.metrics.evaluator import load_splits

    old = os.environ.get("CARDIOBENCH_CACHE_DIR")
    os.environ["CARDIOBENCH_CACHE_DIR"] = str(cache)
    try:
        plugins.reset_plugin_manager()
        return load_splits("phantom", size)
    finally:
        if old is None:
            os.environ.pop("CARDIOBENCH_CACHE_DIR", None)
        else:
            os.environ["CARDIOBENCH_CACHE_DIR"] = old
        plugins.reset_plugin_manager()


@pytest.fixture(scope="session")
def phantom64(metrics_cache_dir) -> dict:
    """train/val/test SliceSets of the default phantom at 64 px."""
    return _load(64, metrics_cache_dir)


@pytest.fixture(scope="session")
def phantom32(metrics_cache_dir) -> dict:
    return _load(32, metrics_cache_dir)
