"""Throughput benchmarks: training and sampling images/s, ms per network evaluation, sampler overhead, memory.

- ``timing``: CPU wall clock / CUDA events, warm-up, repeats, median and IQR (``Stats``).
- ``memory``: peak memory of a block (CUDA max allocated, or the process's peak RSS from ``/proc``).
- ``cases``: ``BenchCase``, what one measurement runs, built from a resolved configuration.
- ``measure``: the training step, the sampling loop and the sampler's own overhead (zero-cost stand-in network).
- ``runner``: a list of cases -> ``CaseResult`` (metrics, spreads) -> ``task="throughput"`` ``RunRecord``.

``cardiobench bench`` (``cardiobench.cli.bench_cmd``) is the command; ``docs/performance.md`` the numbers.
"""

from cardiobench.bench.cases import DTYPES, BenchCase, case_from_config
from cardiobench.bench.measure import Phase, StandInNetwork
from cardiobench.bench.memory import PeakMemory
from cardiobench.bench.runner import DIRECTIONS, CaseResult, run_cases
from cardiobench.bench.timing import Stats, load_average, summarize, time_repeats

__all__ = [
    "DIRECTIONS",
    "DTYPES",
    "BenchCase",
    "CaseResult",
    "PeakMemory",
    "Phase",
    "StandInNetwork",
    "Stats",
    "case_from_config",
    "load_average",
    "run_cases",
    "summarize",
    "time_repeats",
]
