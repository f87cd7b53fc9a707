"""Which ruler measures FID on real data? The degradation-ladder study of ``cardiobench.metrics.ruler_study``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ruler_study.py --dataset acdc-h5 \\
        --data-root ../shared/data/acdc-ssl4mis [--size 64] [--threads 1] [--inception-weights FILE] \\
        [--json-out F] [--md-out F]

For each ruler (the pathology CNN, the SSL evaluator, and torch-fidelity's Inception when a local weights file
is given; nothing is downloaded) it prints the validity record, the FID of every rung of the ladder against
the test split, the anatomy and nearest-real Dice of every rung, the Spearman correlations and the decision.
Evaluators are trained on first use and cached (``$CARDIOBENCH_CACHE_DIR/evaluators``); their training time
is the one recorded when they were trained. ``--threads`` sets ``EvaluatorConfig.threads`` (a different
configuration, so a different evaluator id from the default's 2 threads).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cardiobench.metrics.ruler_study import run_study, to_markdown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="acdc-h5")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--objectives", default="pathology,ssl", help="comma-separated EvaluatorConfig.objective values")
    ap.add_argument("--inception-weights", default=None, help="torch-fidelity's pt_inception-2015-12-05 file")
    ap.add_argument("--threads", type=int, default=None, help="EvaluatorConfig.threads (default: the config's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--md-out", type=Path, default=None)
    args = ap.parse_args(argv)
    options = {"data_root": args.data_root} if args.data_root else None
    study = run_study(args.dataset, options, size=args.size, objectives=tuple(args.objectives.split(",")),
                      inception_weights=args.inception_weights, threads=args.threads, seed=args.seed,
                      log=lambda msg: print(msg, file=sys.stderr, flush=True))
    study["command"] = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ruler_study.py " + " ".join(argv or sys.argv[1:])
    md = to_markdown(study)
    print(md)
    if args.json_out:
        args.json_out.write_text(json.dumps(study, indent=2) + "\n")
    if args.md_out:
        args.md_out.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
