import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread (no OpenMP barriers), and the timing is steadier on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
