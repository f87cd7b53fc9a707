"""The sampling engine behind ``cardiobench sample``: checkpoint -> label maps (``.npz``) + colour grid.

The model is rebuilt from the checkpoint's spec (its representation, backbone and noise process plugins), with
the EMA weights by default, and drawn through the sampling runner (``cardiobench.engine.runner``): the initial
noise and every step's noise of a batch come from a CPU ``torch.Generator`` seeded by ``(seed, batch)`` (the first
batch by ``seed`` itself), so a seed gives the same masks on every run (on the same device and batch size), in one
process or sharded over the ranks of ``torchrun`` (each rank draws a contiguous run of whole batches; rank 0 gathers).
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from cardiobench import __version__, distributed
from cardiobench.conditioning.base import Condition, ConditioningMethod
from cardiobench.data.base import GROUPS
from cardiobench.data.pairs import diffuses
from cardiobench.diffusion.base import ModelFn
from cardiobench.engine.checkpoints import damaged, load_checkpoint
from cardiobench.engine.runner import FrameRecorder, draw
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import (
    build_conditioning,
    build_model,
    build_process,
    build_sampler,
    build_variable,
    resolve_device,
    unbounded_sampler_options,
)
from cardiobench.paths import atomic_write_bytes
from cardiobench.plugins import check_compatible
from cardiobench.progress import Progress
from cardiobench.specs import SampleSpec, TrainSpec, canonical_json
from cardiobench.viz import save_grid, save_volume_grid

SAMPLES_NAME = "samples.npz"
GRID_NAME = "samples.png"


@dataclass
class SampleResult:
    """Generated label maps ``masks`` (N, H, W) uint8 and how they were made."""

    masks: np.ndarray
    spec: SampleSpec
    train_spec: TrainSpec
    seconds: float
    device: str
    checkpoint: str
    files: dict[str, str] = field(default_factory=dict)
    labels: np.ndarray | None = None  # (N,) requested pathology group of each sample (conditioned generation)

    def metadata(self) -> dict[str, Any]:
        return {
            "sample_spec": self.spec.to_dict(), "sample_hash": self.spec.hash(),
            "train_spec": self.train_spec.to_dict(),
            "train_hash": self.spec.train_hash, "checkpoint": self.checkpoint, "seconds": round(self.seconds, 3),
            "device": self.device, "cardiobench_version": __version__,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": int(len(self.masks)), "resolution": int(self.masks.shape[-1]), **self.metadata(),
                "files": self.files}


class LoadedModel(NamedTuple):
    """A trained model ready to sample: ``network`` (eval mode, no grad), its noise ``process``, its ``spec`` and
    the checkpoint dict ``state`` (``state["spec_hash"]``, ``state["step"]``, ...). Unpacks as a 4-tuple."""

    network: torch.nn.Module
    process: Any
    spec: TrainSpec
    state: dict[str, Any]


def load_model(checkpoint: str | os.PathLike, *, use_ema: bool = True, device: str | torch.device = "cpu"
               ) -> LoadedModel:
    """The model of a checkpoint file or folder (EMA weights unless ``use_ema=False``) on ``device``."""
    state = load_checkpoint(checkpoint)
    try:
        spec = TrainSpec.from_dict(state["spec"])
        model = build_model(spec)
        weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
        model.load_state_dict(weights)
    except CardiobenchError:
        raise
    except Exception as exc:  # a bit flip or a hand edit: keys, types or shapes that do not fit
        raise damaged(checkpoint, exc, "retrain it (`cardiobench train ... --retrain`) or pass another checkpoint"
                      ) from None
    model = model.to(resolve_device(device)).eval().requires_grad_(False)
    return LoadedModel(model, build_process(spec), spec, {**state, "path": str(checkpoint)})


def balanced_labels(n: int, num_classes: int = len(GROUPS)) -> np.ndarray:
    """``n`` class labels cycling through every class (0, 1, ..., K-1, 0, ...): equal counts per class."""
    return np.arange(n, dtype=np.int64) % num_classes


def make_model_fn(model: torch.nn.Module, tspec: TrainSpec, cond: Condition | None = None, *,
                  guidance_scale: float = 1.0, guidance: ConditioningMethod | None = None, process: Any = None
                  ) -> tuple[ModelFn, bool]:
    """``(model_fn, needs_grad)`` for the sampler: the trained model under its own conditioning method, or an
    unconditional model steered by ``guidance`` (classifier guidance), or the plain model."""
    method = guidance if guidance is not None else build_conditioning(tspec)
    if guidance is not None and tspec.conditioning:
        raise IncompatibleError(f"{guidance.name} steers an unconditional model; this checkpoint is conditioned "
                                f"with {tspec.conditioning}", "use the unconditional checkpoint of the same spec")
    if method is None:
        if cond is not None and (cond.labels is not None or cond.images is not None):
            raise IncompatibleError("this checkpoint is unconditional: it cannot take class labels or images",
                                    "train with --conditioning, or sample without labels")
        return (lambda x, t: model(x, t)), False
    if cond is None:
        raise CardiobenchError(f"{method.name} needs a condition ({method.condition}) for every sample")
    return method.model_fn(model, cond, guidance_scale=guidance_scale, process=process), method.needs_grad


def batch_generator(seed: int, batch: int) -> torch.Generator:
    """The random stream of sampling batch ``batch`` (0, 1, ...): batch 0 is seeded by ``seed`` itself."""
    return torch.Generator().manual_seed(seed if batch == 0 else seed * 1_000_003 + 104_729 * batch)


def shard_range(n: int, batch_size: int, rank: int, world: int) -> tuple[int, int]:
    """Items ``[start, stop)`` of ``n`` (in batches of ``batch_size``) that rank ``rank`` of ``world`` draws: a
    contiguous run of whole batches, the batches split as evenly as they go (a rank may get none)."""
    batches = -(-n // batch_size)
    lo, hi = batches * rank // world, batches * (rank + 1) // world
    return min(n, lo * batch_size), min(n, hi * batch_size)


def sample(
    checkpoint: str | os.PathLike | LoadedModel,
    *,
    sampler: str = "ddim",
    steps: int | None = None,
    num_samples: int = 64,
    seed: int = 0,
    sampler_options: dict[str, Any] | None = None,
    batch_size: int = 64,
    use_ema: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
    labels: np.ndarray | list[int] | None = None,
    guidance_scale: float = 1.0,
    guidance: ConditioningMethod | None = None,
    frames: FrameRecorder | None = None,
) -> SampleResult:
    """Draw ``num_samples`` masks from a trained checkpoint (or a ``LoadedModel``) with the named sampler plugin.

    ``steps``: inference steps (``None`` = the sampler's default); ``sampler_options`` go to the sampler's
    factory (e.g. ``{"eta": 0.5}`` for DDIM). A label-conditioned model (classifier-free guidance) or one
    steered by ``guidance`` (classifier guidance) draws sample ``i`` of class ``labels[i]`` (default: every
    class in turn, equal counts) at ``guidance_scale``. ``progress``: where to report (default: silent);
    ``frames`` records the first batch's reverse process (the GIF) during the same pass.
    """
    if batch_size < 1:
        raise CardiobenchError(f"batch size must be >= 1, got {batch_size}")
    dev = distributed.init(resolve_device(device))
    if isinstance(checkpoint, LoadedModel):
        model, process, tspec, state = checkpoint
        model = model.to(dev)
        checkpoint = state.get("path", "(in memory)")
    else:
        model, process, tspec, state = load_model(checkpoint, use_ema=use_ema, device=dev)
    variable = build_variable(tspec, process)
    if diffuses(variable.representation) != "mask":
        raise IncompatibleError(f"checkpoint {checkpoint} draws MRI images ({tspec.representation}), not label maps",
                                "draw images for given masks with `cardiobench run --task synthesis` "
                                "(cardiobench.engine.synthesize)")
    check_compatible(noise=tspec.noise, sampler=sampler,
                     conditioning=guidance.name if guidance is not None else tspec.conditioning, task="generation")
    method = guidance if guidance is not None else build_conditioning(tspec)
    if method is not None and method.condition != "label":
        raise IncompatibleError(f"{tspec.conditioning} models are image-conditioned (segmentation)",
                                "use `cardiobench run --task segmentation` (cardiobench.engine.segment)")
    y = None
    if method is not None:
        y = balanced_labels(num_samples) if labels is None else np.asarray(labels, dtype=np.int64)
        if y.shape != (num_samples,) or y.min() < 0 or y.max() >= len(GROUPS):
            raise CardiobenchError(f"need {num_samples} class labels in 0..{len(GROUPS) - 1}, got shape {y.shape}")
    elif labels is not None or float(guidance_scale) != 1.0:
        what = "class labels" if labels is not None else "a guidance scale"
        raise IncompatibleError(f"this checkpoint is unconditional: it cannot take {what}",
                                "train with --conditioning classifier-free, or steer it with a noisy classifier "
                                "(`cardiobench sample --classifier FILE`, "
                                "`cardiobench run --conditioning classifier-guidance`)")
    sampler_options = unbounded_sampler_options(sampler, variable.representation, sampler_options)
    sspec = SampleSpec(train_hash=state["spec_hash"], sampler=sampler, sampler_options=dict(sampler_options or {}),
                       steps=steps, num_samples=num_samples, seed=seed, use_ema=use_ema,
                       guidance_scale=float(guidance_scale) if method is not None else None,
                       guidance=guidance.name if guidance is not None else None,
                       guidance_options=guidance.config() if guidance is not None else {})
    smp = build_sampler(sampler, process, sspec.sampler_options, steps)
    first, stop = shard_range(num_samples, batch_size, distributed.rank(), distributed.world_size())

    def model_fn_for(start: int, end: int) -> tuple[ModelFn, bool]:
        cond = None if y is None else Condition(labels=torch.from_numpy(y[first + start:first + end]).to(dev))
        return make_model_fn(model, tspec, cond, guidance_scale=guidance_scale, guidance=guidance, process=process)

    t0 = time.perf_counter()
    masks = draw(variable, smp, model_fn_for, stop - first, batch_size=batch_size,
                 generator=lambda start: batch_generator(seed, (first + start) // batch_size), device=dev,
                 progress=progress if distributed.is_main() else None, frames=frames if first == 0 else None)
    if distributed.world_size() > 1:
        masks = np.concatenate([m for m in distributed.all_gather_object(masks) if len(m)])
    return SampleResult(masks=masks, spec=sspec, train_spec=tspec, seconds=time.perf_counter() - t0,
                        device=str(dev), checkpoint=str(checkpoint), labels=y)


def write_samples(result: SampleResult, out_dir: str | os.PathLike, nrow: int | None = None) -> dict[str, str]:
    """Write ``samples.npz`` (``masks`` (N, H, W) uint8, or (N, D, H, W) volumes, + ``metadata`` JSON string) and
    the grid ``samples.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    extra = {"labels": result.labels.astype(np.int64)} if result.labels is not None else {}
    np.savez_compressed(buf, masks=result.masks.astype(np.uint8), metadata=np.array(canonical_json(result.metadata())),
                        **extra)
    atomic_write_bytes(out / SAMPLES_NAME, buf.getvalue())
    scale = max(1, 96 // result.masks.shape[-1])
    if result.masks.ndim == 4:  # volumes: one row of slices (base to apex) per volume, the first 16
        grid = save_volume_grid(out / GRID_NAME, result.masks[:16], scale=scale, legend=True)
    else:
        grid = save_grid(out / GRID_NAME, result.masks, nrow=nrow, scale=scale, legend=True)
    result.files = {"samples": str(out / SAMPLES_NAME), "grid": str(grid)}
    return result.files


def read_samples(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """``(masks, metadata)`` from a ``samples.npz`` written by ``write_samples``.

    Sizes are checked before decompressing (``cardiobench.data.safe_npz``); a damaged, oversized or foreign
    file is a ``DataError`` naming it.
    """
    from cardiobench.data import safe_npz
    from cardiobench.errors import DataError

    try:
        with safe_npz.load(path) as data:
            return data["masks"], json.loads(str(data["metadata"]))
    except CardiobenchError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise DataError(
            f"{path}: not a readable samples.npz ({type(exc).__name__}{': ' + msg[0] if msg else ''})",
            "write it again with cardiobench sample",
        ) from None
