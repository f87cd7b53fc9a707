"""Bench tests run on one thread: tiny models are faster without OpenMP barriers, and steadier on a busy machine."""

import pytest

from cardiobench.bench import BenchCase


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every bench test runs on one torch thread (see ``one_thread`` in tests/conftest.py)."""


@pytest.fixture
def tiny_case():
    """A case that measures in well under a second: tiny U-Net, 16x16, batch 4, 3 sampler steps."""

    def make(**changes) -> BenchCase:
        base = dict(backbone_options={"size": "tiny"}, noise_options={"num_timesteps": 20}, resolution=16,
                    batch_size=4, sample_steps=3, warmup=1, repeats=2)
        return BenchCase(**{**base, **changes})

    return make
