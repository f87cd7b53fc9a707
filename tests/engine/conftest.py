"""A tiny, fast training setup shared by the engine tests (phantom with 1 patient per group, 16x16)."""

import pytest
import torch

from cardiobench.specs import TrainSpec

TINY = dict(
    dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
    noise_options={"num_timesteps": 50}, backbone_options={"size": "tiny"}, batch_size=8, lr=1e-3,
    ema_decay=0.9, warmup_steps=3,
)


@pytest.fixture
def tiny_spec():
    def make(**changes) -> TrainSpec:
        return TrainSpec(**{**TINY, "steps": 6, **changes})

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread (no OpenMP barriers), and the timing is steadier on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
