"""Each sampler's step and its whole loop without a network (batch 64, 4x32x32), per noise process.

``test_step``: the public ``Sampler.step`` (fresh output tensors). ``test_loop``: ``sampler.sample`` over 50
steps with a zero-cost stand-in network (the per-step overhead ``cardiobench bench`` reports, times 50).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import SHAPE, sync
from cardiobench.bench.measure import StandInNetwork
from cardiobench.plugins import get_component

STEPS = 50
PROCESSES = {"gaussian": {}, "blurring": {"image_size": SHAPE[-1]}}


def _sampler(noise: str, sampler: str):
    process = get_component("noise", noise).create(**PROCESSES[noise])
    smp = get_component("sampler", sampler).create(process)
    smp.set_timesteps(STEPS)
    return smp


@pytest.mark.parametrize("noise", list(PROCESSES))
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver++"])
def test_step(benchmark, noise, sampler, device):
    benchmark.group = "sampler step (batch 64, 4x32x32)"
    smp = _sampler(noise, sampler)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(SHAPE, generator=g, device=device)
    m = torch.randn(SHAPE, generator=g, device=device)
    index = STEPS // 2

    def run():
        smp.step(m, index, x, generator=g)
        sync()

    benchmark(run)


@pytest.mark.parametrize("noise", list(PROCESSES))
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver++"])
def test_loop(benchmark, noise, sampler, device):
    benchmark.group = f"sampler loop without network ({STEPS} steps, batch 64, 4x32x32)"
    smp = _sampler(noise, sampler)
    g = torch.Generator(device=device).manual_seed(0)
    stand_in = StandInNetwork(torch.randn(SHAPE, generator=g, device=device))

    def run():
        smp.sample(stand_in, SHAPE, generator=g, device=device)
        sync()

    benchmark(run)
    benchmark.extra_info["steps"] = STEPS
