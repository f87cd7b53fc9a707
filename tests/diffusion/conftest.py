"""The diffusion tests use small tensors: one intra-op thread is faster for them, and immune to the
oversubscription slow-down of OpenMP spin-waiting when other processes share the cores."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
