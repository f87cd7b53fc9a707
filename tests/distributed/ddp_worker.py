"""What one torchrun rank runs in tests/distributed: ``python -m torch.distributed.run ... ddp_worker.py JOB.json``.

The job (JSON) may train (``train``: a TrainSpec dict, ``out``, and ``signal_at``: rank 0 sends itself SIGTERM after
that step, as Slurm would before a time limit) and then sample (``sample``: keyword arguments of
``cardiobench.engine.sample.sample`` and ``out``, where rank 0 writes the masks). The exit code is the library's:
0, or 75 after a preemption (its checkpoint written).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import torch

from cardiobench import distributed
from cardiobench.engine.sample import sample
from cardiobench.engine.train import TrainingPreempted, train
from cardiobench.specs import TrainSpec


def main(path: str) -> int:
    torch.set_num_threads(1)
    job = json.loads(open(path).read())
    if "train" in job:
        t = job["train"]
        signal_at = t.get("signal_at")

        def callback(step: int, loss: float) -> None:
            if signal_at is not None and step == signal_at and distributed.rank() == 0:
                os.kill(os.getpid(), signal.SIGTERM)

        try:
            result = train(TrainSpec.from_dict(t["spec"]), t["out"], device="cpu", checkpoint_every=t.get("every"),
                           callback=callback)
        except TrainingPreempted as exc:
            print(f"rank {distributed.rank()}: {exc}", file=sys.stderr)
            return exc.exit_code
        if distributed.rank() == 0:
            with open(os.path.join(t["out"], "result.json"), "w") as f:
                json.dump(result.to_dict(), f)
    if "sample" in job:
        s = dict(job["sample"])
        out = s.pop("out")
        result = sample(device="cpu", **s)
        if distributed.rank() == 0:
            np.save(out, result.masks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
