"""Peak memory of a block of work: CUDA's max allocated bytes, or the process's peak resident set on the CPU.

- CUDA: ``torch.cuda.reset_peak_memory_stats`` on entry, ``torch.cuda.max_memory_allocated`` on exit (the
  device is synchronised both times). Tensors only: the caching allocator's reserve and the CUDA context are
  not counted.
- CPU (Linux): the peak resident set size ``VmHWM`` of ``/proc/self/status``, reset on entry by writing ``5``
  to ``/proc/self/clear_refs`` (Linux >= 4.0), after asking glibc to return freed heap memory to the system
  (``malloc_trim(0)``), so memory an earlier phase freed does not count. This is the whole process
  (interpreter, torch, the model, the allocator's cached blocks), so it is "how much RAM this needs", not the
  tensors alone. Where the reset is not allowed the value is the peak since the process started (``kind``
  says which).
- Elsewhere: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak since start).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from cardiobench.bench.timing import is_cuda, synchronize

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")

#: what ``PeakMemory.kind`` can be
KINDS = ("cuda_max_allocated", "process_peak_rss", "process_peak_rss_since_start")


def proc_status_kib(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmHWM``, ``VmRSS``), or ``None`` if unavailable."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            try:
                return int(parts[1])
            except (IndexError, ValueError):
                return None
    return None


def trim_heap() -> bool:
    """Return freed heap memory to the system (glibc ``malloc_trim(0)``); ``False`` where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS to its current RSS (after ``trim_heap``); ``False`` where the OS does not
    allow it."""
    trim_heap()
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float | None:
    """The process's peak resident set in MiB (``VmHWM``; ``ru_maxrss`` where there is no ``/proc``)."""
    kib = proc_status_kib("VmHWM")
    if kib is not None:
        return kib / 1024.0
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


class PeakMemory:
    """``with PeakMemory(device) as mem: ...`` then ``mem.peak_mib`` and ``mem.kind`` (see the module doc)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.peak_mib: float | None = None
        self.kind: str | None = None

    def __enter__(self) -> PeakMemory:
        if is_cuda(self.device):
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
        else:
            self.kind = "process_peak_rss" if reset_peak_rss() else "process_peak_rss_since_start"
        return self

    def __exit__(self, *exc: object) -> None:
        if is_cuda(self.device):
            synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mib = peak_rss_mib()
