"""The U-Net backbone per size: forward (inference) and forward + backward, batch 16 of 4x32x32."""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import sync
from cardiobench.models.unet import SIZES, build_unet
from cardiobench.plugins import get_component

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


#: volumes: the volume-cpu preset's 3-D U-Net (24 channels, 3x3x3 depthwise) and MONAI's DiffusionModelUNet
VOLUME_BACKBONES = {
    "unet-volume-cpu": ("unet", {"size": "small", "base_channels": 24, "ds_kernel": 3}),
    "monai-unet-small": ("monai-unet", {"size": "small"}),
}


@pytest.mark.parametrize("name", list(VOLUME_BACKBONES))
def test_forward_backward_volumes(benchmark, name, device):
    """One training step's network cost on 8 volumes of 8x32x32 (the volume-cpu preset's batch)."""
    benchmark.group = "backbone forward+backward (batch 8, 4x8x32x32 volumes)"
    kind, options = VOLUME_BACKBONES[name]
    torch.manual_seed(0)
    model = get_component("backbone", kind).create(4, 4, spatial_dims=3, **options).to(device).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, 8, RES, RES, generator=g).to(device)
    t = torch.randint(0, 1000, (8,), generator=g).to(device)

    def run():
        model.zero_grad(set_to_none=True)
        model(x, t).square().mean().backward()
        sync()

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())
