"""Synthetic rows for leaderboard tests and for the format demo in docs/leaderboard.md.

Every number here is made up. Run ``python tests/results/lb_demo.py DIR`` to fill ``DIR/results.db``
(and tiny sample-grid PNGs) with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cardiobench.results.store import ResultStore, RunRecord, stable_hash

GEN_DIRECTIONS = {"fid": "lower", "kid": "lower", "is": "higher", "plausible": "higher"}
ENV_CPU = {"cardiobench": "0.1.0", "device": {"type": "cpu", "name": "demo CPU"}}
ENV_GPU = {"cardiobench": "0.1.0", "device": {"type": "cuda", "name": "demo GPU"}}


def grid_png(path: Path, seed: int, size: int = 32, n: int = 9) -> Path:
    """A grid of n toy 'heart' label maps (RV, MYO ring, LV), drawn with the project's colour code."""
    import numpy as np

    from cardiobench.viz import save_grid

    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for k in range(n):
        cy, cx = size / 2 + rng.uniform(-2, 2, size=2)
        r = size / 5 + rng.uniform(-1, 1.5)
        d = np.hypot(yy - cy, xx - cx)
        rv = np.hypot(yy - cy, (xx - (cx - r * 1.1)) * 1.4) < r * 1.05
        masks[k][rv] = 1
        masks[k][d < r + 2.5] = 2
        masks[k][d < r] = 3
    return save_grid(path, masks, nrow=3)


def default_spec_hash(run: RunRecord) -> str:
    """The spec hash ``ResultStore.add_run`` would give ``run`` (known up front, to name its run folder)."""
    identity = {k: getattr(run, k) for k in ("task", "dataset", "noise", "sampler", "backbone", "conditioning")}
    return stable_hash(identity | {"spec": run.spec})


def generation_runs(evaluator: str = "ev-7c1e2a9f", results_dir: Path | None = None) -> list[RunRecord]:
    """Four made-up generation runs; with ``results_dir``, each gets a sample grid where ``cardiobench run``
    writes it: ``results_dir/runs/SPEC_HASH[:12]/grid.png``."""
    rows = [
        ("gaussian", "ddpm", 50, 18.42, 0.0121, 2.31, 0.91),
        ("gaussian", "ddim", 50, 21.07, 0.0154, 2.25, 0.88),
        ("blurring", "ddpm", 50, 15.86, 0.0098, 2.44, 0.94),
        ("blurring", "ddim", 50, 19.93, 0.0139, 2.40, 0.90),
    ]
    runs = []
    for i, (noise, sampler, steps, fid, kid, is_, plaus) in enumerate(rows):
        run = RunRecord(
            task="generation", dataset="phantom", noise=noise, sampler=sampler, backbone="unet",
            spec={"sample": {"steps": steps, "sampler": sampler}, "diffusion": {"noise": noise}},
            train_hash=f"train-{noise}", seeds={"train": 0, "sample": 0},
            metrics={"fid": fid, "kid": kid, "is": is_, "plausible": plaus},
            spreads={"fid": round(fid * 0.04, 2)}, directions=dict(GEN_DIRECTIONS),
            evaluator_id=evaluator, timings={"train_s": 140.0, "sample_s": 22.5, "eval_s": 9.1},
            environment=ENV_CPU,
        )
        run.spec_hash = default_spec_hash(run)
        if results_dir is not None:
            grid = Path(results_dir) / "runs" / run.spec_hash[:12] / "grid.png"
            run.artefacts["sample_grid"] = str(grid_png(grid, seed=i))
        runs.append(run)
    return runs


def throughput_runs() -> list[RunRecord]:
    out = []
    for env, dtype, ips, ms in ((ENV_CPU, "fp32", 212.4, 4.81), (ENV_GPU, "bf16", 24510.0, 0.21)):
        for sampler, factor in (("ddpm", 1.0), ("ddim", 1.03)):
            out.append(
                RunRecord(
                    task="throughput", dataset="phantom", noise="gaussian", sampler=sampler, backbone="unet",
                    spec={"bench": {"batch_size": 64, "dtype": dtype, "sample_steps": 50}},
                    metrics={"images_per_s": round(ips * factor, 1), "ms_per_nfe": round(ms / factor, 3),
                             "peak_mem_mb": 812.0},
                    spreads={"images_per_s": round(ips * 0.02, 1)},
                    directions={"images_per_s": "higher", "ms_per_nfe": "lower", "peak_mem_mb": "lower"},
                    environment=env,
                )
            )
    return out


def fill_demo_store(folder: Path) -> ResultStore:
    """A store with 4 generation runs (one evaluator), 1 run of another evaluator, 4 throughput runs."""
    folder = Path(folder).resolve()
    store = ResultStore(folder / "results.db")
    for run in generation_runs(results_dir=folder):
        store.add_run(run)
    other = generation_runs(evaluator="ev-03b5d6e1")[0]
    other.metrics = {"fid": 9.99, "kid": 0.005}
    store.add_run(other)
    for run in throughput_runs():
        store.add_run(run)
    return store


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-results")
    print(fill_demo_store(target).path)
