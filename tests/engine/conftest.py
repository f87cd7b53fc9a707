"""A tiny, fast training setup shared by the engine tests (phantom with 1 patient per group, 16x16)."""

import pytest

from cardiobench.specs import TrainSpec

TINY = dict(
    dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
    noise_options={"num_timesteps": 50}, backbone_options={"size": "tiny"}, batch_size=8, lr=1e-3,
    ema_decay=0.9, warmup_steps=3,
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every engine test runs on one torch thread (see ``one_thread`` in tests/conftest.py)."""


@pytest.fixture
def tiny_spec():
    def make(**changes) -> TrainSpec:
        return TrainSpec(**{**TINY, "steps": 6, **changes})

    return make

