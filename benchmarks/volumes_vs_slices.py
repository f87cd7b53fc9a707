"""3-D volumes against 2-D slices stacked, on real ACDC (docs/results-acdc.md, "Whole hearts").

    python benchmarks/volumes_vs_slices.py --results RESULTS_DB --data-root ../shared/data/acdc-ssl4mis

Run the four ``volume-cpu`` runs of that section first (3-D and 2-D-on-the-volumes'-slices, generation and
``concat`` segmentation) into RESULTS_DB. This script then scores, with the same code for every row:

- generation: the 3-D model's volumes as they are, and the 2-D model's samples stacked eight at a time in drawing
  order, with ``evaluate_generation`` on volumes (slice metrics on their slices, the ``volume`` metric on them);
- segmentation: the 3-D model's stored predictions of the test volumes, and the 2-D model's prediction of every
  slice of them (k = 5, DDIM-50) stacked back, with ``evaluate_segmentation`` on volumes (3-D Dice and HD95);
- the shuffled-slices check: the validation volumes with their slices shuffled across volumes (the same slices,
  so the same slice FID) against the volumes as they are.

Prints one JSON object (``--json-out`` also writes it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cardiobench.data import open_dataset
from cardiobench.engine.checkpoints import find_cached_checkpoint
from cardiobench.engine.segment import segment
from cardiobench.metrics.api import evaluate_generation, evaluate_segmentation
from cardiobench.results.store import ResultStore

KEEP = ("fid", "fid_relative", "anatomy_valid_frac", "volume_valid_frac", "volume_lv_connected_fail_frac",
        "volume_no_gap_fail_frac", "volume_rv_contiguous_fail_frac", "interslice_dice_mean",
        "interslice_dice_real_mean", "interslice_dice_gap", "dice3d_rv", "dice3d_myo", "dice3d_lv", "dice3d_mean",
        "hd95_3d_mean", "dice_mean")


def _pick(values: dict) -> dict:
    return {k: round(float(values[k]), 4) for k in KEEP if k in values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="the results store of the four runs")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    volumes = {"split": "ssl4mis", "depth": args.depth, "data_root": args.data_root}
    runs = {}
    for run in ResultStore(args.results).runs():
        if run.dataset != "acdc-h5" or run.task not in ("generation", "segmentation"):
            continue
        options = run.spec["train"]["dataset_options"]
        if options.get("depth") != args.depth:
            continue
        runs[("2d" if options.get("as_slices") else "3d", run.task)] = run
    out: dict = {}
    for dims in ("3d", "2d"):
        run = runs.get((dims, "generation"))
        if run is None:
            continue
        masks = np.load(run.artefacts["samples"])["masks"]
        vols = masks if masks.ndim == 4 else masks[: len(masks) // args.depth * args.depth].reshape(
            -1, args.depth, *masks.shape[1:])
        ev = evaluate_generation(vols[:64], "acdc-h5", data_options=volumes, seed=0)
        out[f"generation {dims}"] = _pick(ev["metrics"])
        out["generation reference"] = _pick(ev["reference"])
    test = open_dataset("acdc-h5", size=32, **volumes).load("test")
    for dims in ("3d", "2d"):
        run = runs.get((dims, "segmentation"))
        if run is None:
            continue
        if dims == "3d":
            votes = np.load(run.artefacts["segmentations"])["votes"]
        else:
            flat = test.images.reshape(-1, *test.images.shape[2:])
            res = segment(find_cached_checkpoint(run.train_hash), flat, k=5, sampler="ddim", steps=50, seed=0,
                          device="cpu")
            votes = res.votes.reshape(test.masks.shape)
        ev = evaluate_segmentation(votes, test.masks, test.spacing, distance_unit="px")
        out[f"segmentation {dims}"] = _pick(ev["metrics"])
    val = open_dataset("acdc-h5", size=32, **volumes).load("val").masks
    rng = np.random.default_rng(0)
    shuffled = val.copy()
    for k in range(val.shape[1]):  # slice k of each volume from another volume's slice k
        shuffled[:, k] = val[rng.permutation(len(val)), k]
    for name, vols in (("val volumes", val), ("val, slices shuffled", shuffled)):
        ev = evaluate_generation(vols, "acdc-h5", data_options=volumes, seed=0, reference=False)
        out[name] = _pick(ev["metrics"])
    text = json.dumps(out, indent=1)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)


if __name__ == "__main__":
    main()
