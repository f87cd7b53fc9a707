"""Fixtures of tests/distributed (the torchrun helpers are in ``torchrun_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The in-process reference runs on one torch thread, like each torchrun rank."""
