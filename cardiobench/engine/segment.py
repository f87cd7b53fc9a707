"""Diffusion segmentation: MRI slices -> label maps, as an ensemble of ``k`` samples per image.

The checkpoint is an image-conditioned model (``controlnet`` or ``concat``). Every image is repeated ``k``
times in the batch (``Condition.repeat``), each copy starts from its own noise, and the ``k`` label maps are
combined by a per-pixel majority vote; the per-pixel disagreement ``1 - votes/k`` is the uncertainty map.
Seeded like ``cardiobench sample``: one CPU generator for the initial and every step's noise.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiobench.conditioning.base import Condition
from cardiobench.data.tensors import images_to_tensor
from cardiobench.diffusion.base import ModelFn
from cardiobench.engine.runner import draw
from cardiobench.engine.sample import load_model, make_model_fn
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import build_conditioning, build_sampler, build_variable, resolve_device
from cardiobench.paths import atomic_write_bytes
from cardiobench.plugins import check_compatible
from cardiobench.progress import Progress

PREDICTIONS_NAME = "segmentations.npz"


@dataclass
class SegmentResult:
    """``votes`` (N, H, W) uint8, ``uncertainty`` (N, H, W) float32 in [0, 1], ``samples`` (N, k, H, W) uint8."""

    votes: np.ndarray
    uncertainty: np.ndarray
    samples: np.ndarray
    seconds: float
    device: str
    checkpoint: str
    meta: dict[str, Any] = field(default_factory=dict)


def segment(
    checkpoint: str | os.PathLike,
    images: np.ndarray,
    *,
    k: int = 5,
    sampler: str = "ddim",
    steps: int | None = None,
    sampler_options: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    guidance_scale: float = 1.0,
    use_ema: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
) -> SegmentResult:
    """Segment ``images`` (N, H, W) in [0, 1] with ``k`` samples each (majority vote + disagreement map).

    ``guidance_scale`` is the method's scale (the ControlNet conditioning scale; ``concat`` has none).
    """
    from cardiobench.metrics.ensemble import majority_vote

    if k < 1:
        raise CardiobenchError(f"the ensemble size k must be >= 1, got {k}",
                               "e.g. --ensemble-k 5 (config key eval.ensemble_k)")
    if batch_size < 1:
        raise CardiobenchError(f"batch size must be >= 1, got {batch_size}")
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3:
        raise CardiobenchError(f"images must be (N, H, W), got shape {imgs.shape}")
    dev = resolve_device(device)
    model, process, tspec, state = load_model(checkpoint, use_ema=use_ema, device=dev)
    method = build_conditioning(tspec)
    if method is None or method.condition != "image":
        raise IncompatibleError(f"checkpoint {checkpoint} is not image-conditioned "
                                f"(conditioning: {tspec.conditioning or 'none'})",
                                "train a segmentation model: --task segmentation --conditioning controlnet|concat")
    check_compatible(noise=tspec.noise, sampler=sampler, conditioning=tspec.conditioning, task="segmentation")
    if imgs.shape[1:] != (tspec.resolution, tspec.resolution):
        raise CardiobenchError(f"images are {imgs.shape[1]}x{imgs.shape[2]}, the model was trained at "
                               f"{tspec.resolution}x{tspec.resolution}", "resize the images or use --resolution")
    smp = build_sampler(sampler, process, sampler_options, steps)
    variable = build_variable(tspec, process)
    generator = torch.Generator().manual_seed(seed)
    per_batch = max(1, batch_size // k)  # images per batch; each repeated k times
    n = len(imgs)

    def model_fn_for(start: int, stop: int) -> tuple[ModelFn, bool]:  # start, stop count image copies
        cond = Condition(images=images_to_tensor(imgs[start // k:stop // k]).to(dev)).repeat(k)
        return make_model_fn(model, tspec, cond, guidance_scale=guidance_scale, process=process)

    t0 = time.perf_counter()
    flat = draw(variable, smp, model_fn_for, n * k, batch_size=per_batch * k, generator=generator, device=dev,
                progress=progress, label="segment", unit_name="images", per_item=k)
    out = flat.reshape(n, k, *flat.shape[1:])
    votes, uncertainty = majority_vote(out)
    meta = {"train_hash": state["spec_hash"], "conditioning": tspec.conditioning, "k": k, "sampler": sampler,
            "steps": steps, "seed": seed, "guidance_scale": guidance_scale}
    return SegmentResult(votes=votes, uncertainty=uncertainty, samples=out, seconds=time.perf_counter() - t0,
                         device=str(dev), checkpoint=str(checkpoint), meta=meta)


def write_segmentations(result: SegmentResult, path: str | os.PathLike) -> Path:
    """``segmentations.npz``: ``votes``, ``uncertainty``, ``samples`` (the k label maps per image)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, votes=result.votes, uncertainty=result.uncertainty.astype(np.float32),
                        samples=result.samples)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
