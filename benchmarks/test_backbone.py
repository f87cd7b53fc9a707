"""The U-Net backbone per size: forward (inference) and forward + backward, batch 16 of 4x32x32."""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import sync
from cardiobench.models.unet import SIZES, build_unet

BATCH, RES = 16, 32


def _inputs(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 4, RES, RES, generator=g).to(device)
    t = torch.randint(0, 1000, (BATCH,), generator=g).to(device)
    return x, t


@pytest.mark.parametrize("size", list(SIZES))
def test_forward(benchmark, size, device):
    benchmark.group = "backbone forward (batch 16, 4x32x32)"
    model = build_unet(4, 4, size=size).to(device).eval()
    x, t = _inputs(device)

    def run():
        with torch.inference_mode():
            model(x, t)
        sync()

    benchmark.pedantic(run, rounds=5 if size != "base" else 3, warmup_rounds=1)
    benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", list(SIZES))
def test_forward_backward(benchmark, size, device):
    benchmark.group = "backbone forward+backward (batch 16, 4x32x32)"
    model = build_unet(4, 4, size=size).to(device).train()
    x, t = _inputs(device)

    def run():
        model.zero_grad(set_to_none=True)
        model(x, t).square().mean().backward()
        sync()

    benchmark.pedantic(run, rounds=5 if size != "base" else 3, warmup_rounds=1)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
