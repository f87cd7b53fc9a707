"""Per-step sampler overhead (everything but the network) vs diffusers' schedulers. Not a test; run:

    .venv/bin/python tests/diffusion/step_overhead.py [threads] [repeats]

The network is a constant tensor, so the time per step is the sampler's own cost: our ``iter_sample`` loop
vs a loop of diffusers' ``scheduler.step``, batch 64 x 4 x 32 x 32, float32, CPU. The first step (buffer
allocation) is excluded on both sides; min and median over repeats are reported.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from cardiobench.diffusion import DDIMSampler, DDPMSampler, GaussianProcess

SHAPE = (64, 4, 32, 32)


def ours(sampler, steps, model):
    it = sampler.iter_sample(model, SHAPE, generator=torch.Generator().manual_seed(0))
    next(it)
    t0, k = time.perf_counter(), 0
    for _ in it:
        k += 1
        if k == steps:
            break
    return (time.perf_counter() - t0) / k


def theirs(scheduler, steps, model, **kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=g)
    ts = scheduler.timesteps
    with torch.inference_mode():
        x = scheduler.step(model(x, ts[0]), ts[0], x, generator=g, **kw).prev_sample
        t0, k = time.perf_counter(), 0
        for t in ts[1:steps + 1]:
            x = scheduler.step(model(x, t), t, x, generator=g, **kw).prev_sample
            k += 1
    return (time.perf_counter() - t0) / k


def main(threads: int = 2, repeats: int = 15) -> None:
    torch.set_num_threads(threads)
    out = torch.randn(SHAPE) * 0.5

    def model(x, t):
        return out

    p = GaussianProcess()
    ddim = DDIMScheduler(beta_schedule="squaredcos_cap_v2")
    ddim.set_timesteps(50)
    ddim_noclip = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False)
    ddim_noclip.set_timesteps(50)
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    ddpm.set_timesteps(1000)
    cases = [
        ("DDIM-50 eta=0 clip", lambda: ours(DDIMSampler(p, 50), 49, model),
         lambda: theirs(ddim, 49, model, use_clipped_model_output=True)),
        ("DDIM-50 eta=0 no clip", lambda: ours(DDIMSampler(p, 50, clip_x0=False), 49, model),
         lambda: theirs(ddim_noclip, 49, model)),
        ("DDIM-50 eta=1 clip", lambda: ours(DDIMSampler(p, 50, eta=1.0), 49, model),
         lambda: theirs(ddim, 49, model, eta=1.0, use_clipped_model_output=True)),
        ("DDPM-1000 clip", lambda: ours(DDPMSampler(p), 100, model), lambda: theirs(ddpm, 100, model)),
    ]
    for name, fo, ft in cases:
        a, b = [], []
        for _ in range(repeats):
            a.append(fo())
            b.append(ft())
        print(f"{name:22s} threads={threads}  ours min/median {min(a) * 1e3:.3f}/{statistics.median(a) * 1e3:.3f} ms"
              f"  diffusers {min(b) * 1e3:.3f}/{statistics.median(b) * 1e3:.3f} ms"
              f"  ratio of medians {statistics.median(a) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
