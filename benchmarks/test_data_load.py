"""Loading the real ACDC HDF5 volumes (``acdc-h5``): all 100 patients (200 gzip HDF5 files) at 64x64.

- cold: no cache; read, normalise, crop and resize every volume (``cache=False``);
- warm: the preprocessed ``.npz`` cache already written, read back.

The data is found at ``../shared/data/acdc-ssl4mis`` beside the repository (never copied into it); without
it both benchmarks skip with the reason. The numbers are quoted in docs/data.md (acdc-h5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobench.data import SPLITS, open_dataset

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "acdc-ssl4mis"

pytestmark = pytest.mark.skipif(
    not (REAL / "volumes").is_dir(), reason=f"the real ACDC HDF5 volumes are not at {REAL} (see docs/data.md)"
)
GROUP = "acdc-h5 load, 100 patients / 200 HDF5 files, 64x64"


def _load_all(**options) -> int:
    src = open_dataset("acdc-h5", data_root=str(REAL), size=64, **options)
    n = sum(len(src.load(s)) for s in SPLITS)
    assert src.describe()["splits"]["train"]["patients"] > 0
    return n


def test_acdc_h5_cold(benchmark):
    """Every file read and preprocessed, no cache."""
    benchmark.group = GROUP
    n = benchmark.pedantic(_load_all, kwargs={"cache": False}, rounds=2, warmup_rounds=0)
    assert n > 1500  # 1,841 labelled slices


def test_acdc_h5_warm(benchmark, tmp_path, monkeypatch):
    """The cache built once (not timed), then read back."""
    benchmark.group = GROUP
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path))
    n_cold = _load_all()
    n = benchmark.pedantic(_load_all, rounds=5, warmup_rounds=1)
    assert n == n_cold
