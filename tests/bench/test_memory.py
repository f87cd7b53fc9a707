"""Peak memory: the process's peak RSS on the CPU (reset per block), CUDA max allocated (faked)."""

import pytest
import torch

from cardiobench.bench import memory
from cardiobench.bench.memory import PeakMemory


def test_proc_status_reads_kib_fields():
    rss = memory.proc_status_kib("VmRSS")
    if rss is None:
        pytest.skip("no /proc/self/status here")
    assert rss > 10_000  # a Python process with torch holds more than 10 MB
    assert memory.proc_status_kib("NoSuchField") is None


def test_cpu_peak_sees_a_large_allocation_and_resets():
    with PeakMemory("cpu") as base:
        pass
    with PeakMemory("cpu") as big:
        x = torch.ones(64 * 2**20)  # 256 MiB of float32, written
        del x
    assert base.peak_mib is not None and big.peak_mib is not None
    assert big.peak_mib > base.peak_mib + 200
    if big.kind != "process_peak_rss":
        pytest.skip("this kernel does not allow resetting the peak RSS")
    with PeakMemory("cpu") as after:
        pass
    assert after.peak_mib < big.peak_mib - 200  # the reset forgot the freed 256 MiB


def test_cuda_path_reads_max_allocated(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)
    with PeakMemory("cuda") as mem:
        calls.append("work")
    assert calls == ["sync", "reset", "work", "sync"]
    assert mem.peak_mib == 3.0 and mem.kind == "cuda_max_allocated"


def test_memory_freed_on_the_heap_does_not_count_in_the_next_block():
    """Many small tensors live on glibc's heap (not mmap); after freeing them, trim_heap gives the pages back."""
    if not memory.trim_heap():
        pytest.skip("no glibc malloc_trim here")
    small = [torch.ones(1000) for _ in range(50_000)]  # ~200 MiB in 4 kB blocks
    with PeakMemory("cpu") as held:
        pass
    del small
    with PeakMemory("cpu") as after:
        pass
    if after.kind != "process_peak_rss":
        pytest.skip("this kernel does not allow resetting the peak RSS")
    assert after.peak_mib < held.peak_mib - 100
