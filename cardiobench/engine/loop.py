"""The one training loop: every trained thing (denoiser, noisy classifier, evaluator, the bench's step) runs here.

A ``TrainLoop`` owns the optimizer update and its bookkeeping; the caller owns the data and the loss. One step::

    set the learning rate (``lr_at(step)``, optional)
    loss = loss_at(step)                         (the caller: batch ``step``, drawing its own randomness)
    NaN/inf -> stop, the weights untouched
    zero_grad; backward (through a GradScaler if given); grad-norm clip; optimizer step; scheduler step; EMA
    step += 1; history.append(loss)

``run`` repeats it up to a number of steps and adds what a long training needs: periodic checkpoints (every
``every`` steps, else every ``seconds``), a checkpoint on Ctrl-C, a ``TrainingDiverged`` on a NaN/inf loss that
names the last good checkpoint (kept as is), progress through ``cardiobench.progress`` (loss, mean loss of the
last 50 steps, items/s, and the caller's fields), and ``LoopStats`` (steps run, seconds, items/s).

The loop draws no random numbers and reorders nothing, so a training moved onto it runs the very same optimizer
steps as before (tested bit for bit).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cardiobench.errors import CardiobenchError
from cardiobench.progress import Progress, resolve

__all__ = ["Checkpointing", "LoopStats", "TrainLoop", "TrainingDiverged", "as_progress"]

#: the loss average shown beside the bar (and stored as a training's final loss) is over this many steps
RECENT = 50


class TrainingDiverged(CardiobenchError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass
class LoopStats:
    """What one ``run`` did: optimizer steps, wall-clock seconds, items (images) per second."""

    steps_run: int = 0
    seconds: float = 0.0
    images_per_s: float | None = None
    #: the loop stopped early because ``should_stop()`` said so (a preemption signal); the checkpoint is written
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"steps_run": self.steps_run, "seconds": self.seconds, "images_per_s": self.images_per_s}


@dataclass
class Checkpointing:
    """Where and how often ``run`` checkpoints: ``save(stats)`` writes the current state to ``path``.

    Every ``every`` steps, else whenever ``seconds`` passed since the last write; also on Ctrl-C (when steps
    were run since the last write) and at the end (or when no file exists yet).
    """

    path: Path
    save: Callable[[LoopStats], None]
    every: int | None = None
    seconds: float = 60.0


class TrainLoop:
    """The optimizer update of one training and the loop around it (see the module docstring).

    ``lr_at(step)`` sets every parameter group's learning rate before the step; ``scheduler`` (a torch LR
    scheduler) is stepped after it instead. ``grad_clip > 0`` clips the gradient norm of ``clip_params``
    (default: the first parameter group). ``scaler``: a ``torch.amp.GradScaler`` (fp16). ``ema``: an object
    with ``update(step)`` called after every optimizer step. ``step`` and ``history`` (the loss of every step)
    are the loop's state; a checkpoint stores them and a resumed training sets them back.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, lr_at: Callable[[int], float] | None = None,
                 scheduler: Any = None, grad_clip: float = 0.0, clip_params: list[torch.Tensor] | None = None,
                 scaler: torch.amp.GradScaler | None = None, ema: Any = None) -> None:
        self.optimizer = optimizer
        self.lr_at = lr_at
        self.scheduler = scheduler
        self.grad_clip = float(grad_clip)
        self.clip_params = clip_params if clip_params is not None else optimizer.param_groups[0]["params"]
        self.scaler = scaler
        self.ema = ema
        self.step = 0
        self.history: list[float] = []

    # -- one step -------------------------------------------------------------------------------------
    def update(self, loss: torch.Tensor) -> None:
        """The optimizer update of ``loss``: zero_grad, backward, clip, step, scheduler, EMA (at ``self.step``)."""
        opt, scaler = self.optimizer, self.scaler
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.grad_clip > 0:
            if scaler is not None:
                scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.clip_params, self.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.step)

    def run_step(self, loss_at: Callable[[int], torch.Tensor]) -> float:
        """One step: the learning rate, ``loss_at(step)``, the update. Returns the loss; a NaN/inf loss is
        returned without touching the weights or the step count (``run`` stops on it)."""
        if self.lr_at is not None:
            lr = self.lr_at(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        loss = loss_at(self.step)
        value = float(loss.detach())
        if not math.isfinite(value):
            return value
        self.update(loss)
        self.step += 1
        self.history.append(value)
        return value

    def recent_loss(self) -> float | None:
        """Mean loss of the last ``RECENT`` steps (``None`` before the first)."""
        tail = self.history[-RECENT:]
        return sum(tail) / len(tail) if tail else None

    # -- the loop -------------------------------------------------------------------------------------
    def run(
        self,
        loss_at: Callable[[int], torch.Tensor],
        until: int,
        *,
        total: int | None = None,
        items_per_step: int = 0,
        checkpoint: Checkpointing | None = None,
        progress: Progress | None = None,
        label: str = "train",
        what: str = "training",
        hint: str = "lower the learning rate",
        fields: Callable[[], dict[str, Any]] | None = None,
        report_every: int = 1,
        callback: Callable[[int, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        agree: Callable[[bool, bool], tuple[bool, ...]] | None = None,
    ) -> LoopStats:
        """Run steps until ``self.step == until``; see the module docstring.

        ``total``: the length the bar shows (default ``until``). ``items_per_step``: images per step, for the
        rate. ``what``/``hint``: the divergence error (``"<what> diverged: ..."``). ``fields()``: extra values
        beside the bar, every ``report_every`` steps. ``callback(step, loss)`` runs after every step.
        ``should_stop()`` is asked after every step: when true (a preemption signal), the loop checkpoints and returns
        with ``stopped`` set. ``agree(checkpoint_due, stop)`` makes those two decisions the same on every process of a
        data-parallel training (``cardiobench.distributed.agree``), since a checkpoint there is a collective.
        """
        start, t0 = self.step, time.perf_counter()
        saved_step, saved_at = self.step, t0

        def stats() -> LoopStats:
            dt = time.perf_counter() - t0
            n = self.step - start
            return LoopStats(n, dt, n * items_per_step / dt if n and dt and items_per_step else None)

        wrote = False

        def save() -> None:
            nonlocal saved_step, saved_at, wrote
            assert checkpoint is not None
            checkpoint.save(stats())
            saved_step, saved_at, wrote = self.step, time.perf_counter(), True

        def due() -> bool:
            if checkpoint is None:
                return False
            if checkpoint.every:
                return self.step % checkpoint.every == 0
            return time.perf_counter() - saved_at > checkpoint.seconds

        stopped = False

        bar_total = until if total is None else total
        with resolve(progress).task(label, total=bar_total, unit="step", completed=self.step, loss="-", loss_avg="-",
                                    ips="-") as task:
            try:
                while self.step < until:
                    value = self.run_step(loss_at)
                    if not math.isfinite(value):
                        raise self._diverged(value, what, hint, checkpoint, saved_step)
                    save_now, stopped = due(), should_stop is not None and should_stop()
                    if agree is not None:
                        save_now, stopped = agree(save_now, stopped)[:2]
                    if save_now or (stopped and checkpoint is not None and self.step > saved_step):
                        save()
                    if callback is not None:
                        callback(self.step, value)
                    if self.step % report_every == 0 or self.step == until:
                        ips = stats().images_per_s
                        task.update(self.step, loss=f"{value:.4f}", loss_avg=f"{self.recent_loss():.4f}",
                                    ips=f"{ips:.0f}" if ips else "-", **(fields() if fields is not None else {}))
                    if stopped:
                        break
            except KeyboardInterrupt:
                if checkpoint is not None and self.step > saved_step:
                    save()
                raise
        if checkpoint is not None:
            final = self.step > saved_step or (not wrote and not checkpoint.path.is_file())
            if agree is not None:  # a save is a collective: every process saves, or none
                final = agree(final, False)[0]
            if final:
                save()
        result = stats()
        result.stopped = stopped
        return result

    def _diverged(self, value: float, what: str, hint: str, checkpoint: Checkpointing | None,
                  saved_step: int) -> TrainingDiverged:
        message = f"{what} diverged: the loss is {value} at step {self.step + 1}; stopped"
        if checkpoint is not None:
            message += (f", the last good checkpoint (step {saved_step}) is kept at {checkpoint.path}"
                        if checkpoint.path.is_file() else ", no checkpoint had been written yet")
        return TrainingDiverged(message, hint)


class _LogProgress(Progress):
    """``log`` lines to a callable; no bars (the ``log=`` argument of older library functions)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self.enabled = True

    def log(self, message: str) -> None:
        self._log(message)


def as_progress(progress: Progress | Callable[[str], None] | None, log: Callable[[str], None] | None = None
                ) -> Progress:
    """A ``Progress`` from either argument: a ``Progress`` as is, a ``log(message)`` callable as a reporter of
    lines without bars, ``None`` (both): silent."""
    for p in (progress, log):
        if isinstance(p, Progress):
            return p
        if callable(p):
            return _LogProgress(p)
    return resolve(None)
