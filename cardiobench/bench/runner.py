"""Run a list of ``BenchCase`` and turn each into metrics and a ``task="throughput"`` ``RunRecord``.

Measurements that several cases share are made once: the training step depends on the backbone, the noise
process and the batch (not the sampler), the sampler overhead on the noise process and the sampler (not the
backbone). The network of a backbone is built once per (backbone, options, device, memory format).

Metrics (per case; median over repeats, spread = IQR in the same unit):

==========================  =========  ===========================================================
``images_per_s``            higher     sampling throughput: batch / time of a whole sampling loop
``images_per_s_train``      higher     batch / time of one optimizer step
``ms_per_nfe``              lower      sampling loop time / network evaluations (overhead included)
``sampler_overhead_ms``     lower      sampler time per step with a zero-cost stand-in network
``tflops_sample``           higher     network FLOP rate while sampling (forward FLOPs x NFE / time)
``peak_mem_mb_train``       lower      peak memory of the training phase (MiB; CUDA tensors or RSS)
``peak_mem_mb_sample``      lower      peak memory of the sampling phase
==========================  =========  ===========================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from cardiobench.bench import cases as cb
from cardiobench.bench.measure import Phase, measure_sampler_overhead, measure_sampling, measure_training
from cardiobench.bench.timing import load_average
from cardiobench.engine.loop import as_progress
from cardiobench.progress import Progress
from cardiobench.results.store import RunRecord, stable_hash

DIRECTIONS: dict[str, str] = {
    "images_per_s": "higher",
    "images_per_s_train": "higher",
    "ms_per_nfe": "lower",
    "sampler_overhead_ms": "lower",
    "tflops_sample": "higher",
    "peak_mem_mb_train": "lower",
    "peak_mem_mb_sample": "lower",
}


@dataclass
class CaseResult:
    """The measurements of one case (phases shared with earlier cases are the same objects)."""

    case: cb.BenchCase
    sample: Phase
    overhead: Phase
    train: Phase
    params: int
    gflop_per_image: float | None
    seconds: float
    reused: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    threads: int = 1  # torch's CPU threads during the measurement

    def _overhead_ms(self):
        n = max(self.overhead.nfe, 1)
        return self.overhead.seconds.map(lambda s: 1000.0 * s / n)

    def _tflops(self):
        if self.gflop_per_image is None or not self.sample.nfe:
            return None
        work = self.gflop_per_image * self.case.batch_size * self.sample.nfe / 1000.0
        return self.sample.seconds.map(lambda s: work / s)

    def _stats(self) -> dict[str, Any]:
        return {
            "images_per_s": self.sample.images_per_s,
            "images_per_s_train": self.train.images_per_s,
            "ms_per_nfe": self.sample.per_nfe_ms(),
            "sampler_overhead_ms": self._overhead_ms(),
            "tflops_sample": self._tflops(),
        }

    def metrics(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: (s.median if s is not None else None) for k, s in self._stats().items()}
        out["peak_mem_mb_train"] = self.train.peak_mib
        out["peak_mem_mb_sample"] = self.sample.peak_mib
        return out

    def spreads(self) -> dict[str, float]:
        return {k: s.iqr for k, s in self._stats().items() if s is not None}

    def details(self) -> dict[str, Any]:
        """Raw per-repeat seconds and context (for ``--json``)."""
        return {
            "train_step_s": list(self.train.seconds.samples),
            "sample_loop_s": list(self.sample.seconds.samples),
            "overhead_loop_s": list(self.overhead.seconds.samples),
            "nfe": self.sample.nfe,
            "params": self.params,
            "gflop_per_image": self.gflop_per_image,
            "memory_kind": self.train.memory_kind,
            "reused": list(self.reused),
            "seconds": round(self.seconds, 3),
            "load_average": {"before": self.load_before, "after": self.load_after},
            "torch_threads": self.threads,
        }

    def record(self, environment: dict[str, Any] | None = None) -> RunRecord:
        c = self.case
        metrics = self.metrics()
        return RunRecord(
            task="throughput", dataset=c.dataset, noise=c.noise, sampler=c.sampler, backbone=c.backbone,
            spec=c.spec(), spec_hash=c.spec_hash(), seeds={"bench": c.seed}, metrics=metrics,
            directions={k: DIRECTIONS[k] for k in metrics}, spreads=self.spreads(),
            timings={"measure_s": round(self.seconds, 3)},
            environment=dict(environment or {}) | {
                "bench": {"params": self.params, "gflop_per_image": self.gflop_per_image,
                          "memory_kind": self.train.memory_kind, "torch_threads": self.threads,
                          "load_average_before": self.load_before, "load_average_after": self.load_after}},
        )

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "backbone": c.backbone, "backbone_options": c.backbone_options, "noise": c.noise, "sampler": c.sampler,
            "device": c.device, "dtype": c.dtype, "batch_size": c.batch_size, "resolution": c.resolution,
            "sample_steps": c.sample_steps, "warmup": c.warmup, "repeats": c.repeats, "max_time": c.max_time,
            "repeats_made": {"train": self.train.seconds.n, "sample": self.sample.seconds.n,
                             "overhead": self.overhead.seconds.n}, "compile": c.compile,
            "channels_last": c.channels_last, "spec_hash": c.spec_hash(),
            "metrics": self.metrics(), "spreads": self.spreads(), "directions": DIRECTIONS, **self.details(),
        }


def _model_key(case: cb.BenchCase) -> str:
    return stable_hash({"backbone": case.backbone, "options": case.backbone_options, "device": case.device,
                        "channels": case.channels, "channels_last": case.channels_last, "seed": case.seed})


def run_cases(cases: list[cb.BenchCase], progress: Progress | None = None,
              log: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Measure every case (in the given order), sharing what can be shared; see the module docstring.

    ``progress`` (or a ``log(message)`` callable) gets a line per case and a bar over the cases (default: silent).
    """
    reporter = as_progress(progress, log)
    models: dict[str, torch.nn.Module] = {}
    trains: dict[str, Phase] = {}
    overheads: dict[str, Phase] = {}
    results = []
    with reporter.task("bench", total=len(cases), unit="case") as bar:
        for i, case in enumerate(cases, 1):
            reporter.log(f"[{i}/{len(cases)}] {case.backbone_label} · {case.noise} · {case.sampler} · batch "
                         f"{case.batch_size} · {case.sample_steps} steps · {case.dtype} on {case.device}")
            results.append(_measure(case, models, trains, overheads))
            bar.update(advance=1)
    return results


def _measure(case: cb.BenchCase, models: dict[str, torch.nn.Module], trains: dict[str, Phase],
             overheads: dict[str, Phase]) -> CaseResult:
    """One case; the network and the measurements it shares with earlier cases come from (and go to) the dicts."""
    load_before = load_average()
    t0 = time.perf_counter()
    process = cb.build_process(case)
    sampler = cb.build_sampler(case, process)
    variable = cb.build_variable(case, process)
    mkey = _model_key(case)
    if mkey not in models:
        models[mkey] = cb.build_network(case)
    model = models[mkey]
    reused: list[str] = []

    def shared(name: str, memo: dict[str, Phase], key: str, measure: Callable[[], Phase]) -> Phase:
        if key in memo:
            reused.append(name)
        else:
            memo[key] = measure()
        return memo[key]

    sample = measure_sampling(model, sampler, case, variable)
    overhead = shared("overhead", overheads, case.overhead_key(),
                      lambda: measure_sampler_overhead(sampler, case, variable))
    train = shared("train", trains, case.train_key(), lambda: measure_training(model, process, case))
    return CaseResult(
        case=case, sample=sample, overhead=overhead, train=train, params=cb.param_count(model),
        gflop_per_image=cb.forward_gflop(model, case), seconds=time.perf_counter() - t0, reused=reused,
        load_before=load_before, load_after=load_average(), threads=torch.get_num_threads(),
    )
