"""The fixed reference segmenter (MONAI BasicUNet, default features) at 32x32: one training step of its recipe
(augmentation, forward, DiceCE loss, backward, AdamW update; batch 32) and prediction throughput (1,024 images)."""

from __future__ import annotations

import numpy as np
import torch
from monai.losses import DiceCELoss

from benchmarks.common import sync
from cardiobench.downstream.segmenter import Segmenter, SegmenterSpec, augment_batch, build_network
from cardiobench.engine.loop import TrainLoop

RES, BATCH, N_PREDICT = 32, 32, 1024


def _pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, RES, RES, generator=g)
    y = torch.randint(0, 4, (n, 1, RES, RES), generator=g)
    return x, y


def test_training_step(benchmark, device):
    benchmark.group = "segmenter (BasicUNet 16-16-32-64-128-16, 32x32)"
    spec = SegmenterSpec()
    model = build_network(spec).to(device).train()
    loop = TrainLoop(torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay))
    loss_fn = DiceCELoss(include_background=True, to_onehot_y=True, softmax=True, batch=True)
    x_all, y_all = _pairs(BATCH)
    gen = torch.Generator().manual_seed(0)

    def run():
        x, y = augment_batch(x_all, y_all, gen)
        loop.update(loss_fn(model(x.to(device)), y.to(device)))
        sync()

    benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())
    benchmark.extra_info["images_per_s"] = round(BATCH / benchmark.stats.stats.mean, 1)


def test_predict(benchmark, device):
    benchmark.group = "segmenter (BasicUNet 16-16-32-64-128-16, 32x32)"
    spec = SegmenterSpec()
    seg = Segmenter(model=build_network(spec).to(device).eval().requires_grad_(False), spec=spec)
    images = _pairs(N_PREDICT)[0][:, 0].numpy()

    def run():
        out = seg.predict(images)
        sync()
        return out

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out.shape == (N_PREDICT, RES, RES) and out.dtype == np.uint8
    benchmark.extra_info["images_per_s"] = round(N_PREDICT / benchmark.stats.stats.mean, 1)
