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
from cardiobench.data.pairs import condition_maps
from cardiobench.data.pairs import diffuses as diffuses_of
from cardiobench.diffusion.base import ModelFn
from cardiobench.engine.runner import draw
from cardiobench.engine.sample import load_model, make_model_fn
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import (
    build_conditioning,
    build_sampler,
    build_variable,
    resolve_device,
    unbounded_sampler_options,
)
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


def draw_given(
    checkpoint: str | os.PathLike,
    given: np.ndarray,
    *,
    diffuses: str,
    k: int = 1,
    sampler: str = "ddim",
    steps: int | None = None,
    sampler_options: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    guidance_scale: float = 1.0,
    use_ema: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
    label: str = "segment",
) -> tuple[np.ndarray, dict[str, Any], str]:
    """The other half of each given pair, ``k`` draws each, from a model conditioned on a paired map.

    ``given`` (N, H, W): the condition half (MRI images in [0, 1] for a model that diffuses label maps, uint8
    label maps for one that diffuses images; ``diffuses`` says which the caller expects, so a checkpoint of the
    other kind is a one-line error). Returns ``((N, k, H, W) uint8 draws, meta, device)``. Seeded like
    ``cardiobench sample``: one CPU generator for the initial and every step's noise.
    """
    if k < 1:
        raise CardiobenchError(f"the ensemble size k must be >= 1, got {k}",
                               "e.g. --ensemble-k 5 (config key eval.ensemble_k)")
    if batch_size < 1:
        raise CardiobenchError(f"batch size must be >= 1, got {batch_size}")
    given = np.asarray(given)
    if given.ndim not in (3, 4):
        raise CardiobenchError(f"the given {'images' if diffuses == 'mask' else 'label maps'} must be (N, H, W) "
                               f"slices or (N, D, H, W) volumes, got shape {given.shape}")
    dev = resolve_device(device)
    model, process, tspec, state = load_model(checkpoint, use_ema=use_ema, device=dev)
    method = build_conditioning(tspec)
    task = "segmentation" if diffuses == "mask" else "synthesis"
    if method is None or method.condition != "image":
        raise IncompatibleError(f"checkpoint {checkpoint} is not image-conditioned "
                                f"(conditioning: {tspec.conditioning or 'none'})",
                                f"train a {task} model: --task {task} --conditioning controlnet|concat")
    variable = build_variable(tspec, process)
    if diffuses_of(variable.representation) != diffuses:
        other = "synthesis (it draws images)" if diffuses == "mask" else "segmentation (it draws label maps)"
        raise IncompatibleError(f"checkpoint {checkpoint} is a {other} model, not a {task} model",
                                f"use a checkpoint trained with --task {task}")
    check_compatible(noise=tspec.noise, sampler=sampler, conditioning=tspec.conditioning, task=task)
    if given.shape[1:] != tspec.spatial_shape:
        raise CardiobenchError(f"the given maps are {'x'.join(map(str, given.shape[1:]))}, the model was trained at "
                               f"{'x'.join(map(str, tspec.spatial_shape))}", "resize them or use --resolution")
    smp = build_sampler(sampler, process, unbounded_sampler_options(sampler, variable.representation,
                                                                    sampler_options), steps)
    maps = condition_maps(variable.representation, given)
    generator = torch.Generator().manual_seed(seed)
    per_batch = max(1, batch_size // k)  # given maps per batch; each repeated k times
    n = len(given)

    def model_fn_for(start: int, stop: int) -> tuple[ModelFn, bool]:  # start, stop count copies
        cond = Condition(images=maps[start // k:stop // k].to(dev)).repeat(k)
        return make_model_fn(model, tspec, cond, guidance_scale=guidance_scale, process=process)

    flat = draw(variable, smp, model_fn_for, n * k, batch_size=per_batch * k, generator=generator, device=dev,
                progress=progress, label=label, unit_name="images", per_item=k)
    meta = {"train_hash": state["spec_hash"], "conditioning": tspec.conditioning, "k": k, "sampler": sampler,
            "steps": steps, "seed": seed, "guidance_scale": guidance_scale}
    return flat.reshape(n, k, *flat.shape[1:]), meta, str(dev)


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
    """Segment ``images`` (N, H, W) in [0, 1] with ``k`` samples each (majority vote + disagreement map); volumes
    (N, D, H, W) for a model trained on volumes.

    ``guidance_scale`` is the method's scale (the ControlNet conditioning scale; ``concat`` has none).
    """
    from cardiobench.metrics.ensemble import majority_vote

    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim not in (3, 4):
        raise CardiobenchError(f"images must be (N, H, W) slices or (N, D, H, W) volumes, got shape {imgs.shape}")
    t0 = time.perf_counter()
    out, meta, dev = draw_given(checkpoint, imgs, diffuses="mask", k=k, sampler=sampler, steps=steps,
                                sampler_options=sampler_options, seed=seed, batch_size=batch_size,
                                guidance_scale=guidance_scale, use_ema=use_ema, device=device, progress=progress)
    votes, uncertainty = majority_vote(out)
    return SegmentResult(votes=votes, uncertainty=uncertainty, samples=out, seconds=time.perf_counter() - t0,
                         device=dev, checkpoint=str(checkpoint), meta=meta)


def write_segmentations(result: SegmentResult, path: str | os.PathLike) -> Path:
    """``segmentations.npz``: ``votes``, ``uncertainty``, ``samples`` (the k label maps per image)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, votes=result.votes, uncertainty=result.uncertainty.astype(np.float32),
                        samples=result.samples)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
