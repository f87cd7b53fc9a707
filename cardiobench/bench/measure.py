"""The three measurements of a ``BenchCase``: training step, sampling loop, and the sampler's own overhead.

- ``measure_training``: one optimizer step as the training engine does it (``q_sample``, the training target,
  the network under autocast, smooth-L1/MSE loss, backward, gradient-norm clipping, Adam; a ``GradScaler``
  for fp16 on CUDA) on a fixed random batch already on the device. Data loading is not included.
  images/s = batch / step time.
- ``measure_sampling``: a whole ``sampler.sample`` call of ``sample_steps`` steps with the real network
  (under ``torch.inference_mode``, which the samplers enter themselves, and autocast). The network
  evaluations are counted, so ``ms_per_nfe`` = loop time / evaluations; images/s = batch / loop time.
  Warm-up repeats run the first two steps of the loop only (enough to build the step plan, oneDNN/cuDNN
  primitives and any ``torch.compile`` graph) so that a warm-up does not cost a whole sampling run.
- ``measure_sampler_overhead``: the same loop with ``StandInNetwork``, which returns one precomputed tensor,
  so all that is timed is the sampler: its Python loop, the step arithmetic and the noise draws. Reported
  per step. At least one warm-up loop runs (the first call builds the step plan).

Every measurement runs ``warmup`` untimed and ``repeats`` timed repeats (``timing.time_repeats``: CUDA
events on a GPU) and records the peak memory of the phase (``memory.PeakMemory``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cardiobench.bench.cases import BenchCase, autocast, prepare, to_memory_format
from cardiobench.bench.memory import PeakMemory
from cardiobench.bench.timing import Stats, time_repeats
from cardiobench.data.tensors import masks_to_onehot

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
    """A seeded generator on the case's device, so the samplers draw noise where it is used."""
    return torch.Generator(device=torch.device(case.device)).manual_seed(case.seed + offset)


def random_batch(case: BenchCase, process) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0 one-hot in {-1, 1}, t (B,) long, noise), seeded, on the case's device."""
    g = torch.Generator().manual_seed(case.seed)
    b, c, h, w = case.shape
    labels = torch.randint(0, c, (b, h, w), generator=g)
    x0 = masks_to_onehot(labels, c)
    t = process.sample_timesteps(b, generator=g)
    noise = torch.randn(case.shape, generator=g)
    dev = torch.device(case.device)
    return x0.to(dev), t.to(dev), noise.to(dev)


def measure_training(model: torch.nn.Module, process, case: BenchCase) -> Phase:
    """Seconds per optimizer step (see the module docstring). Trains ``model`` in place."""
    dev = torch.device(case.device)
    model.train()
    net = prepare(model, case)
    opt = torch.optim.Adam(model.parameters(), lr=case.lr)
    scaler = torch.amp.GradScaler(dev.type, enabled=case.dtype == "fp16" and dev.type == "cuda")
    loss_fn = F.mse_loss if case.loss == "mse" else F.smooth_l1_loss
    x0, t, noise = random_batch(case, process)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        x_t = process.q_sample(x0, t, noise)
        target = process.training_target(x0, noise, t)
        with autocast(case):
            out = net(to_memory_format(x_t, case), t)
        loss = loss_fn(out.float(), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if case.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, case.grad_clip)
        scaler.step(opt)
        scaler.update()

    with PeakMemory(dev) as mem:
        stats = time_repeats(step, warmup=case.warmup, repeats=case.repeats, device=dev, max_time=case.max_time)
    model.eval()
    return Phase(stats, images=case.batch_size, peak_mib=mem.peak_mib, memory_kind=mem.kind)


def _partial_loop(sampler, fn, case: BenchCase, generator: torch.Generator, steps: int) -> None:
    it = sampler.iter_sample(fn, case.shape, generator=generator, device=case.device)
    try:
        for i, _ in enumerate(it):
            if i + 1 >= steps:
                break
    finally:
        it.close()


def measure_sampling(model: torch.nn.Module, sampler, case: BenchCase) -> Phase:
    """Seconds per ``sampler.sample`` call of ``case.sample_steps`` steps with the real network."""
    dev = torch.device(case.device)
    model.eval()
    fn = NetworkFn(prepare(model, case), case)
    gen = _generator(case, 1)
    with PeakMemory(dev) as mem:
        for _ in range(case.warmup):
            _partial_loop(sampler, fn, case, gen, WARMUP_STEPS)
        before = fn.calls
        stats = time_repeats(lambda: sampler.sample(fn, case.shape, generator=gen, device=dev),
                             warmup=0, repeats=case.repeats, device=dev, max_time=case.max_time)
    nfe = (fn.calls - before) // stats.n
    return Phase(stats, images=case.batch_size, nfe=nfe, peak_mib=mem.peak_mib, memory_kind=mem.kind)


def measure_sampler_overhead(sampler, case: BenchCase) -> Phase:
    """Seconds per ``sampler.sample`` call with ``StandInNetwork`` (divide by ``nfe`` for per step)."""
    dev = torch.device(case.device)
    g = torch.Generator().manual_seed(case.seed + 2)
    stand_in = StandInNetwork(torch.randn(case.shape, generator=g).to(dev))
    gen = _generator(case, 3)
    stats = time_repeats(lambda: sampler.sample(stand_in, case.shape, generator=gen, device=dev),
                         warmup=max(1, case.warmup), repeats=case.repeats, device=dev, max_time=case.max_time)
    nfe = stand_in.calls // (max(1, case.warmup) + stats.n)
    return Phase(stats, images=case.batch_size, nfe=nfe)
