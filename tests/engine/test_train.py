"""Training engine: bit-for-bit resume, NaN handling, atomic and safe checkpoints, the spec-hash cache, and the
shared training loop (``cardiobench.engine.loop``) every training runs on."""

import os

import pytest
import torch

from cardiobench.engine import checkpoints as ck
from cardiobench.engine.loop import Checkpointing, TrainLoop, as_progress
from cardiobench.engine.train import Trainer, TrainingDiverged, resolve_spec, train
from cardiobench.errors import CardiobenchError
from cardiobench.progress import Progress


def _states(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state


def assert_same_training(a, b):
    """Every parameter, EMA weight, optimizer moment and the loss curve are exactly equal."""
    sa, sb = _states(a), _states(b)
    assert sa["step"] == sb["step"]
    for key in ("model", "ema"):
        assert sa[key].keys() == sb[key].keys()
        for name in sa[key]:
            assert torch.equal(sa[key][name], sb[key][name]), f"{key}.{name} differs"
    oa, ob = sa["optimizer"]["state"], sb["optimizer"]["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), f"optimizer state {i}.{k} differs"
    assert torch.equal(sa["loss_history"], sb["loss_history"])
    assert torch.equal(sa["rng"]["generator"], sb["rng"]["generator"])


def test_resume_is_bit_for_bit(tmp_path, tiny_spec):
    spec20 = tiny_spec(steps=20)
    full = train(spec20, tmp_path / "full")
    assert full.status == "trained" and full.step == 20

    # 10 steps of a 10-step training, then --resume it with 20 steps
    short = train(tiny_spec(steps=10), tmp_path / "short")
    assert short.step == 10
    extended = train(spec20, tmp_path / "extended", resume=short.checkpoint)
    assert extended.status == "resumed" and extended.steps_run == 10
    assert_same_training(full.checkpoint, extended.checkpoint)

    # a crash at step 13 with checkpoints every 5 steps; re-running the same command continues from 10
    def crash(step, loss):
        if step == 13:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(spec20, tmp_path / "crash", checkpoint_every=5, callback=crash, retrain=True)
    assert _states(tmp_path / "crash" / "checkpoint.pt")["step"] == 10
    again = train(spec20, tmp_path / "crash")
    assert again.status == "resumed" and again.steps_run == 10
    assert_same_training(full.checkpoint, again.checkpoint)


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path, tiny_spec):
    result = train(tiny_spec(), tmp_path)
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["format"] == ck.FORMAT and state["complete"] and state["step"] == 6
    assert state["spec_hash"] == result.spec_hash == resolve_spec(tiny_spec()).hash()
    assert set(state["rng"]) >= {"torch", "numpy", "python", "generator"}
    assert state["data_state"]["steps_per_epoch"] > 0 and len(state["loss_history"]) == 6
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path, tiny_spec, monkeypatch):
    spec = tiny_spec(steps=20)
    train(spec, tmp_path, stop_after=5)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    real = Trainer.compute_loss

    def poisoned(self, index):
        loss = real(self, index)
        return loss * float("nan") if self.step >= 7 else loss

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)
    with pytest.raises(TrainingDiverged) as err:
        train(spec, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "nan at step 8" in msg and "step 5" in msg and "kept" in msg
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert ck.load_checkpoint(tmp_path)["step"] == 5


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    minimal = {"spec": {}, "spec_hash": "", "total_steps": 2, "model": {}}
    ck.save_checkpoint(path, {**minimal, "step": 1})

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, {**minimal, "step": 2})
    assert ck.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_bad_checkpoint_files_are_one_line_errors(tmp_path):
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ck.CheckpointError, match="cannot read checkpoint") as err:
        ck.load_checkpoint(tmp_path / "junk.pt")
    assert "\n" not in str(err.value)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="not a cardiobench checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("junk", [b"hello world, this is text\n" * 10, b"a,b\n1,2\n", b"e", b"\x80\x02}q\x00."])
def test_junk_checkpoints_never_quote_torch(tmp_path, junk):
    """Text, CSV, one byte, a bare pickle: one line naming the file, never KeyError/IndexError or torch's advice
    to load with weights_only=False."""
    (tmp_path / "junk.pt").write_bytes(junk)
    with pytest.raises(ck.CheckpointError) as err:
        ck.load_checkpoint(tmp_path / "junk.pt")
    msg = str(err.value)
    assert str(tmp_path / "junk.pt") in msg and "\n" not in msg and "weights_only" not in msg


def test_damaged_cached_checkpoint_says_retrain_fixes_it(tiny_spec):
    first = train(tiny_spec())
    first.checkpoint.write_bytes(first.checkpoint.read_bytes()[:1000])  # cut short, as by a full disk
    with pytest.raises(ck.CheckpointError, match="--retrain"):
        train(tiny_spec())
    again = train(tiny_spec(), retrain=True)
    assert again.status == "trained" and ck.load_checkpoint(again.checkpoint)["complete"]


def test_checkpoint_with_damaged_contents_is_one_line(tmp_path, tiny_spec):
    """A checkpoint that unpickles but whose weights no longer fit (a hand edit, a flipped key)."""
    from cardiobench.engine.sample import load_model

    result = train(tiny_spec(), tmp_path)
    state = ck.load_checkpoint(result.checkpoint)
    state["model"] = {k + "x": v for k, v in state["model"].items()}
    state["ema"] = None
    ck.save_checkpoint(tmp_path / "edited.pt", {k: v for k, v in state.items() if k not in ("format",
                                                                                              "format_version")})
    with pytest.raises(ck.CheckpointError, match="is damaged") as err:
        load_model(tmp_path / "edited.pt")
    assert "\n" not in str(err.value)
    with pytest.raises(ck.CheckpointError, match="is damaged.*--retrain"):
        train(tiny_spec(steps=8), tmp_path / "more", resume=tmp_path / "edited.pt")


def test_finished_training_is_cached_and_reused(tmp_path, tiny_spec):
    first = train(tiny_spec(), tmp_path / "a")
    assert ck.find_cached_checkpoint(first.spec_hash) is not None
    explicit = tiny_spec(noise_options={"num_timesteps": 50, "beta_schedule": "cosine"})
    second = train(explicit, tmp_path / "b")  # same model once defaults are resolved
    assert second.status == "reused" and second.steps_run == 0 and second.spec_hash == first.spec_hash
    assert_same_training(first.checkpoint, second.checkpoint)
    assert train(tiny_spec(), tmp_path / "a").status == "reused"
    # without --out the checkpoint lives in the cache
    assert train(tiny_spec()).checkpoint == ck.cached_checkpoint_path(first.spec_hash)


def test_conflicting_checkpoints_are_clear_errors(tmp_path, tiny_spec):
    train(tiny_spec(), tmp_path)
    with pytest.raises(CardiobenchError, match="another training spec"):
        train(tiny_spec(lr=5e-4), tmp_path)
    with pytest.raises(CardiobenchError, match="different lr"):
        train(tiny_spec(lr=5e-4), tmp_path / "x", resume=tmp_path)
    retrained = train(tiny_spec(lr=5e-4), tmp_path, retrain=True)
    assert retrained.status == "trained"


def test_epochs_and_batch_size_checks(tmp_path, tiny_spec):
    result = train(tiny_spec(steps=None, epochs=1), tmp_path)
    assert result.total_steps == result.step > 0
    with pytest.raises(CardiobenchError, match="larger than the training split"):
        train(tiny_spec(batch_size=100000), tmp_path / "big")


def test_ctrl_c_checkpoints_the_finished_steps_and_a_rerun_continues_bit_for_bit(tmp_path, tiny_spec):
    spec = tiny_spec(steps=12)
    full = train(spec, tmp_path / "full")

    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path / "stopped", checkpoint_every=5, callback=interrupt, retrain=True)
    assert _states(tmp_path / "stopped" / "checkpoint.pt")["step"] == 7  # not 5: Ctrl-C wrote the 7 steps
    again = train(spec, tmp_path / "stopped")
    assert again.status == "resumed" and again.steps_run == 5
    assert_same_training(full.checkpoint, again.checkpoint)


class _Recorder(Progress):
    """A reporter that keeps what it is told."""

    enabled = True

    def __init__(self):
        self.tasks, self.lines = [], []

    def task(self, label, total, *, unit="it", completed=0, **fields):
        task = super().task(label, total, unit=unit, completed=completed, **fields)
        self.tasks.append((label, total, task))
        return task

    def log(self, message):
        self.lines.append(message)


def _linear_loop(**kwargs):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    loop = TrainLoop(torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
    return model, loop, lambda step: torch.nn.functional.mse_loss(model(x), y)


def test_train_loop_schedule_progress_and_stats():
    seen = []
    model, loop, loss_at = _linear_loop(lr_at=lambda step: 0.1 / (step + 1), grad_clip=1.0)
    loop.optimizer.step = (lambda real: lambda *a, **k: (seen.append(loop.optimizer.param_groups[0]["lr"]),
                                                           real(*a, **k))[1])(loop.optimizer.step)
    progress = _Recorder()
    stats = loop.run(loss_at, 4, items_per_step=8, progress=progress, label="fit", fields=lambda: {"acc": "0.5"})
    assert seen == [0.1, 0.05, 0.1 / 3, 0.025] and loop.step == 4 and len(loop.history) == 4
    assert loop.history[-1] < loop.history[0] and stats.steps_run == 4 and stats.images_per_s > 0
    (label, total, task), = progress.tasks
    assert (label, total, task.completed) == ("fit", 4, 4) and task.fields["acc"] == "0.5"
    assert float(task.fields["loss_avg"]) == pytest.approx(sum(loop.history) / 4, abs=1e-4)
    # a one-cycle scheduler is stepped after every optimizer step (the evaluator's recipe)
    _, cyc, loss_at = _linear_loop()
    cyc.scheduler = torch.optim.lr_scheduler.OneCycleLR(cyc.optimizer, max_lr=0.1, total_steps=3)
    cyc.run(loss_at, 3)
    assert cyc.scheduler.last_epoch == 3


def test_train_loop_stops_on_nan_without_touching_the_weights(tmp_path):
    model, loop, loss_at = _linear_loop()
    loop.run(loss_at, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = []
    path = tmp_path / "ck.pt"

    def save(stats):
        saved.append(loop.step)
        path.write_bytes(b"x")

    with pytest.raises(TrainingDiverged) as err:
        loop.run(lambda step: loss_at(step) * float("nan"), 5, what="widget training", hint="calm down",
                 checkpoint=Checkpointing(path, save, every=1))
    msg = str(err.value)
    assert msg.startswith("widget training diverged: the loss is nan at step 3; stopped") and "\n" not in msg
    assert "no checkpoint had been written yet" in msg and saved == [] and loop.step == 2
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert err.value.hint == "calm down"


def test_as_progress_takes_a_reporter_or_a_log_callable():
    lines = []
    rep = as_progress(None, lines.append)
    rep.log("hello")
    with rep.task("x", 2) as task:
        task.update(advance=1)
    assert lines == ["hello"] and rep.enabled
    progress = _Recorder()
    assert as_progress(progress) is progress and as_progress(None, progress) is progress
    assert not as_progress(None).enabled
