"""The three measurements of a ``BenchCase``: training step, sampling loop, and the sampler's own overhead.

- ``measure_training``: one optimizer step of the training engine's own code: the ``DiffusedVariable``'s
  ``training_loss`` (timesteps and noise drawn from a seeded generator, ``q_sample``, the network under
  autocast, the training target, smooth-L1/MSE) and the shared loop's update (``TrainLoop.run_step``:
  backward, gradient-norm clipping, Adam; a ``GradScaler`` for fp16 on CUDA), on a fixed batch of random
  label maps encoded by the case's representation, already on the device. Data loading is not included.
  images/s = batch / step time.
- ``measure_sampling``: one batch of ``sample_steps`` steps drawn by the sampling runner every command uses
  (``cardiobench.engine.runner.draw``: the prior draw, the sampler loop under ``torch.inference_mode`` with the
  real network under autocast, the decoding to label maps). The network evaluations are counted, so
  ``ms_per_nfe`` = loop time / evaluations; images/s = batch / loop time. Warm-up repeats run the first two
  steps of the loop only (enough to build the step plan, oneDNN/cuDNN primitives and any ``torch.compile``
  graph) so that a warm-up does not cost a whole sampling run.
- ``measure_sampler_overhead``: the same draw with ``StandInNetwork``, which returns one precomputed tensor,
  so all that is timed is the sampler: its Python loop, the step arithmetic and the noise draws (and the
  runner's prior draw and decoding, once per loop). Reported per step. At least one warm-up loop runs (the
  first call builds the step plan).

Every measurement runs ``warmup`` untimed and ``repeats`` timed repeats (``timing.time_repeats``: CUDA
events on a GPU) and records the peak memory of the phase (``memory.PeakMemory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cardiobench.bench.cases import BenchCase, autocast, build_variable, prepare, to_memory_format
from cardiobench.bench.memory import PeakMemory
from cardiobench.bench.timing import Stats, time_repeats
from cardiobench.engine.loop import TrainLoop
from cardiobench.engine.runner import draw

#: steps of a sampling warm-up repeat
WARMUP_STEPS = 2


@dataclass
class Phase:
    """One measurement: seconds per repeat, what a repeat processed, and the phase's peak memory."""

    seconds: Stats
    images: int  # images per repeat
    nfe: int = 0  # network evaluations per repeat (sampling only)
    peak_mib: float | None = None
    memory_kind: str | None = None

    @property
    def images_per_s(self) -> Stats:
        return self.seconds.map(lambda s: self.images / s)

    def per_nfe_ms(self) -> Stats:
        n = max(self.nfe, 1)
        return self.seconds.map(lambda s: 1000.0 * s / n)


class StandInNetwork:
    """A zero-cost network: ``fn(x, t)`` returns the same precomputed output (the sampler never writes to it).

    ``calls`` counts evaluations.
    """

    def __init__(self, output: torch.Tensor) -> None:
        self.output = output
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.output


class NetworkFn:
    """``fn(x, t)``: the network under the case's autocast and memory format, output in ``x``'s dtype."""

    def __init__(self, net, case: BenchCase) -> None:
        self.net = net
        self.case = case
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        with autocast(self.case):
            out = self.net(to_memory_format(x, self.case), t)
        return out if out.dtype == x.dtype else out.to(x.dtype)


def _generator(case: BenchCase, offset: int = 0) -> torch.Generator:
    """A seeded CPU generator, as the sampling runner and the trainer use (they move draws to the device)."""
    return torch.Generator().manual_seed(case.seed + offset)


def random_batch(case: BenchCase, variable: Any) -> torch.Tensor:
    """Random label maps of the case's shape, encoded by ``variable`` (seeded), on the case's device."""
    g = _generator(case)
    labels = torch.randint(0, variable.representation.num_classes, (case.batch_size, *variable.mask_shape),
                           generator=g)
    return variable.encode(labels).to(torch.device(case.device))


def measure_training(model: torch.nn.Module, process, case: BenchCase) -> Phase:
    """Seconds per optimizer step (see the module docstring). Trains ``model`` in place."""
    dev = torch.device(case.device)
    model.train()
    net = prepare(model, case)
    variable = build_variable(case, process)
    fp16 = case.dtype == "fp16" and dev.type == "cuda"
    loop = TrainLoop(torch.optim.Adam(model.parameters(), lr=case.lr), grad_clip=case.grad_clip,
                     clip_params=[p for p in model.parameters() if p.requires_grad],
                     scaler=torch.amp.GradScaler(dev.type) if fp16 else None)
    x0 = random_batch(case, variable)
    gen = _generator(case, 4)

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast(case):
            return net(to_memory_format(x_t, case), t)

    def step() -> None:
        loop.run_step(lambda _step: variable.training_loss(model_fn, x0, gen, loss=case.loss))

    with PeakMemory(dev) as mem:
        stats = time_repeats(step, warmup=case.warmup, repeats=case.repeats, device=dev, max_time=case.max_time)
    model.eval()
    return Phase(stats, images=case.batch_size, peak_mib=mem.peak_mib, memory_kind=mem.kind)


class _Enough(Exception):
    """Ends a warm-up draw after its first steps."""


def _draw(variable: Any, sampler, fn, case: BenchCase, generator: torch.Generator, steps: int | None = None) -> None:
    """One batch through the sampling runner with the network ``fn``; ``steps``: stop after that many steps."""

    def stop(step) -> None:
        if steps is not None and step.index + 1 >= steps:
            raise _Enough

    try:  # (the runner's sampler iterator is closed as _Enough unwinds it, leaving inference mode)
        draw(variable, sampler, lambda _start, _stop: (fn, False), case.batch_size, batch_size=case.batch_size,
             generator=generator, device=case.device, on_step=stop if steps is not None else None)
    except _Enough:
        pass


def measure_sampling(model: torch.nn.Module, sampler, case: BenchCase, variable: Any = None) -> Phase:
    """Seconds per batch of ``case.sample_steps`` steps with the real network (``variable``: the case's
    ``DiffusedVariable``, default built on ``sampler.process``)."""
    dev = torch.device(case.device)
    variable = variable if variable is not None else build_variable(case, sampler.process)
    model.eval()
    fn = NetworkFn(prepare(model, case), case)
    gen = _generator(case, 1)
    with PeakMemory(dev) as mem:
        for _ in range(case.warmup):
            _draw(variable, sampler, fn, case, gen, WARMUP_STEPS)
        before = fn.calls
        stats = time_repeats(lambda: _draw(variable, sampler, fn, case, gen), warmup=0, repeats=case.repeats,
                             device=dev, max_time=case.max_time)
    nfe = (fn.calls - before) // stats.n
    return Phase(stats, images=case.batch_size, nfe=nfe, peak_mib=mem.peak_mib, memory_kind=mem.kind)


def measure_sampler_overhead(sampler, case: BenchCase, variable: Any = None) -> Phase:
    """Seconds per batch with ``StandInNetwork`` (divide by ``nfe`` for per step)."""
    dev = torch.device(case.device)
    variable = variable if variable is not None else build_variable(case, sampler.process)
    stand_in = StandInNetwork(torch.randn(variable.shape(case.batch_size), generator=_generator(case, 2)).to(dev))
    gen = _generator(case, 3)
    stats = time_repeats(lambda: _draw(variable, sampler, stand_in, case, gen), warmup=max(1, case.warmup),
                         repeats=case.repeats, device=dev, max_time=case.max_time)
    nfe = stand_in.calls // (max(1, case.warmup) + stats.n)
    return Phase(stats, images=case.batch_size, nfe=nfe)
