"""pytest-benchmark suites (``make bench`` = ``pytest benchmarks``; not part of ``make test``).

Environment:
- ``CARDIOBENCH_BENCH_THREADS=N`` sets torch's CPU threads (default: torch's). On a machine busy with other
  work use 1: OpenMP barriers with 2 threads on 2 oversubscribed cores make small networks 100x slower.
- ``CARDIOBENCH_BENCH_DEVICE=cuda`` runs the network and sampler benchmarks on a GPU (timed with
  synchronisation inside each call, see ``sync``).

The load average and thread count are added to the report header and to ``--benchmark-json`` machine info.
"""

from __future__ import annotations

import os

# passive OpenMP waiting before torch loads, as the CLI does (cardiobench/threads.py): spinning threads on a busy
# 2-core machine made small networks several times slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch

from benchmarks.common import DEVICE

os.environ.setdefault("CARDIOBENCH_LOAD_PLUGINS", "")  # built-ins only: the suites measure cardiobench itself

if os.environ.get("CARDIOBENCH_BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["CARDIOBENCH_BENCH_THREADS"]))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def pytest_report_header(config):
    return (f"cardiobench benchmarks: device {DEVICE}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} cores, load average {_load()}")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cardiobench"] = {"device": str(DEVICE), "torch_threads": torch.get_num_threads(),
                                   "load_average_start": _load(), "torch": torch.__version__}


@pytest.fixture(scope="session")
def mask_pairs() -> tuple[np.ndarray, np.ndarray]:
    """1,000 pairs of 128x128 label maps with RV, MYO and LV (plausible jittered hearts)."""
    from cardiobench.testing.metrics import contract_masks

    return contract_masks(1000, 128, seed=0), contract_masks(1000, 128, seed=1)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return DEVICE
