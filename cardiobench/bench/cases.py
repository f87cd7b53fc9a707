"""What one throughput measurement runs: ``BenchCase`` (a plain, JSON-able spec) and the objects it builds.

A case is built from a resolved configuration (``cardiobench.config``): the backbone, the representation and
the noise process come from the ``[model]``, ``[data]`` and ``[diffusion]`` sections exactly as ``cardiobench run``
builds them (``pipeline.train_spec_from_config``, ``cardiobench.factories``), the sampler from ``[sample]``, the
loss and gradient clipping of the training step from ``[train]``, and the measurement settings from ``[bench]``.
Inputs are random label maps encoded by the representation, ``(batch, channels, resolution, resolution)``:
throughput does not depend on the pixels.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from cardiobench.data.base import NUM_CLASSES
from cardiobench.errors import CardiobenchError
from cardiobench.results.store import stable_hash

#: --dtype values and the autocast dtype each means (fp32: no autocast)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class BenchCase:
    """One (backbone, noise process, sampler) combination and how to measure it.

    ``device`` is where it runs (``cpu``, ``cuda``, ``cuda:N``; not part of ``spec()``: the leaderboard groups
    throughput by device). ``dtype`` is the autocast dtype of the network (the sampler's arithmetic stays
    fp32). ``warmup``/``repeats`` are untimed/timed repeats of every measurement; with ``max_time`` (seconds)
    a measurement stops repeating once its timed repeats add up to that (after at least two).
    """

    backbone: str = "unet"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    noise: str = "gaussian"
    noise_options: dict[str, Any] = field(default_factory=dict)
    sampler: str = "ddpm"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "phantom"
    resolution: int = 32
    channels: int = NUM_CLASSES
    batch_size: int = 64
    sample_steps: int = 50
    warmup: int = 2
    repeats: int = 5
    max_time: float | None = None
    dtype: str = "fp32"
    compile: bool = False
    channels_last: bool = False
    representation: str = "onehot"
    representation_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "smooth_l1"
    grad_clip: float = 1.0
    lr: float = 1e-4
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise CardiobenchError(f"unknown dtype {self.dtype!r}", f"use one of: {', '.join(DTYPES)}")
        for name in ("batch_size", "sample_steps", "repeats", "resolution", "channels"):
            if int(getattr(self, name)) < 1:
                raise CardiobenchError(f"bench {name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise CardiobenchError(f"bench warmup must be >= 0, got {self.warmup}")
        if self.max_time is not None and self.max_time <= 0:
            raise CardiobenchError(f"bench max_time must be > 0 seconds, got {self.max_time}")
        if self.loss not in ("mse", "smooth_l1"):
            raise CardiobenchError(f"unknown loss {self.loss!r}", "use mse or smooth_l1")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, C, H, W) of a batch."""
        return (self.batch_size, self.channels, self.resolution, self.resolution)

    @property
    def size(self) -> str | None:
        return self.backbone_options.get("size")

    @property
    def backbone_label(self) -> str:
        """``unet small``, or ``unet 16ch`` when the width is given instead of a named size."""
        if self.size:
            return f"{self.backbone} {self.size}"
        width = self.backbone_options.get("base_channels")
        return f"{self.backbone} {width}ch" if width else self.backbone

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES[self.dtype]

    def replace(self, **changes: Any) -> BenchCase:
        return replace(self, **changes)

    def spec(self) -> dict[str, Any]:
        """What determines the measurement (nested like a config, so the leaderboard reads steps, batch,
        dtype and resolution from it). The device is not in it."""
        data: dict[str, Any] = {"dataset": self.dataset, "resolution": self.resolution, "channels": self.channels}
        if (self.representation, self.representation_options) != ("onehot", {}):  # (the hashes of one-hot cases hold)
            data |= {"representation": self.representation,
                     "representation_options": copy.deepcopy(self.representation_options)}
        return {
            "task": "throughput",
            "data": data,
            "model": {"backbone": self.backbone, "options": copy.deepcopy(self.backbone_options)},
            "diffusion": {"noise": self.noise, "options": copy.deepcopy(self.noise_options)},
            "sample": {"sampler": self.sampler, "options": copy.deepcopy(self.sampler_options),
                       "steps": self.sample_steps},
            "train": {"loss": self.loss, "grad_clip": self.grad_clip, "optimizer": "adam"},
            "bench": {"batch_size": self.batch_size, "sample_steps": self.sample_steps, "warmup": self.warmup,
                      "repeats": self.repeats, "max_time": self.max_time, "dtype": self.dtype, "compile": self.compile,
                      "channels_last": self.channels_last},
        }

    def spec_hash(self) -> str:
        return stable_hash(self.spec())

    # keys of the measurements that several cases share (see runner.run_cases)
    def train_key(self) -> str:
        s = self.spec()
        return stable_hash({k: s[k] for k in ("data", "model", "diffusion", "train")} | {"bench": s["bench"],
                           "device": self.device})

    def overhead_key(self) -> str:
        s = self.spec()
        return stable_hash({k: s[k] for k in ("data", "diffusion", "sample")} | {"device": self.device,
                           "batch": self.batch_size, "warmup": self.warmup, "repeats": self.repeats})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def case_from_config(cfg: dict[str, dict[str, Any]], device: str = "cpu", max_time: float | None = None
                     ) -> BenchCase:
    """The ``BenchCase`` a resolved configuration describes (see the module docstring)."""
    from cardiobench.engine.pipeline import sampler_options_of, train_spec_from_config
    from cardiobench.factories import model_channels

    spec = train_spec_from_config(cfg)
    bench, sample = cfg["bench"], cfg["sample"]
    sampler_options = sampler_options_of(cfg)  # as a run gives them (sample.eta only to samplers that take it)
    return BenchCase(
        backbone=spec.backbone, backbone_options=dict(spec.backbone_options), noise=spec.noise,
        noise_options=dict(spec.noise_options), sampler=sample["sampler"], sampler_options=sampler_options,
        dataset=spec.dataset, resolution=spec.resolution, channels=model_channels(spec)[0],
        representation=spec.representation, representation_options=dict(spec.representation_options),
        batch_size=bench["batch_size"],
        sample_steps=bench["sample_steps"], warmup=bench["warmup"], repeats=bench["repeats"], max_time=max_time,
        dtype=bench["dtype"],
        compile=bool(bench["compile"]), channels_last=bool(bench["channels_last"]), loss=spec.loss,
        grad_clip=spec.grad_clip, lr=spec.lr, seed=spec.seed, device=str(device),
    )


# -- building (through ``cardiobench.factories``, like every other component) ------------------------------
def build_process(case: BenchCase):
    from cardiobench.factories import create

    return create("noise", case.noise, **case.noise_options)


def build_variable(case: BenchCase, process: Any):
    """The ``DiffusedVariable`` of the case (its representation and ``process`` at its resolution): what the
    training step encodes and computes the loss with, and what sampling draws ``x_T`` from and decodes."""
    from cardiobench.diffusion.representation import DiffusedVariable
    from cardiobench.factories import create

    representation = create("representation", case.representation, **case.representation_options)
    if representation.channels != case.channels:
        raise CardiobenchError(f"representation {case.representation!r} has {representation.channels} channels, "
                               f"the case {case.channels}")
    return DiffusedVariable(representation, process, case.resolution)


def build_sampler(case: BenchCase, process: Any):
    from cardiobench.factories import build_sampler as build
    from cardiobench.plugins import check_compatible

    check_compatible(noise=case.noise, sampler=case.sampler)
    return build(case.sampler, process, case.sampler_options, case.sample_steps)


def build_network(case: BenchCase) -> torch.nn.Module:
    """The backbone on ``case.device`` (seeded), in channels_last if asked; not compiled (see ``prepare``)."""
    from cardiobench.factories import create

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.seed)
        model = create("backbone", case.backbone, case.channels, case.channels, **case.backbone_options)
    if not isinstance(model, torch.nn.Module):
        raise CardiobenchError(f"backbone {case.backbone!r} did not return a torch.nn.Module")
    model = model.to(case.device)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare(model: torch.nn.Module, case: BenchCase) -> Callable[..., torch.Tensor]:
    """The callable that runs the network: ``torch.compile(model)`` if ``case.compile``, else the model."""
    if not case.compile:
        return model
    try:
        return torch.compile(model)
    except Exception as exc:  # pragma: no cover - depends on the platform's compiler toolchain
        raise CardiobenchError(f"torch.compile failed: {exc}", "run without --compile") from None


def autocast(case: BenchCase) -> contextlib.AbstractContextManager:
    """Autocast to ``case.dtype`` on the case's device type (a no-op context for fp32)."""
    dt = case.autocast_dtype
    if dt is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(case.device).type, dtype=dt)


def to_memory_format(x: torch.Tensor, case: BenchCase) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if case.channels_last else x


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_gflop(model: torch.nn.Module, case: BenchCase) -> float | None:
    """Floating-point operations (GFLOP, 2 per multiply-add) of one forward pass per image, counted by
    ``torch.utils.flop_counter`` on a batch of one (``None`` if counting fails)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        x = torch.zeros((1, case.channels, case.resolution, case.resolution), device=case.device)
        t = torch.zeros((1,), dtype=torch.long, device=case.device)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(to_memory_format(x, case), t)
        return counter.get_total_flops() / 1e9
    except Exception:
        return None


