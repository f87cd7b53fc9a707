"""Timing: wall clock on the CPU, CUDA events on a GPU; median and interquartile range over repeats.

``time_repeats(fn, warmup=W, repeats=R, device=d)`` runs ``fn`` W times untimed (compilation, allocator and
oneDNN/cuDNN warm-up), then R times, each timed on its own (with ``max_time``, fewer once the timed repeats
add up to that many seconds, but at least two):

- CPU: ``time.perf_counter`` around the call.
- CUDA: a ``torch.cuda.Event(enable_timing=True)`` pair recorded on the current stream before and after the
  call; the device is synchronised before each repeat (so queued earlier work is not counted) and the end
  event is waited on before reading ``start.elapsed_time(end)``. Nothing inside ``fn`` needs to synchronise.

Statistics use numpy's linear-interpolation percentiles: ``median`` (50th), ``q1``/``q3`` (25th/75th) and
``iqr = q3 - q1``, the spread reported next to every number. A rate (images/s) is summarised over the
per-repeat rates (``Stats.map``), so its median and IQR are those of the rates themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: with ``max_time``, the fewest timed repeats made anyway (so there is a spread)
MIN_REPEATS = 2


@dataclass(frozen=True)
class Stats:
    """Per-repeat measurements (seconds, or any unit after ``map``) and their summary."""

    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("Stats needs at least one sample")

    def _pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples, dtype=np.float64), q))

    @property
    def median(self) -> float:
        return self._pct(50.0)

    @property
    def q1(self) -> float:
        return self._pct(25.0)

    @property
    def q3(self) -> float:
        return self._pct(75.0)

    @property
    def iqr(self) -> float:
        """Interquartile range (0 for a single repeat)."""
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        return float(min(self.samples))

    @property
    def n(self) -> int:
        return len(self.samples)

    def map(self, fn: Callable[[float], float]) -> Stats:
        """The same repeats in another unit, e.g. ``stats.map(lambda s: batch / s)`` for images/s."""
        return Stats(tuple(float(fn(s)) for s in self.samples))

    def to_dict(self, scale: float = 1.0) -> dict[str, float]:
        return {"median": self.median * scale, "iqr": self.iqr * scale, "min": self.min * scale, "n": self.n}


def summarize(samples: Sequence[float]) -> Stats:
    return Stats(tuple(float(s) for s in samples))


def is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device: torch.device | str) -> None:
    """Wait for every queued kernel on ``device`` (no-op on the CPU)."""
    if is_cuda(device):
        torch.cuda.synchronize(torch.device(device))


class CpuTimer:
    """``start()`` / ``stop()`` / ``elapsed()`` seconds with ``time.perf_counter``."""

    def __init__(self) -> None:
        self._t0 = self._t1 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._t1 = time.perf_counter()

    def elapsed(self) -> float:
        return self._t1 - self._t0


class CudaTimer:
    """The same interface with CUDA events on the current stream of ``device``.

    ``elapsed()`` waits for the end event (not the whole device) and converts milliseconds to seconds.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        with torch.cuda.device(self.device):
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record(torch.cuda.current_stream(self.device))

    def stop(self) -> None:
        self._end.record(torch.cuda.current_stream(self.device))

    def elapsed(self) -> float:
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1000.0


def make_timer(device: torch.device | str) -> CpuTimer | CudaTimer:
    return CudaTimer(device) if is_cuda(device) else CpuTimer()


def time_repeats(
    fn: Callable[[], object],
    *,
    warmup: int,
    repeats: int,
    device: torch.device | str = "cpu",
    setup: Callable[[], object] | None = None,
    max_time: float | None = None,
    min_repeats: int = MIN_REPEATS,
) -> Stats:
    """Seconds per call of ``fn`` over up to ``repeats`` timed calls after ``warmup`` untimed ones.

    ``setup`` (optional) runs before every call, untimed (e.g. resetting a buffer). ``max_time`` (seconds,
    optional) stops the timed repeats early once they add up to that much and at least ``min_repeats`` (or
    ``repeats`` if fewer) were made: a 15-second CPU sampling loop is then timed twice, not five times, while
    fast measurements still get every repeat. ``Stats.n`` says how many were made.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        if setup is not None:
            setup()
        fn()
    synchronize(device)
    times: list[float] = []
    enough = min(max(1, min_repeats), repeats)
    for _ in range(repeats):
        if setup is not None:
            setup()
        synchronize(device)
        timer = make_timer(device)
        timer.start()
        fn()
        timer.stop()
        times.append(timer.elapsed())
        if max_time is not None and len(times) >= enough and sum(times) >= max_time:
            break
    return summarize(times)


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages (``None`` where the OS has none)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        return None
    return round(one, 2), round(five, 2), round(fifteen, 2)
