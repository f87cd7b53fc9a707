"""Settings shared by the benchmark suites (see ``conftest.py`` for the environment variables)."""

from __future__ import annotations

import os

import torch

DEVICE = torch.device(os.environ.get("CARDIOBENCH_BENCH_DEVICE", "cpu"))
#: the reference shape of the sampler and noise benchmarks: batch 64 of 4x32x32 one-hot masks
SHAPE = (64, 4, 32, 32)


def sync() -> None:
    """Wait for the GPU, so a benchmarked call is timed to its end (no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
