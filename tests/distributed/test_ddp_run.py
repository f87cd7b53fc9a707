"""``torchrun --nproc_per_node 2 -m cardiobench run``: the ranks train together and share the sampling; rank 0
alone evaluates, prints and stores one row. Its samples are the ones one process draws from the same checkpoint."""

from __future__ import annotations

import json
import os

import numpy as np
from torchrun_helpers import torchrun

from cardiobench.engine.checkpoints import load_checkpoint
from cardiobench.engine.sample import sample
from cardiobench.results.store import ResultStore
from cardiobench.specs import TrainSpec


def test_run_under_torchrun_stores_one_row_from_rank_0(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CARDIOBENCH_CACHE_DIR", str(cache))  # the ranks' children inherit it
    db = tmp_path / "r.db"
    proc = torchrun(["-m", "cardiobench", "run", "--preset", "tiny", "--no-gif", "--json", "--results", str(db),
                     "--set", "sample.batch_size=4"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # one JSON document: rank 1 prints nothing
    assert proc.stderr.count("cardiobench run") == 1  # the header once, from rank 0
    [row] = ResultStore(db).runs()
    assert row.id == result["id"] and row.metrics["fid"] is not None
    state = load_checkpoint(row.artefacts["checkpoint"])
    assert TrainSpec.from_dict(state["spec"]).shards == 2  # trained data parallel: global batch 2 x 4
    with np.load(row.artefacts["samples"]) as f:
        masks = f["masks"]
    assert masks.shape == (8, 16, 16)  # eval.num_samples of tiny, batches 0 and 1 drawn by ranks 0 and 1
    one = sample(row.artefacts["checkpoint"], sampler="ddpm", steps=4, num_samples=8, batch_size=4, seed=0,
                 device="cpu")
    np.testing.assert_array_equal(masks, one.masks)
    assert not os.environ.get("WORLD_SIZE")
