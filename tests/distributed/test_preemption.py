"""Preemption: SIGTERM / SIGUSR1 (what Slurm sends before a time limit) -> checkpoint, clean stop, exact resume."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from cardiobench.distributed import StopSignals
from cardiobench.engine.checkpoints import load_checkpoint
from cardiobench.engine.train import TrainingPreempted, train
from cardiobench.specs import TrainSpec

SPEC = TrainSpec(dataset="phantom", resolution=16, dataset_options={"train_patients": 1, "test_patients": 1},
                 noise_options={"num_timesteps": 50}, backbone_options={"size": "tiny"}, batch_size=4, lr=1e-3,
                 ema_decay=0.9, warmup_steps=3, steps=8)


def _signal_at(step: int, signum: int):
    def callback(done: int, loss: float) -> None:
        if done == step:
            os.kill(os.getpid(), signum)
    return callback


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_writes_a_checkpoint_stops_and_resumes_to_the_same_weights(tmp_path, signum):
    before = signal.getsignal(signum)
    with pytest.raises(TrainingPreempted) as err:
        train(SPEC, tmp_path / "cut", device="cpu", callback=_signal_at(3, signum))
    assert signal.getsignal(signum) is before  # the handler is put back
    exc = err.value
    assert exc.exit_code == 75 and exc.signum == signum
    msg = str(exc)
    assert "\n" not in msg and f"stopped by {signal.Signals(signum).name} after step 4 of 8" in msg
    cut = load_checkpoint(tmp_path / "cut")
    assert cut["step"] == 4 and not cut["complete"] and len(cut["loss_history"]) == 4

    resumed = train(SPEC, tmp_path / "cut", device="cpu")
    assert resumed.status == "resumed" and resumed.step == 8 and resumed.steps_run == 4
    whole = train(SPEC, tmp_path / "whole", device="cpu", retrain=True)
    a, b = load_checkpoint(resumed.checkpoint), load_checkpoint(whole.checkpoint)
    for key in ("model", "ema"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), f"{key}.{name}"
    assert torch.equal(a["loss_history"], b["loss_history"])


def test_stop_signals_hold_the_flag_and_restore_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop.requested and stop.name == ""
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
        assert signal.getsignal(signal.SIGINT) != stop._handle  # Ctrl-C stays KeyboardInterrupt in one process
    assert signal.getsignal(signal.SIGTERM) is before
