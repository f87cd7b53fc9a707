"""The training engine behind ``cardiobench train``.

``train(spec, out_dir)`` builds the data, the noise process, the backbone, the optimizer and the EMA
once, outside the loop (so the same code can run under ``torchrun``: the model is wrapped in
``DistributedDataParallel`` when a process group is initialised, each rank takes its share of every
epoch's permutation, and only rank 0 writes), then runs optimizer steps::

    x0 = variable.encode(masks)                  (the representation: e.g. one-hot in [-1, 1])
    loss = variable.training_loss(model_fn, x0, generator)   (the noise process: e.g. for the linear-Gaussian
           family t ~ U{0..T-1}, eps ~ N(0, I), x_t = q_sample(x0, t, eps), mse | smooth_l1 vs the target)
    Adam;  grad-norm clip;  EMA update                     (one seeded torch.Generator for every draw)

The trainer does not know what is diffused: the ``DiffusedVariable`` (``cardiobench.diffusion.representation``)
encodes the data and computes the loss. Nor does it own the loop: the optimizer update, NaN/inf stop, Ctrl-C and
periodic checkpoints, progress and statistics are the shared ``TrainLoop`` (``cardiobench.engine.loop``) that
the noisy classifier, the evaluator and the bench's training step run on too; files go through the artefact
store (``cardiobench.engine.store``, via ``engine.checkpoints``).

Where the checkpoint goes: ``OUT/checkpoint.pt`` with ``out_dir``, else the cache
(``cache_dir("checkpoints")/<spec hash>/``); a finished training is also published to the cache, and a
finished cached checkpoint of the same spec hash is reused instead of training again. A checkpoint of
the same spec in the target is continued (re-running an interrupted command continues it); ``resume``
continues any checkpoint of the same model whose training length differs (to train longer).
Bit for bit: on CPU, 10 steps + resume + 10 steps equals 20 steps (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cardiobench import __version__, distributed
from cardiobench.conditioning.base import Condition
from cardiobench.data import open_dataset
from cardiobench.data.pairs import diffused_items, paired_maps
from cardiobench.engine.checkpoints import (
    CHECKPOINT_NAME,
    cached_checkpoint_path,
    capture_rng,
    damaged,
    find_cached_checkpoint,
    load_checkpoint,
    publish,
    restore_rng,
    save_checkpoint,
)
from cardiobench.engine.curves import save_loss_curve
from cardiobench.engine.ema import EMA
from cardiobench.engine.loop import RECENT, Checkpointing, LoopStats, TrainingDiverged, TrainLoop
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.factories import (  # noqa: F401 - build_model, model_channels, resolve_device: re-exported
    build_conditioning,
    build_model,
    build_process,
    build_variable,
    model_channels,
    resolve_device,
    resolve_spec,
)
from cardiobench.progress import Progress, resolve
from cardiobench.specs import TrainSpec

LOSS_CURVE_NAME = "loss_curve.png"
#: what fixes a damaged checkpoint in the cache or an --out folder: training it again overwrites it
RETRAIN_HINT = "run the same command with --retrain to train it again (the damaged file is replaced)"
#: without ``checkpoint_every``, a checkpoint is written at least this often (seconds)
CHECKPOINT_SECONDS = 60.0

__all__ = ["CHECKPOINT_SECONDS", "LOSS_CURVE_NAME", "RETRAIN_HINT", "TrainResult", "Trainer", "TrainingDiverged",
           "TrainingPreempted",
           "build_model", "model_channels", "resolve_device", "resolve_spec", "train"]


@dataclass
class TrainResult:
    """What ``train`` did: ``status`` is ``trained``, ``resumed`` or ``reused`` (nothing to do)."""

    checkpoint: Path
    spec: TrainSpec
    spec_hash: str
    status: str
    step: int
    total_steps: int
    steps_run: int
    seconds: float
    images_per_s: float | None
    final_loss: float | None
    loss_curve: Path | None
    params: int
    device: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "checkpoint": str(self.checkpoint), "spec_hash": self.spec_hash,
            "step": self.step, "total_steps": self.total_steps, "steps_run": self.steps_run,
            "seconds": round(self.seconds, 3), "images_per_s": self.images_per_s and round(self.images_per_s, 2),
            "final_loss": self.final_loss, "loss_curve": str(self.loss_curve) if self.loss_curve else None,
            "params": self.params, "device": self.device, "spec": self.spec.to_dict(), **self.extra,
        }


class TrainingPreempted(CardiobenchError):
    """Training stopped on a preemption signal (SIGTERM, SIGUSR1) after writing its checkpoint; the same command
    continues it. Exit code 75 (``EX_TEMPFAIL``: try again), which a batch script can requeue on."""

    exit_code = 75

    def __init__(self, message: str, hint: str, signum: int | None, checkpoint: Path) -> None:
        super().__init__(message, hint)
        self.signum = signum
        self.checkpoint = checkpoint


def _shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard``'s random stream (shard 0: the single-process stream of every earlier release)."""
    return seed * 1_000_003 + 17 + shard


class Trainer:
    """Owns the model, EMA, optimizer, data and RNG of one training; ``fit`` runs the loop.

    Built once, outside the loop. ``state_dict``/``load_state_dict`` cover everything needed to continue
    bit for bit.

    Data parallelism: every optimizer step takes ``spec.shards`` shards of ``spec.batch_size`` slices (global
    batch ``batch_size * shards``); shard ``s`` walks ``perm[s::shards]`` of the epoch's permutation and draws its
    randomness (timesteps, noise, label dropout) from its own generator seeded by ``(seed, s)``. Under torchrun
    with one process per shard, rank ``r`` computes shard ``r`` and DistributedDataParallel averages the gradients;
    one process computes every shard and averages their losses: the same update up to the order of float sums.
    """

    def __init__(self, spec: TrainSpec, *, device: str | torch.device = "auto", data_root: str | None = None):
        self.device = distributed.init(resolve_device(device))
        self.data_root = data_root
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.process = build_process(spec)
        self.variable = build_variable(spec, self.process)
        self.method = build_conditioning(spec)
        self.model = build_model(spec).to(self.device)
        self.spec = resolve_spec(spec, self.process, self.model)
        self.spec_hash = self.spec.hash()
        self.shards = self.spec.shards
        if self.world_size > 1 and self.shards != self.world_size:
            raise CardiobenchError(
                f"this training has {self.shards} data-parallel shards but runs on {self.world_size} processes",
                f"launch it with torchrun --nproc_per_node {self.shards}, or in one process")
        #: the shards this process computes: its rank's under torchrun, every one in a single process
        self.local_shards = [self.rank] if self.world_size > 1 else list(range(self.shards))
        self.ema = EMA(self.model, spec.ema_decay) if spec.ema_decay > 0 else None
        params = list(self.method.trainable_parameters(self.model) if self.method else self.model.parameters())
        self.optimizer = torch.optim.Adam(params, lr=spec.lr)
        self.net: torch.nn.Module = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.generators = {s: torch.Generator().manual_seed(_shard_seed(spec.seed, s)) for s in self.local_shards}
        #: the optimizer update and its bookkeeping (step, loss history), shared with every other training
        self.loop = TrainLoop(self.optimizer, lr_at=self.lr_at, grad_clip=spec.grad_clip, ema=self.ema)
        self.seconds = 0.0  # training time over every run of this checkpoint
        self.images_per_s: float | None = None  # of the latest run that trained
        self._masks: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._images: torch.Tensor | None = None
        self._orders: dict[int, torch.Tensor] = {}  # shard -> its order in epoch ``_order_epoch`` (``batch_at``)
        self._order_epoch = -1

    @property
    def generator(self) -> torch.Generator:
        """The random stream of this process's first shard (the only one in a single-shard training)."""
        return self.generators[self.local_shards[0]]

    def load_base(self, state: dict[str, torch.Tensor]) -> None:
        """Before the first step: load a trained base model (a ControlNet's frozen U-Net and its copy)."""
        if self.step:
            raise CardiobenchError("the base model can only be loaded before training starts")
        self.model.load_base(state)
        if self.ema is not None:
            self.ema = self.loop.ema = EMA(self.model, self.spec.ema_decay)

    @property
    def step(self) -> int:
        """Optimizer steps taken (over every run of this checkpoint)."""
        return self.loop.step

    @step.setter
    def step(self, value: int) -> None:
        self.loop.step = int(value)

    @property
    def loss_history(self) -> list[float]:
        """The loss of every optimizer step."""
        return self.loop.history

    @loss_history.setter
    def loss_history(self, value: list[float]) -> None:
        self.loop.history = list(value)

    # -- data ---------------------------------------------------------------------------------
    def load_data(self) -> None:
        if self._masks is not None:
            return
        s = self.spec
        root = {"data_root": self.data_root} if self.data_root else {}
        with distributed.main_first():  # rank 0 fills the data cache, the others read it
            source = open_dataset(s.dataset, size=s.resolution, seed=s.data_seed, **root, **s.dataset_options)
            train = source.load("train")
        if len(train) == 0:
            raise DataError(f"data set {s.dataset!r} has no training slices")
        if train.masks.shape[1:] != s.spatial_shape:
            raise DataError(f"data set {s.dataset!r} gave {'x'.join(map(str, train.masks.shape[1:]))} items, expected "
                            f"{'x'.join(map(str, s.spatial_shape))}")
        representation = self.variable.representation
        # what is diffused (label maps, or the images of a synthesis model) and the paired spatial condition
        self._masks = torch.from_numpy(diffused_items(representation, train.masks, train.images))
        self._labels = torch.as_tensor(train.groups, dtype=torch.long)
        if self.method is not None and self.method.condition == "image":
            self._images = paired_maps(representation, train.masks, train.images)

    def condition(self, index: torch.Tensor) -> Condition:
        """The condition of the training items ``index`` (on the training device)."""
        assert self._labels is not None
        labels = self._labels[index].to(self.device)
        images = self._images[index].to(self.device) if self._images is not None else None
        return Condition(labels=labels, images=images)

    @property
    def num_items(self) -> int:
        self.load_data()
        assert self._masks is not None
        return len(self._masks)

    @property
    def steps_per_epoch(self) -> int:
        per_shard = self.num_items // self.shards
        if per_shard < self.spec.batch_size:
            raise CardiobenchError(
                f"batch size {self.spec.batch_size} is larger than the training split "
                f"({per_shard} slices per shard, {self.shards} shard(s))", "use a smaller --batch-size")
        return per_shard // self.spec.batch_size

    @property
    def total_steps(self) -> int:
        s = self.spec
        return s.steps if s.steps is not None else s.epochs * self.steps_per_epoch

    def epoch_order(self, epoch: int, shard: int = 0) -> torch.Tensor:
        """Shard ``shard``'s order of the training items in ``epoch``: every ``shards``-th item of a permutation
        seeded by (seed, epoch), from item ``shard`` on (a DistributedSampler without padding)."""
        g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + 7919 * (epoch + 1))
        perm = torch.randperm(self.num_items, generator=g)
        return perm[shard :: self.shards]

    def data_state(self) -> dict[str, int]:
        spe = self.steps_per_epoch
        return {"epoch": self.step // spe, "batch": self.step % spe, "num_items": self.num_items,
                "steps_per_epoch": spe, "world_size": self.world_size, "shards": self.shards}

    # -- one step -----------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        w = self.spec.warmup_steps
        return self.spec.lr * min(1.0, (step + 1) / w) if w else self.spec.lr

    def compute_loss(self, index: torch.Tensor, shard: int | None = None) -> torch.Tensor:
        """The loss of one batch (``index`` into the training split); the process draws its randomness
        (e.g. t and eps) from the generator of ``shard`` (default: this process's first)."""
        assert self._masks is not None
        generator = self.generators[self.local_shards[0] if shard is None else shard]
        x0 = self.variable.encode(self._masks[index]).to(self.device)

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.spec.precision == "bf16"):
                if self.method is None:
                    return self.net(x_t, t)
                return self.method.forward_train(self.net, x_t, t, self.condition(index), generator)

        return self.variable.training_loss(model_fn, x0, generator, loss=self.spec.loss)

    def step_loss(self, step: int) -> torch.Tensor:
        """The loss of optimizer step ``step``: the mean over its shards. This process backpropagates through its
        own shards' losses; under torchrun the value is the mean over every rank (so every rank logs, and stops
        on, the same number) while DistributedDataParallel averages the gradients."""
        if len(self.local_shards) == 1:
            local = self.compute_loss(self.batch_at(step))
        else:
            local = torch.stack([self.compute_loss(self.batch_at(step, s), s) for s in self.local_shards]).mean()
        if self.world_size == 1:
            return local
        return distributed.mean_value(local) + (local - local.detach())  # the value of the mean, local gradients

    def train_step(self, index: torch.Tensor) -> float:
        """One optimizer step on the training items ``index`` (the loop's update); a NaN/inf loss is returned
        with the weights untouched."""
        return self.loop.run_step(lambda _step: self.compute_loss(index))

    def batch_at(self, step: int, shard: int | None = None) -> torch.Tensor:
        """The training items of shard ``shard`` (default: this process's first) at optimizer step ``step``: its
        slice of its epoch's order."""
        shard = self.local_shards[0] if shard is None else shard
        epoch, batch = divmod(step, self.steps_per_epoch)
        if self._order_epoch != epoch:
            self._orders, self._order_epoch = {}, epoch
        if shard not in self._orders:
            self._orders[shard] = self.epoch_order(epoch, shard)
        bs = self.spec.batch_size
        return self._orders[shard][batch * bs : (batch + 1) * bs]

    # -- state --------------------------------------------------------------------------------
    def generator_states(self) -> list[torch.Tensor]:
        """The state of every shard's generator, in shard order (a collective under torchrun: every rank calls it)."""
        local = {s: g.get_state() for s, g in self.generators.items()}
        merged: dict[int, torch.Tensor] = {}
        for part in distributed.all_gather_object(local):
            merged.update(part)
        return [merged[s] for s in range(self.shards)]

    def state_dict(self, extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything needed to continue (under torchrun a collective: every rank calls it, rank 0 writes it)."""
        total = self.total_steps
        states = self.generator_states()
        rng = capture_rng(None)
        rng["generator"] = states[0]
        if self.shards > 1:
            rng["generators"] = states
        return {
            "spec": self.spec.to_dict(),
            "spec_hash": self.spec_hash,
            "step": self.step,
            "total_steps": total,
            "complete": self.step >= total,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "data_state": self.data_state(),
            "loss_history": torch.tensor(self.loss_history, dtype=torch.float32),
            "meta": {
                "cardiobench_version": __version__, "torch_version": str(torch.__version__),
                "device": str(self.device), "seconds": self.seconds,
                "params": sum(p.numel() for p in self.model.parameters()), **(extra_meta or {}),
            },
        }

    def load_state_dict(self, state: dict[str, Any], path: str | Path = "checkpoint") -> None:
        try:
            self.model.load_state_dict(state["model"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            restore_rng(state["rng"], None)
            states = state["rng"].get("generators") or [state["rng"]["generator"]]
            if len(states) != self.shards:
                raise ValueError(f"{len(states)} generator states for {self.shards} shards")
            for s, g in self.generators.items():
                g.set_state(states[s])
            self.step = int(state["step"])
            self.loss_history = [float(x) for x in state["loss_history"].tolist()]
            self.seconds = float(state.get("meta", {}).get("seconds", 0.0))
            self.images_per_s = state.get("meta", {}).get("images_per_s")
            ds = state.get("data_state") or {}
        except Exception as exc:  # shapes that do not fit this model, or a damaged file (bit flip, hand edit)
            raise damaged(path, exc, RETRAIN_HINT) from None
        if ds.get("num_items") not in (None, self.num_items):
            raise CardiobenchError(f"the training split has {self.num_items} slices, the checkpoint was trained on "
                                   f"{ds['num_items']}", "the data set changed: train again with --retrain")

    def save(self, path: Path, **meta: Any) -> None:
        """Write the checkpoint: every rank gathers (a collective), rank 0 writes."""
        state = self.state_dict(meta)
        if self.rank == 0:
            save_checkpoint(path, state)

    # -- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        checkpoint: Path,
        *,
        stop_after: int | None = None,
        checkpoint_every: int | None = None,
        progress: Progress | None = None,
        callback: Callable[[int, float], None] | None = None,
    ) -> dict[str, Any]:
        """Train until ``total_steps`` (or ``stop_after`` more steps); checkpoint periodically and at the end.

        On Ctrl-C the finished steps are checkpointed before the interrupt propagates; on a NaN/inf loss
        ``TrainingDiverged`` is raised and the last checkpoint written is kept as is. On SIGTERM or SIGUSR1 (and
        Ctrl-C under torchrun) every rank stops after the same step, the checkpoint is written and
        ``TrainingPreempted`` is raised: the same command continues from it.
        """
        self.load_data()
        total = self.total_steps
        target = total if stop_after is None else min(total, self.step + stop_after)
        self.net.train()
        seconds_before = self.seconds

        def save(stats: LoopStats) -> None:
            self.seconds = seconds_before + stats.seconds
            if stats.images_per_s is not None:
                self.images_per_s = stats.images_per_s
            self.save(checkpoint, images_per_s=self.images_per_s)

        with distributed.StopSignals(interrupt=self.world_size > 1) as stop:
            stats = self.loop.run(
                self.step_loss, target, total=total, items_per_step=self.spec.batch_size * self.shards,
                checkpoint=Checkpointing(checkpoint, save, every=checkpoint_every, seconds=CHECKPOINT_SECONDS),
                progress=progress if self.rank == 0 else None, label="train", what="training",
                hint="lower --lr, add --warmup-steps, or keep --grad-clip on", callback=callback,
                should_stop=lambda: stop.requested, agree=distributed.agree if self.world_size > 1 else None)
        if stats.stopped:
            distributed.barrier()  # the checkpoint is on disk before any rank reports it
            why = stop.name or "a stop request on another rank"
            raise TrainingPreempted(
                f"training stopped by {why} after step {self.step} of {total}; checkpoint written to {checkpoint}",
                "run the same command again to continue from it", stop.signum, checkpoint)
        return stats.to_dict()


def _final_loss(history: list[float]) -> float | None:
    if not history:
        return None
    tail = history[-min(len(history), RECENT):]
    return float(sum(tail) / len(tail))


def _base_weights(base_spec: TrainSpec, **kwargs: Any) -> dict[str, torch.Tensor]:
    """The trained weights (EMA if kept) of the model another one starts from (a ControlNet's base):
    reused from the cache or the shipped checkpoints, else trained first."""
    from cardiobench.engine.checkpoints import install_shipped

    resolved = resolve_spec(base_spec)
    install_shipped(resolved.hash())
    resolve(kwargs.get("progress")).log(f"[bold]base model[/] {resolved.short_hash()} ({resolved.noise}, "
                                        f"{resolved.backbone})")
    result = train(resolved, None, **kwargs)
    state = load_checkpoint(result.checkpoint)
    return state["ema"] if state.get("ema") is not None else state["model"]


def train(
    spec: TrainSpec,
    out_dir: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    retrain: bool = False,
    device: str = "auto",
    data_root: str | None = None,
    checkpoint_every: int | None = None,
    stop_after: int | None = None,
    progress: Progress | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or continue, or reuse) the model of ``spec``; see the module docstring for where it goes.

    ``resume``: a checkpoint (file or folder) of the same model to continue from, whatever its training
    length. ``retrain``: ignore existing checkpoints. ``stop_after``: run at most this many steps now
    (a later call continues). ``callback(step, loss)`` runs after every step. ``progress``: where the
    training bar goes (default: silent; the CLI passes its terminal reporter).
    """
    trainer = Trainer(spec, device=device, data_root=data_root)
    rspec, h = trainer.spec, trainer.spec_hash
    ckpt = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else cached_checkpoint_path(h)
    params = sum(p.numel() for p in trainer.model.parameters())
    start: dict[str, Any] | None = None
    status = "trained"

    def result(status: str, stats: dict[str, Any], state: dict[str, Any] | None = None) -> TrainResult:
        history = trainer.loss_history if state is None else [float(x) for x in state["loss_history"].tolist()]
        step = trainer.step if state is None else int(state["step"])
        total = int(state["total_steps"]) if state is not None else trainer.total_steps
        if status == "reused":
            resolve(progress).log(f"[bold]reuse[/] the trained checkpoint {h[:12]} ({step} steps, no training): "
                                  f"{ckpt}")
        curve = ckpt.parent / LOSS_CURVE_NAME
        if history and trainer.rank == 0:
            pred = rspec.noise_options.get("prediction_type")
            title = (f"training loss ({rspec.loss}), {rspec.noise}{f' {pred}-prediction' if pred else ''}, "
                     f"{rspec.backbone} {rspec.backbone_options.get('size', '')}")
            save_loss_curve(curve, history, title=title)
        return TrainResult(
            checkpoint=ckpt, spec=rspec, spec_hash=h, status=status, step=step, total_steps=total,
            steps_run=stats.get("steps_run", 0), seconds=stats.get("seconds", 0.0),
            images_per_s=stats.get("images_per_s"), final_loss=_final_loss(history),
            loss_curve=curve if curve.is_file() else None, params=params, device=str(trainer.device),
        )

    # what to start from is decided by rank 0 alone (the other ranks would race with its writes) and every rank
    # then loads the same file
    action = distributed.broadcast_object(_start_action(ckpt, h, resume=resume, retrain=retrain, out_dir=out_dir)
                                          if trainer.rank == 0 else None)
    if action == "cached":
        if trainer.rank == 0:
            cached = find_cached_checkpoint(h)
            assert cached is not None
            publish(cached, ckpt)
        distributed.barrier()
        return result("reused", {}, load_checkpoint(ckpt))
    if action == "resume":
        assert resume is not None
        start = load_checkpoint(resume)
        other = TrainSpec.from_dict(start["spec"])
        if not other.same_model_as(rspec):
            diff = sorted(k for k, v in rspec.to_dict().items() if other.to_dict().get(k) != v
                          and k not in ("steps", "epochs"))
            raise CardiobenchError(f"cannot resume {resume}: it was trained with different {', '.join(diff)}",
                                   "only the training length (--steps/--epochs) may change when resuming")
        status = "resumed"
    elif action == "continue":
        start = load_checkpoint(ckpt, hint=RETRAIN_HINT)
        if start.get("spec_hash") != h:
            raise CardiobenchError(
                f"{ckpt} holds a checkpoint of another training spec",
                f"choose another --out, pass --resume {ckpt} to continue it with the new length, or --retrain")
        status = "reused" if start.get("complete") else "resumed"

    if start is not None and status == "reused":
        return result("reused", {}, start)
    base_spec = trainer.method.base_spec(spec) if trainer.method is not None else None
    if start is None and base_spec is not None:  # a fresh ControlNet
        trainer.load_base(_base_weights(base_spec, device=device, data_root=data_root, progress=progress))
    if start is not None:
        trainer.load_state_dict(start, resume if resume is not None else ckpt)
        if trainer.step > trainer.total_steps:
            raise CardiobenchError(f"the checkpoint already has {trainer.step} steps, more than the "
                                   f"{trainer.total_steps} asked for", "ask for more --steps, or --retrain")
    stats = trainer.fit(ckpt, stop_after=stop_after, checkpoint_every=checkpoint_every, progress=progress,
                        callback=callback)
    if trainer.step >= trainer.total_steps and out_dir is not None and trainer.rank == 0:
        publish(ckpt, cached_checkpoint_path(h))
    distributed.barrier()  # every file is written before any rank goes on (and reads it)
    return result(status, stats)


def _start_action(ckpt: Path, spec_hash: str, *, resume: str | Path | None, retrain: bool,
                  out_dir: str | Path | None) -> str:
    """Where a training starts: ``resume`` (the given checkpoint), ``continue`` (the one at ``ckpt``), ``cached``
    (a finished one in the cache, published to ``ckpt``) or ``fresh``."""
    if resume is not None:
        return "resume"
    if not retrain and ckpt.is_file():
        return "continue"
    if not retrain and out_dir is not None and find_cached_checkpoint(spec_hash) is not None:
        return "cached"
    return "fresh"
