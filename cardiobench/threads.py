"""How many CPU threads torch uses: a policy that is never catastrophic on a machine shared with other work.

Why. torch's CPU kernels run in OpenMP parallel regions (GNU libgomp in the PyPI wheels) with one thread per
CPU in the process's affinity mask. At the end of each region the threads wait for each other, and by
default a waiting libgomp thread first *spins* (300,000 iterations of a busy-wait loop, see GOMP_SPINCOUNT)
before it sleeps. On a machine whose CPUs other processes also use, the spinning thread takes the CPU that
the thread it waits for (or another process) needs, at every one of the thousands of small regions of a
U-Net forward pass: sampling on 2 cores loaded with other work took 3 to 5 times longer with torch's
defaults than with ``OMP_WAIT_POLICY=PASSIVE`` (docs/performance.md, "Threads on a shared machine").

The policy, applied by the CLI before torch is imported (``thread_policy``):

1. ``OMP_WAIT_POLICY=PASSIVE`` unless the user set ``OMP_WAIT_POLICY``: waiting threads sleep at once
   instead of spinning.
2. The thread count, first match wins: the global ``--threads N`` option; ``CARDIOBENCH_THREADS=N``;
   a user-set ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``), left to torch untouched; otherwise *auto*:
   the CPUs this process may use, i.e. its affinity mask (``os.sched_getaffinity``, what torch uses too)
   capped by a cgroup CPU quota (which torch ignores: a container limited to 2 CPUs on a 64-CPU host
   would otherwise run 64 threads). Explicit values are used as given, even above the CPU count.
   The load from other work does not lower the count: with passive waiting, 2 threads on 2 cores busy
   with other work sampled faster than 1 thread (measured, docs/performance.md).
3. When auto chooses fewer threads than torch would have used, one line on stderr says so (``notice``).

The choice is passed to torch through ``OMP_NUM_THREADS`` in the environment, which torch, libgomp and MKL
read when torch is imported. If torch is already imported (cardiobench used as a library, or the test
suite), an explicit count is set with ``torch.set_num_threads`` and auto leaves the host program's threads
alone. ``thread_policy`` restores the environment (and torch's thread count) on exit.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path

from cardiobench.errors import CardiobenchError

ENV_VAR = "CARDIOBENCH_THREADS"
#: environment variables a user sets to choose OpenMP/MKL threads; cardiobench leaves them to torch
USER_THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadDecision:
    """What the policy chose, and why.

    ``threads`` is None when a user-set ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` decides (torch reads it).
    ``default`` is what torch would use on its own (the CPUs in the affinity mask); ``cpus`` the CPUs this
    process may use (affinity, capped by a cgroup quota). ``applied``: ``thread_policy`` passed the count on
    to torch (False for auto when torch was imported before, e.g. in a program that uses cardiobench as a
    library).
    """

    threads: int | None
    source: str  # "--threads", "CARDIOBENCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS" or "auto"
    default: int
    cpus: int
    applied: bool = False

    @property
    def lowered(self) -> bool:
        """True when the automatic choice is below torch's own default."""
        return self.source == "auto" and self.threads is not None and self.threads < self.default

    def notice(self) -> str:
        """The one line the CLI shows on stderr when the policy lowered threads ("" when it did not)."""
        if not (self.lowered and self.applied):
            return ""
        plural = "s" if self.threads != 1 else ""
        return (f"Note: using {self.threads} CPU thread{plural} instead of {self.default} (the CPU quota of this "
                f"container); choose with `cardiobench --threads N` or {ENV_VAR}=N")


def affinity_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this container in CPUs (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or None."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(affinity: int, quota: float | None) -> int:
    """The CPUs a process may keep busy: its affinity mask, capped by a CPU quota (rounded up)."""
    if quota is None:
        return affinity
    return max(1, min(affinity, math.ceil(quota - 1e-9)))


def parse_threads(value: str | int, what: str) -> int:
    """A thread count >= 1 from an option or variable; a one-line error otherwise."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
        bad = True
    else:
        bad = n < 1
    if bad:
        raise CardiobenchError(f"{what} must be a whole number of threads >= 1, got {str(value).strip()!r}",
                               f"e.g. {what} 1" if what.startswith("--") else f"e.g. {what}=1, or unset it")
    return n


def choose_threads(
    option: int | None,
    env: MutableMapping[str, str] | None = None,
    *,
    affinity: int | None = None,
    quota: float | None = None,
) -> ThreadDecision:
    """Decide the thread count (see the module docstring); the CPU facts default to this machine's."""
    env = os.environ if env is None else env
    default = affinity_cpus() if affinity is None else affinity
    cpus = usable_cpus(default, cgroup_cpu_limit() if affinity is None and quota is None else quota)
    if option is not None:
        return ThreadDecision(parse_threads(option, "--threads"), "--threads", default, cpus)
    if env.get(ENV_VAR, "").strip():
        return ThreadDecision(parse_threads(env[ENV_VAR], ENV_VAR), ENV_VAR, default, cpus)
    for var in USER_THREAD_VARS:
        if env.get(var, "").strip():
            try:
                n: int | None = max(1, int(env[var].split(",")[0]))
            except ValueError:
                n = None
            return ThreadDecision(n, var, default, cpus)
    return ThreadDecision(cpus, "auto", default, cpus)


def _torch_loaded() -> bool:
    return "torch" in sys.modules


@contextlib.contextmanager
def thread_policy(option: int | None = None, env: MutableMapping[str, str] | None = None,
                  **machine: float | None) -> Iterator[ThreadDecision]:
    """Apply the policy for the duration of the block; restore the environment and torch's threads after.

    ``machine`` passes ``affinity`` and ``quota`` on to ``choose_threads`` (tests).
    """
    env = os.environ if env is None else env
    decision = choose_threads(option, env, **machine)  # type: ignore[arg-type]
    saved = {k: env.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    torch_threads: int | None = None
    try:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if decision.threads is not None and decision.source not in USER_THREAD_VARS:
            if not _torch_loaded():
                env["OMP_NUM_THREADS"] = str(decision.threads)  # read by libgomp, MKL and torch at import
                decision = replace(decision, applied=True)
            elif decision.source != "auto":  # a library user's torch: only an explicit request changes it
                import torch

                torch_threads = torch.get_num_threads()
                torch.set_num_threads(decision.threads)
                decision = replace(decision, applied=True)
        yield decision
    finally:
        for key, value in saved.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
