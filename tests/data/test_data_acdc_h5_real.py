"""``acdc-h5`` on the real ACDC volumes at ``../shared/data/acdc-ssl4mis`` (beside the repository), if present.

The data is never copied into the repository; without it these tests skip with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardiobench.cli.data_cmd import SIZE
from cardiobench.data import GROUPS, open_dataset
from cardiobench.testing.cli import invoke

REPO = Path(__file__).resolve().parents[2]
#: as a newcomer types it, from the repository root
REL_ROOT = "../shared/data/acdc-ssl4mis"
REAL = REPO / ".." / "shared" / "data" / "acdc-ssl4mis"

pytestmark = [
    pytest.mark.skipif(
        not (REAL / "volumes").is_dir(),
        reason=f"the real ACDC HDF5 volumes are not at {REAL} (see docs/data.md, acdc-h5)",
    ),
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.slow,  # about 9 s each on 2 cores: every test builds all 100 patients once (a cache per split)
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("acdc-h5-real-cache")


def info(cache: Path, monkeypatch, *extra: str) -> dict:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(cache))
    result = invoke("data", "info", "--dataset", "acdc-h5", "--data-root", REL_ROOT, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_real_data_all_patients_stratified(cache, monkeypatch):
    data = info(cache, monkeypatch)
    splits = data["splits"]
    assert sum(s["patients"] for s in splits.values()) == 100
    per_group = {g: sum(s["patients_by_group"][g] for s in splits.values()) for g in GROUPS}
    assert per_group == dict.fromkeys(GROUPS, 20)
    assert {k: s["patients"] for k, s in splits.items()} == {"train": 65, "val": 15, "test": 20}
    assert all(s["patients_by_group"][g] == 4 for s in (splits["test"],) for g in GROUPS)
    assert data["native"]["shapes"]["volumes"] == 200 and data["skipped_count"] == 0
    assert data["spacing_unit"] == "px" and splits["train"]["spacing"]["unit"] == "px"
    assert "spacing_mm" not in splits["train"]
    assert sum(s["phases"]["ED"] for s in splits.values()) > 0 and sum(s["phases"]["ES"] for s in splits.values()) > 0


def test_real_data_ssl4mis_split(cache, monkeypatch):
    data = info(cache, monkeypatch, "--dataset-opt", "split=ssl4mis")
    assert {k: s["patients"] for k, s in data["splits"].items()} == {"train": 70, "val": 10, "test": 20}
    assert data["split"]["name"] == "ssl4mis" and data["unassigned_patients"] == []
    # the very patients of the file (read back from the cache the command wrote)
    expected = json.loads((REAL / "split_ssl4mis.json").read_text())
    src = open_dataset("acdc-h5", data_root=REL_ROOT, size=SIZE, split="ssl4mis")  # data info's default size
    sets = src.load_all()
    assert src.cache_hit is True
    assert {k: sorted(np.unique(s.patients)) for k, s in sets.items()} == {k: sorted(v) for k, v in expected.items()}
