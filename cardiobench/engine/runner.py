"""The sampling runner: prior -> sampler loop (with a callback per step) -> decode, batch by batch.

The one loop behind ``cardiobench sample``, segmentation ensembles, ``run``'s samples and its reverse-process
GIF, and the bench. It knows nothing of what is diffused: the ``DiffusedVariable`` draws ``x_T`` and decodes,
the sampler steps. Seeding: one CPU ``torch.Generator`` draws every batch's ``x_T`` and then that batch's
step noise, in batch order, so a seed gives the same label maps on every run (same device and batch size).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cardiobench.diffusion.base import ModelFn, SampleStep
from cardiobench.progress import Progress, resolve

__all__ = ["FrameRecorder", "ModelFnFor", "draw"]

#: model_fn_for(start, stop) -> (model_fn, needs_grad): the network (under its conditioning) for items start..stop
ModelFnFor = Callable[[int, int], tuple[ModelFn, bool]]


@dataclass
class FrameRecorder:
    """Keeps the decoded states of the first ``n`` items of the first batch at ``frames`` evenly spaced steps
    (the reverse-process GIF), so the GIF shows the very samples the grid shows. ``seconds``: time spent here."""

    n: int = 16
    frames: int = 24
    images: list[np.ndarray] = field(default_factory=list)  # each (n, *spatial) uint8
    captions: list[str] = field(default_factory=list)  # what each frame shows: "step 12/50 (t=759)"
    seconds: float = 0.0
    _keep: set[int] = field(default_factory=set)
    _steps: int = 0

    def plan(self, num_steps: int) -> None:
        self._steps = num_steps
        self._keep = {round(i * (num_steps - 1) / max(1, self.frames - 1)) for i in range(self.frames)}

    def __call__(self, step: SampleStep, decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if step.index in self._keep:
            t0 = time.perf_counter()
            self.images.append(decode(step.x_t[: self.n].float()).cpu().numpy())
            last = step.index + 1 == self._steps
            self.captions.append(f"step {step.index + 1}/{self._steps} " + ("(x0)" if last else f"(t={step.timestep})"))
            self.seconds += time.perf_counter() - t0


def draw(variable: Any, sampler: Any, model_fn_for: ModelFnFor, n: int, *, batch_size: int,
         generator: torch.Generator | Callable[[int], torch.Generator], device: torch.device | str = "cpu",
         progress: Progress | None = None,
         label: str = "sample", unit_name: str = "samples", per_item: int = 1,
         frames: FrameRecorder | None = None, on_step: Callable[[SampleStep], None] | None = None) -> np.ndarray:
    """Draw ``n`` items in batches of at most ``batch_size``; ``(n, *spatial)`` uint8 label maps.

    ``model_fn_for(start, stop)`` gives the network for items ``start..stop`` (conditioning differs per batch).
    ``generator``: one stream for every batch, or ``generator(start)``, the stream of the batch starting at item
    ``start`` (so that batches can be drawn on different processes and give the same items).
    Progress counts sampler steps (rate and ETA in steps), with the items done beside the bar; ``per_item``
    scales the items shown (a segmentation ensemble repeats each image ``k`` times: ``n`` counts the copies).
    ``frames`` records the first batch's states for a GIF; ``on_step`` sees every step (its tensors are the
    sampler's working buffers: clone what you keep).
    """
    steps = len(sampler.timesteps)
    batches = -(-n // batch_size)
    out = np.empty((n, *variable.mask_shape), dtype=np.uint8)
    if frames is not None:
        frames.plan(steps)
    done = 0
    with resolve(progress).task(label, total=batches * steps, unit="step",
                                items=f"0/{n // per_item} {unit_name}") as bar:
        while done < n:
            b = min(batch_size, n - done)
            model_fn, needs_grad = model_fn_for(done, done + b)
            model_fn = variable.sampling_fn(model_fn, needs_grad=needs_grad)
            sampler.inference_mode = not needs_grad
            gen = generator if isinstance(generator, torch.Generator) else generator(done)
            x_T = variable.prior(b, gen).to(device)
            last = None
            for last in sampler.iter_sample(model_fn, variable.shape(b), generator=gen, device=device, x_T=x_T):
                if frames is not None and done == 0:
                    frames(last, variable.decode)
                if on_step is not None:
                    on_step(last)
                bar.update(advance=1)
            assert last is not None, "the sampler took no steps"
            out[done:done + b] = variable.decode(last.x_t.float()).cpu().numpy()
            done += b
            bar.update(items=f"{done // per_item}/{n // per_item} {unit_name}")
    return out
