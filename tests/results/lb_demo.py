"""Synthetic rows for leaderboard tests and for the format demo in docs/leaderboard.md.

Every number here is made up. Run ``python tests/results/lb_demo.py DIR`` to fill ``DIR/results.db``
(and tiny sample-grid PNGs) with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cardiobench.metrics.base import METRIC_DIRECTIONS
from cardiobench.results.store import ResultStore, RunRecord, stable_hash

GEN_DIRECTIONS = {"fid": "lower", "kid": "lower", "is": "higher", "plausible": "higher"}
SEG_DIRECTIONS = {"dice_mean": "higher", "hd95_mean": "lower", "hd95_lv": "lower", "anatomy_valid_frac": "higher"}
#: a ruler validity record as evaluate_generation's meta["ruler_validity"] holds it, flagged
FLAGGED_RULER = {"valid": False, "flag": "accuracy 0.27 vs chance 0.2; ordering fails at mismatched < damaged",
                 "accuracy": 0.27, "chance": 0.2,
                 "ordering": {"real": 0.61, "mismatched": 14.2, "damaged": 11.9, "blobs": 48.3}}
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


def generation_runs(evaluator: str = "ev-7c1e2a9f", results_dir: Path | None = None,
                    n_samples: int = 256) -> list[RunRecord]:
    """Four made-up generation runs of ``n_samples`` samples each, distances in mm; with ``results_dir``, each
    gets a sample grid where ``cardiobench run`` writes it: ``results_dir/runs/SPEC_HASH[:12]/grid.png``."""
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
            spec={"sample": {"steps": steps, "sampler": sampler, "num_samples": n_samples},
                  "diffusion": {"noise": noise}},
            train_hash=f"train-{noise}", seeds={"train": 0, "sample": 0},
            metrics={"fid": fid, "kid": kid, "is": is_, "plausible": plaus},
            spreads={"fid": round(fid * 0.04, 2)}, directions=dict(GEN_DIRECTIONS),
            evaluator_id=evaluator, timings={"train_s": 140.0, "sample_s": 22.5, "eval_s": 9.1},
            environment=ENV_CPU, context={"n_samples": n_samples, "distance_unit": "mm"},
        )
        run.spec_hash = default_spec_hash(run)
        if results_dir is not None:
            grid = Path(results_dir) / "runs" / run.spec_hash[:12] / "grid.png"
            run.artefacts["sample_grid"] = str(grid_png(grid, seed=i))
        runs.append(run)
    return runs


def segmentation_runs() -> list[RunRecord]:
    """Made-up segmentation runs on ``acdc-h5``: two without voxel spacing (distances in px) and one with
    ``spacing_mm`` given (distances in mm), 128 test images each."""
    rows = [
        ("controlnet", "px", 0.871, 2.94, 2.31, 0.93),
        ("concat", "px", 0.842, 3.62, 2.88, 0.90),
        ("controlnet", "mm", 0.871, 4.41, 3.47, 0.93),
    ]
    runs = []
    for method, unit, dice, hd_mean, hd_lv, valid in rows:
        options = {"spacing_mm": 1.5} if unit == "mm" else {}
        runs.append(RunRecord(
            task="segmentation", dataset="acdc-h5", noise="gaussian", sampler="ddim", backbone="unet",
            conditioning=method,
            spec={"sample": {"steps": 10, "sampler": "ddim", "num_samples": 128}, "eval": {"ensemble_k": 5},
                  "train": {"dataset_options": options}},
            train_hash=f"train-{method}-{unit}", seeds={"train": 0, "sample": 0},
            metrics={"dice_mean": dice, "hd95_mean": hd_mean, "hd95_lv": hd_lv, "anatomy_valid_frac": valid},
            directions=dict(SEG_DIRECTIONS), evaluator_id="seg-acdc-1", environment=ENV_CPU,
            context={"n_samples": 128, "distance_unit": unit},
        ))
    return runs


#: every value a default generation run stores (fidelity, memorisation, anatomy), in the order a run stores them
FULL_GEN_METRICS: tuple[str, ...] = (
    "fid", "fid_relative", "kid", "kid_std", "is", "is_std", "precision", "recall", "f_score",
    "nn_dice_mean", "copy_frac", "diversity", "anatomy_valid_frac", "anatomy_holes_in_lv", "anatomy_holes_in_rv",
    "anatomy_holes_in_myo", "anatomy_disconnected_lv", "anatomy_disconnected_rv", "anatomy_disconnected_myo",
    "anatomy_empty")


def full_generation_runs(n_samples: int = 1000) -> list[RunRecord]:
    """Made-up class-conditional generation runs the way ``cardiobench compare --conditioning classifier-free
    --guidance-scale 0,1,3`` stores them: every value of the default metrics plus the conditional ones, and
    the real-vs-real reference in the context. The wide rows of a real board."""
    reference = {"fid": 0.06, "fid_relative": 1.0, "kid": 0.0001, "kid_std": 0.0002, "is": 2.95, "is_std": 0.05,
                 "precision": 0.954, "recall": 0.94, "f_score": 0.947, "nn_dice_mean": 0.81, "copy_frac": 0.0,
                 "diversity": 0.42, "anatomy_valid_frac": 0.953, "cond_accuracy": 0.783, "fid_class_mean": 0.53}
    rows = [(0.0, 27.2, 0.031, 1.59, 0.848, 0.917, 0.981, 0.209, 73.6),
            (1.0, 0.62, 0.0007, 3.09, 0.848, 0.967, 0.968, 0.806, 1.94),
            (3.0, 5.2, 0.0061, 3.56, 0.59, 0.872, 0.916, 0.914, 18.1)]
    runs = []
    for i, (scale, fid, kid, is_, prec, rec, valid, acc, fid_cls) in enumerate(rows):
        metrics = {name: 0 for name in FULL_GEN_METRICS}  # anatomy criteria: counts of maps breaking each one
        metrics.update({"fid": fid, "fid_relative": round(fid / 0.06, 2), "kid": kid, "kid_std": kid / 10,
                        "is": is_, "is_std": 0.04, "precision": prec, "recall": rec,
                        "f_score": round(2 * prec * rec / (prec + rec), 3), "nn_dice_mean": 0.79 + i / 100,
                        "copy_frac": 0.0, "diversity": 0.41, "anatomy_valid_frac": valid,
                        "anatomy_holes_in_myo": 3 + 4 * i, "anatomy_disconnected_rv": i,
                        "cond_accuracy": acc, "fid_class_mean": fid_cls, "kid_class_mean": kid * 3})
        spec = {"sample": {"steps": 25, "sampler": "ddim", "num_samples": n_samples},
                "conditioning": {"method": "classifier-free", "guidance_scale": scale}}
        run = RunRecord(
            task="generation", dataset="phantom", noise="gaussian", sampler="ddim", backbone="unet",
            conditioning="classifier-free", spec=spec, train_hash="train-cfg", seeds={"train": 0, "sample": 0},
            metrics=metrics, spreads={}, directions={k: v for k, v in METRIC_DIRECTIONS.items() if k in metrics
                                                     and v in ("lower", "higher")},
            evaluator_id="e6aae41485c9", environment=ENV_CPU,
            context={"n_samples": n_samples, "distance_unit": "mm", "reference": dict(reference)},
        )
        runs.append(run)
    return runs


def full_segmentation_runs() -> list[RunRecord]:
    """Made-up segmentation runs with every value a default segmentation run stores, the per-structure HD95
    missing counts and the penalised HD95 included."""
    rows = [("controlnet", 0.871, 2.94, 0, 2.94), ("concat", 0.842, 3.62, 5, 5.48)]
    runs = []
    for method, dice, hd, missing, penalised in rows:
        metrics = {"dice_rv": dice - 0.05, "dice_myo": dice - 0.02, "dice_lv": dice + 0.07, "dice_mean": dice,
                   "hd95_rv": hd + 1.1, "hd95_myo": hd - 0.4, "hd95_lv": hd - 0.7, "hd95_mean": hd,
                   "hd95_missing": missing, "hd95_missing_rv": missing, "hd95_missing_myo": 0, "hd95_missing_lv": 0,
                   "hd95_penalised_mean": penalised, "anatomy_valid_frac": 0.93, "anatomy_holes_in_lv": 1,
                   "dice_mean_single": dice - 0.03, "uncertainty_mean": 0.012, "uncertainty_fg": 0.081}
        runs.append(RunRecord(
            task="segmentation", dataset="acdc-h5", noise="gaussian", sampler="ddim", backbone="unet",
            conditioning=method,
            spec={"sample": {"steps": 10, "sampler": "ddim", "num_samples": 128}, "eval": {"ensemble_k": 5}},
            train_hash=f"train-{method}", seeds={"train": 0, "sample": 0}, metrics=metrics,
            directions={k: v for k, v in METRIC_DIRECTIONS.items() if k in metrics and v in ("lower", "higher")}
            | {"hd95_missing_rv": "lower", "hd95_missing_myo": "lower", "hd95_missing_lv": "lower",
               "hd95_penalised_mean": "lower"},
            evaluator_id="seg-acdc-1", environment=ENV_CPU, context={"n_samples": 128, "distance_unit": "px"},
        ))
    return runs


def fill_full_store(folder: Path) -> ResultStore:
    """A store with the wide rows of ``full_generation_runs`` and ``full_segmentation_runs``."""
    store = ResultStore(Path(folder).resolve() / "results.db")
    for run in full_generation_runs() + full_segmentation_runs():
        store.add_run(run)
    return store


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
    """A store with 4 generation runs of 256 samples (one evaluator), 1 run of 64 samples (same evaluator), 1
    run of another evaluator whose validity record is flagged, 3 segmentation runs (2 in px, 1 in mm) and 4
    throughput runs: 13 runs on 7 boards."""
    folder = Path(folder).resolve()
    store = ResultStore(folder / "results.db")
    for run in generation_runs(results_dir=folder):
        store.add_run(run)
    small = generation_runs(n_samples=64)[0]
    small.metrics = {"fid": 14.07, "kid": 0.0117, "is": 2.29, "plausible": 0.92}  # not comparable: another sample count
    store.add_run(small)
    other = generation_runs(evaluator="ev-03b5d6e1")[0]
    other.metrics = {"fid": 9.99, "kid": 0.005}
    other.context["ruler_validity"] = dict(FLAGGED_RULER)
    store.add_run(other)
    for run in segmentation_runs():
        store.add_run(run)
    for run in throughput_runs():
        store.add_run(run)
    return store


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-results")
    fill = fill_full_store if "--full" in sys.argv[2:] else fill_demo_store
    print(fill(target).path)
