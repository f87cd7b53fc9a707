"""Training and sampling engines (Python API behind ``cardiobench train`` and ``cardiobench sample``).

    from cardiobench.engine import train, sample
    result = train(TrainSpec(steps=2000, backbone_options={"size": "small"}), out_dir="runs/a")
    samples = sample(result.checkpoint, sampler="ddim", steps=50, num_samples=64)
"""

from cardiobench.engine.sample import SampleResult, sample, write_samples
from cardiobench.engine.train import Trainer, TrainingDiverged, TrainingPreempted, TrainResult, train

__all__ = [
    "SampleResult", "TrainResult", "Trainer", "TrainingDiverged", "TrainingPreempted", "sample", "train",
    "write_samples",
]
