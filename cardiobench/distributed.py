"""Data parallelism under ``torchrun``: the process group, rank-0-only writes, collectives, preemption signals.

``torchrun --nproc_per_node N -m cardiobench train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` in their environment. ``init()`` joins the
process group they describe (NCCL when training on CUDA, gloo on the CPU) the first time a library entry point
(training, sampling, a run) needs it; without those variables everything here is a no-op for one process, so
the single-process path runs the very same code.

The rules every entry point follows:

- **one writer**: checkpoints, caches (data, evaluators), samples and result rows are written by rank 0 only
  (``is_main()``); ``main_first()`` lets rank 0 fill a cache before the other ranks read it;
- **agreement**: every decision that leads to a collective (checkpoint now, stop now) is taken by every rank at
  the same step (``agree``), so no rank waits on a collective the others skipped;
- **preemption**: ``StopSignals`` turns SIGTERM and SIGUSR1 (what Slurm sends before a time limit; SIGINT too
  under torchrun) into a flag the training loop checks after each step: it writes a checkpoint and stops.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from cardiobench.errors import CardiobenchError

__all__ = [
    "StopSignals", "agree", "all_gather_object", "backend_for", "barrier", "broadcast_object", "env_world_size",
    "init", "is_main", "local_rank", "main_first", "rank", "world_size",
]


def env_world_size() -> int:
    """The world size ``torchrun`` announced in the environment (1 without it), before the group exists."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise CardiobenchError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer",
                               "launch with torchrun, or unset WORLD_SIZE") from None


def active() -> bool:
    """Whether a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the group's, else the one torchrun announced (``RANK``), else 0."""
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if env_world_size() > 1 else 0


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    """This process's index on its node (``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the one process that writes (rank 0, or the only process)."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device | str = "cpu") -> torch.device:
    """Join the process group ``torchrun`` describes (once), and return the device this rank uses.

    One process (no ``WORLD_SIZE`` > 1): nothing to join, ``device`` as given. Under torchrun on CUDA each rank
    takes ``cuda:LOCAL_RANK``.
    """
    dev = torch.device(device)
    if env_world_size() <= 1:
        return dev
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_available():
        raise CardiobenchError("this PyTorch build has no torch.distributed", "run one process, without torchrun")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(dev))
        atexit.register(_destroy)
    return dev


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if active():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable; the object itself for one process)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` for one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank -> true on every rank (one all-reduce of a small int tensor)."""
    if not active():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def mean_value(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over every rank (detached; the value itself for one process)."""
    if not active():
        return value.detach()
    t = value.detach().clone().reshape(1).float()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / world_size()).reshape(())


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling a cache), then the others (reading it)."""
    if is_main():
        yield
        barrier()
    else:
        barrier()
        yield


class StopSignals:
    """Turns preemption signals into a flag: ``with StopSignals() as stop: ... if stop.requested: ...``.

    SIGTERM and SIGUSR1 always; SIGINT too when ``interrupt`` (under torchrun, so that every rank stops at the same
    step through ``agree`` instead of one rank raising ``KeyboardInterrupt`` in the middle of a collective). The
    previous handlers come back on exit. Outside the main thread (where Python cannot install handlers) it only
    holds the flag.
    """

    def __init__(self, *, interrupt: bool = False) -> None:
        self.signum: int | None = None
        names = ["SIGTERM", "SIGUSR1"] + (["SIGINT"] if interrupt else [])
        self._signals = [getattr(signal, n) for n in names if hasattr(signal, n)]
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self._signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
