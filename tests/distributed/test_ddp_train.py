"""DDP training and sampling under torchrun: 2 CPU processes with gloo against one process.

Tolerances: a 2-rank step averages two gradients with an all-reduce, where one process backpropagates the mean of
the two shard losses, so the float sums run in another order (about 1e-7 relative per step). Adam divides by
sqrt(v), which keeps such differences at the same relative size rather than growing them over 8 steps; the
comparisons use rtol 1e-4 / atol 1e-6, far below the change the training makes (checked too). (On this machine's
CPU the two came out bit-identical, but nothing guarantees the order of the sums, e.g. with more ranks.) The resumed
torchrun run repeats the very same operations as the uninterrupted one, so it is compared bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchrun_helpers import WORKER, torchrun, torchrun_env

from cardiobench.engine.checkpoints import load_checkpoint
from cardiobench.engine.sample import sample
from cardiobench.engine.train import Trainer, train
from cardiobench.specs import TrainSpec

STEPS = 8
CLI_ARGS = ["--dataset", "phantom", "--resolution", "16", "--dataset-opt", "train_patients=1", "--dataset-opt",
            "test_patients=1", "--timesteps", "50", "--size", "tiny", "--batch-size", "4", "--steps", str(STEPS),
            "--lr", "1e-3", "--warmup-steps", "3", "--ema-decay", "0.9", "--device", "cpu", "--checkpoint-every", "4"]


def _close(a: dict, b: dict, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """``cardiobench train ... --launcher torchrun --nproc-per-node 2``, which execs
    ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m cardiobench train ...``: the checkpoint and
    the command's JSON."""
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "cardiobench", "train", *CLI_ARGS, "--out", str(out), "--json", "--launcher",
           "torchrun", "--nproc-per-node", "2"]
    proc = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # rank 0 alone prints
    return out, result, load_checkpoint(out)


def test_two_processes_train_like_one_process_with_the_same_global_batch(ddp_run, tmp_path):
    out, result, state = ddp_run
    spec = TrainSpec.from_dict(state["spec"])
    assert spec.shards == 2 and spec.batch_size == 4  # global batch 8 = 4 per rank x 2 ranks
    assert result["step"] == STEPS and result["spec_hash"] == state["spec_hash"] == spec.hash()
    assert state["data_state"]["world_size"] == 2

    ref = train(spec, tmp_path, device="cpu", checkpoint_every=4)  # one process, both shards
    one = load_checkpoint(ref.checkpoint)
    assert one["spec_hash"] == state["spec_hash"] and one["data_state"]["world_size"] == 1
    np.testing.assert_allclose(state["loss_history"].numpy(), one["loss_history"].numpy(), rtol=1e-5, atol=1e-7)
    _close(state["model"], one["model"])
    _close(state["ema"], one["ema"])
    for a, b in zip(state["rng"]["generators"], one["rng"]["generators"], strict=True):
        assert torch.equal(a, b)  # the shards drew the same random numbers
    # the tolerance is meaningful: the weights moved by far more than it over the training
    start = Trainer(spec, device="cpu").model.state_dict()
    moved = max(float((state["model"][k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-3


def test_global_batch_is_the_items_of_one_process_with_a_double_batch():
    base = dict(dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
                noise_options={"num_timesteps": 50}, backbone_options={"size": "tiny"}, steps=3)
    two = Trainer(TrainSpec(**base, batch_size=4, shards=2), device="cpu")
    one = Trainer(TrainSpec(**base, batch_size=8), device="cpu")
    assert two.steps_per_epoch == one.steps_per_epoch
    for step in (0, 1, two.steps_per_epoch + 2):
        sharded = torch.cat([two.batch_at(step, s) for s in range(2)])
        assert sorted(sharded.tolist()) == sorted(one.batch_at(step).tolist())


def test_killed_run_resumes_under_torchrun_to_the_same_result_and_samples_match(ddp_run, tmp_path):
    _, _, uninterrupted = ddp_run
    out = tmp_path / "run"
    job = {"train": {"spec": uninterrupted["spec"], "out": str(out), "signal_at": 3}}
    (tmp_path / "kill.json").write_text(json.dumps(job))
    proc = torchrun([str(WORKER), str(tmp_path / "kill.json")])
    assert proc.returncode != 0
    assert "stopped by SIGTERM after step 4" in proc.stderr  # rank 0 signalled itself during step 4
    assert "a stop request on another rank" in proc.stderr  # rank 1 stopped at the same step
    assert load_checkpoint(out)["step"] == 4

    samples = tmp_path / "masks.npy"
    kwargs = {"checkpoint": str(out), "sampler": "ddim", "steps": 5, "num_samples": 6, "batch_size": 2, "seed": 3}
    job = {"train": {"spec": uninterrupted["spec"], "out": str(out)}, "sample": {**kwargs, "out": str(samples)}}
    (tmp_path / "resume.json").write_text(json.dumps(job))
    proc = torchrun([str(WORKER), str(tmp_path / "resume.json")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = load_checkpoint(out)
    assert json.loads((out / "result.json").read_text())["status"] == "resumed"
    assert resumed["step"] == STEPS
    for key in ("model", "ema"):
        for name, value in uninterrupted[key].items():
            assert torch.equal(value, resumed[key][name]), name
    assert torch.equal(uninterrupted["loss_history"], resumed["loss_history"])

    ddp_masks = np.load(samples)
    one = sample(**kwargs, device="cpu").masks  # one process, the same seed and batches
    assert ddp_masks.shape == (6, 16, 16) and np.array_equal(ddp_masks, one)
    assert len({m.tobytes() for m in one}) > 1  # the batches drew different noise
