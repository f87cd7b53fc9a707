"""Each noise process's ``q_sample`` (what every training step does first), batch 64, 4x32x32."""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import SHAPE, sync
from cardiobench.plugins import get_component

PROCESSES = {"gaussian": {}, "blurring": {"image_size": SHAPE[-1]}}


@pytest.mark.parametrize("noise", list(PROCESSES))
def test_q_sample(benchmark, noise, device):
    benchmark.group = "q_sample (batch 64, 4x32x32)"
    process = get_component("noise", noise).create(**PROCESSES[noise])
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(SHAPE, generator=g).clamp(-1, 1).to(device)
    eps = torch.randn(SHAPE, generator=g).to(device)
    t = torch.randint(0, process.num_timesteps, (SHAPE[0],), generator=g).to(device)

    def run():
        process.q_sample(x0, t, eps)
        sync()

    benchmark(run)
