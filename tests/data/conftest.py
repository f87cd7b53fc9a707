"""Fixtures for the data tests: a fresh fake ACDC tree, a session-wide cache for the default phantom."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_acdc import build_fake_acdc


@pytest.fixture
def fake_acdc(tmp_path) -> Path:
    """A fresh fake ACDC tree (its ``database`` folder); tests may damage it."""
    return build_fake_acdc(tmp_path)


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory) -> Path:
    """One cache folder for the session, so the default phantom is built only once."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture
def shared_cache(monkeypatch, shared_cache_dir) -> Path:
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(shared_cache_dir))
    return shared_cache_dir
