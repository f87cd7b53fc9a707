"""The training engine behind ``cardiobench train``.

``train(spec, out_dir)`` builds the data, the noise process, the backbone, the optimizer and the EMA
once, outside the loop (so the same code can run under ``torchrun``: the model is wrapped in
``DistributedDataParallel`` when a process group is initialised, each rank takes its share of every
epoch's permutation, and only rank 0 writes), then runs optimizer steps::

    x0 = one-hot masks in [-1, 1];  t ~ U{0..T-1};  eps ~ N(0, I)      (one seeded torch.Generator)
    x_t = process.q_sample(x0, t, eps);  target = process.training_target(x0, eps, t)
    loss = mse | smooth_l1 (model(x_t, t), target);  Adam;  grad-norm clip;  EMA update

Where the checkpoint goes: ``OUT/checkpoint.pt`` with ``out_dir``, else the cache
(``cache_dir("checkpoints")/<spec hash>/``); a finished training is also published to the cache, and a
finished cached checkpoint of the same spec hash is reused instead of training again. A checkpoint of
the same spec in the target is continued (re-running an interrupted command continues it); ``resume``
continues any checkpoint of the same model whose training length differs (to train longer).
Bit for bit: on CPU, 10 steps + resume + 10 steps equals 20 steps (tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cardiobench import __version__
from cardiobench.conditioning.base import Condition
from cardiobench.data import NUM_CLASSES, open_dataset
from cardiobench.data.tensors import images_to_tensor, masks_to_onehot
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
from cardiobench.errors import CardiobenchError, DataError
from cardiobench.plugins import get_component
from cardiobench.specs import TrainSpec

LOSS_CURVE_NAME = "loss_curve.png"
#: what fixes a damaged checkpoint in the cache or an --out folder: training it again overwrites it
RETRAIN_HINT = "run the same command with --retrain to train it again (the damaged file is replaced)"
#: without ``checkpoint_every``, a checkpoint is written at least this often (seconds)
CHECKPOINT_SECONDS = 60.0
#: progress line interval when stderr is not a terminal (log files, CI)
LOG_SECONDS = 30.0


class TrainingDiverged(CardiobenchError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for a CUDA device that is not there."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CardiobenchError(f"unknown device {device!r}", "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CardiobenchError(f"device {device!r} requested but CUDA is not available", "use --device cpu")
    return dev


def build_process(spec: TrainSpec):
    return get_component("noise", spec.noise).create(**spec.noise_options)


def model_channels(spec: TrainSpec) -> tuple[int, int]:
    """(in, out) channels of the denoised variable: the one-hot mask (4) in and out (a conditioning method may
    add input channels, e.g. the MRI image for ``concat``)."""
    return NUM_CLASSES, NUM_CLASSES


def build_conditioning(spec: TrainSpec):
    """The spec's conditioning method (``None`` for an unconditional model), built from its options."""
    if not spec.conditioning:
        return None
    comp = get_component("conditioning", spec.conditioning)
    try:
        return comp.create(**spec.conditioning_options)
    except TypeError as exc:
        raise CardiobenchError(f"bad option for conditioning {spec.conditioning!r}: {exc}",
                               "see `cardiobench plugins --kind conditioning` and docs/conditioning.md") from None


def build_model(spec: TrainSpec) -> torch.nn.Module:
    """The network of ``spec`` (the backbone, shaped by its conditioning method), initialised from ``spec.seed``
    without touching the caller's global RNG."""
    cin, cout = model_channels(spec)
    backbone = get_component("backbone", spec.backbone)

    def make_backbone(in_channels: int, out_channels: int, **extra: Any) -> torch.nn.Module:
        return backbone.create(in_channels, out_channels, **{**spec.backbone_options, **extra})

    method = build_conditioning(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = make_backbone(cin, cout) if method is None else method.build_network(make_backbone, cin, cout)
    if not isinstance(model, torch.nn.Module):
        raise CardiobenchError(f"backbone {spec.backbone!r} did not return a torch.nn.Module")
    return model


def resolve_spec(spec: TrainSpec, process: Any = None, model: torch.nn.Module | None = None) -> TrainSpec:
    """``spec`` with every default made explicit (the process's, the backbone's and the conditioning's ``config()``).

    Two specs that train the same thing (``{"size": "small"}`` vs the same values spelled out) then
    share one hash; resolving twice changes nothing. Settings a conditioning method imposes on the backbone
    (channels, class count) are not backbone options, so a ControlNet's base spec resolves like the
    unconditional model it is.
    """
    process = process if process is not None else build_process(spec)
    noise_options = {**spec.noise_options, **(process.config() if hasattr(process, "config") else {})}
    backbone_options = dict(spec.backbone_options)
    model = model if model is not None else build_model(spec)
    inner = getattr(model, "base", model)  # a ControlNet's backbone is its frozen base
    if callable(getattr(inner, "config", None)):
        cfg = dict(inner.config())
        for key in ("in_channels", "out_channels"):
            cfg.pop(key, None)
        if spec.conditioning and cfg.get("num_classes") is not None:  # set by the method, not a backbone option
            cfg.pop("num_classes")
        backbone_options.update(cfg)
    method = build_conditioning(spec)
    conditioning_options = {**spec.conditioning_options, **(method.config() if method is not None else {})}
    return spec.replace(noise_options=noise_options, backbone_options=backbone_options,
                        conditioning_options=conditioning_options)


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


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Trainer:
    """Owns the model, EMA, optimizer, data and RNG of one training; ``fit`` runs the loop.

    Built once, outside the loop. ``state_dict``/``load_state_dict`` cover everything needed to continue
    bit for bit.
    """

    def __init__(self, spec: TrainSpec, *, device: str | torch.device = "auto", data_root: str | None = None):
        self.device = resolve_device(device)
        self.data_root = data_root
        self.rank, self.world_size = _dist()
        self.process = build_process(spec)
        self.method = build_conditioning(spec)
        self.model = build_model(spec).to(self.device)
        self.spec = resolve_spec(spec, self.process, self.model)
        self.spec_hash = self.spec.hash()
        self.ema = EMA(self.model, spec.ema_decay) if spec.ema_decay > 0 else None
        params = list(self.method.trainable_parameters(self.model) if self.method else self.model.parameters())
        self.optimizer = torch.optim.Adam(params, lr=spec.lr)
        self.net: torch.nn.Module = self.model
        if self.world_size > 1:  # pragma: no cover - exercised under torchrun only
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.generator = torch.Generator().manual_seed(spec.seed * 1_000_003 + 17 + self.rank)
        self.step = 0
        self.loss_history: list[float] = []
        self.seconds = 0.0  # training time over every run of this checkpoint
        self.images_per_s: float | None = None  # of the latest run that trained
        self._masks: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._images: torch.Tensor | None = None

    def load_base(self, state: dict[str, torch.Tensor]) -> None:
        """Before the first step: load a trained base model (a ControlNet's frozen U-Net and its copy)."""
        if self.step:
            raise CardiobenchError("the base model can only be loaded before training starts")
        self.model.load_base(state)
        if self.ema is not None:
            self.ema = EMA(self.model, self.spec.ema_decay)

    # -- data ---------------------------------------------------------------------------------
    def load_data(self) -> None:
        if self._masks is not None:
            return
        s = self.spec
        root = {"data_root": self.data_root} if self.data_root else {}
        source = open_dataset(s.dataset, size=s.resolution, seed=s.data_seed, **root, **s.dataset_options)
        train = source.load("train")
        if len(train) == 0:
            raise DataError(f"data set {s.dataset!r} has no training slices")
        if train.masks.shape[1:] != (s.resolution, s.resolution):
            raise DataError(f"data set {s.dataset!r} gave {train.masks.shape[1:]} slices, expected "
                            f"{s.resolution}x{s.resolution}")
        self._masks = torch.from_numpy(train.masks.astype("uint8"))
        self._labels = torch.as_tensor(train.groups, dtype=torch.long)
        if self.method is not None and self.method.condition == "image":
            self._images = images_to_tensor(train.images)

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
        per_rank = self.num_items // self.world_size
        if per_rank < self.spec.batch_size:
            raise CardiobenchError(
                f"batch size {self.spec.batch_size} is larger than the training split "
                f"({per_rank} slices per process)", "use a smaller --batch-size")
        return per_rank // self.spec.batch_size

    @property
    def total_steps(self) -> int:
        s = self.spec
        return s.steps if s.steps is not None else s.epochs * self.steps_per_epoch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's order of the training items in ``epoch``: a permutation seeded by (seed, epoch)."""
        g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + 7919 * (epoch + 1))
        perm = torch.randperm(self.num_items, generator=g)
        return perm[self.rank :: self.world_size]

    def data_state(self) -> dict[str, int]:
        spe = self.steps_per_epoch
        return {"epoch": self.step // spe, "batch": self.step % spe, "num_items": self.num_items,
                "steps_per_epoch": spe, "world_size": self.world_size}

    # -- one step -----------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        w = self.spec.warmup_steps
        return self.spec.lr * min(1.0, (step + 1) / w) if w else self.spec.lr

    def compute_loss(self, index: torch.Tensor) -> torch.Tensor:
        """The loss of one batch (``index`` into the training split); draws t and eps from the generator."""
        assert self._masks is not None
        x0 = masks_to_onehot(self._masks[index]).to(self.device)
        b = x0.shape[0]
        t = self.process.sample_timesteps(b, generator=self.generator)
        noise = torch.randn(x0.shape, generator=self.generator)
        t, noise = t.to(self.device), noise.to(self.device)
        x_t = self.process.q_sample(x0, t, noise)
        target = self.process.training_target(x0, noise, t)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.spec.precision == "bf16"):
            if self.method is None:
                out = self.net(x_t, t)
            else:
                out = self.method.forward_train(self.net, x_t, t, self.condition(index), self.generator)
        out = out.float()
        if self.spec.loss == "mse":
            return F.mse_loss(out, target)
        return F.smooth_l1_loss(out, target)

    def train_step(self, index: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        loss = self.compute_loss(index)
        value = float(loss.detach())
        if not math.isfinite(value):
            return value  # the caller stops; the weights are left untouched
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.spec.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.spec.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.step)
        self.step += 1
        self.loss_history.append(value)
        return value

    # -- state --------------------------------------------------------------------------------
    def state_dict(self, extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        total = self.total_steps
        return {
            "spec": self.spec.to_dict(),
            "spec_hash": self.spec_hash,
            "step": self.step,
            "total_steps": total,
            "complete": self.step >= total,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng(self.generator),
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
            restore_rng(state["rng"], self.generator)
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
        if self.rank == 0:
            save_checkpoint(path, self.state_dict(meta))

    # -- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        checkpoint: Path,
        *,
        stop_after: int | None = None,
        checkpoint_every: int | None = None,
        quiet: bool = False,
        console: Console | None = None,
        callback: Callable[[int, float], None] | None = None,
    ) -> dict[str, Any]:
        """Train until ``total_steps`` (or ``stop_after`` more steps); checkpoint periodically and at the end.

        On Ctrl-C the finished steps are checkpointed before the interrupt propagates; on a NaN/inf loss
        ``TrainingDiverged`` is raised and the last checkpoint written is kept as is.
        """
        self.load_data()
        total = self.total_steps
        target = total if stop_after is None else min(total, self.step + stop_after)
        spe, bs = self.steps_per_epoch, self.spec.batch_size
        self.net.train()
        start_step, t0 = self.step, time.perf_counter()
        last_save_step, last_save_time = self.step, t0
        order_epoch, order = -1, None
        console = console or Console(stderr=True)
        quiet = quiet or self.rank != 0
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=quiet, transient=False,
        )
        # not a terminal (a log file, CI): a plain progress line every LOG_SECONDS instead of a live bar
        log_lines = not quiet and not console.is_terminal
        last_log = t0

        def stats() -> dict[str, Any]:
            dt = time.perf_counter() - t0
            n = self.step - start_step
            return {"steps_run": n, "seconds": dt, "images_per_s": n * bs * self.world_size / dt if n and dt else None}

        def save_now() -> None:
            nonlocal last_save_step, last_save_time
            s = stats()
            self.seconds += time.perf_counter() - last_save_time
            if s["images_per_s"] is not None:
                self.images_per_s = s["images_per_s"]
            self.save(checkpoint, images_per_s=self.images_per_s)
            last_save_step, last_save_time = self.step, time.perf_counter()

        with progress:
            task = progress.add_task("train", total=total, completed=self.step, loss="-", ips="-")
            try:
                while self.step < target:
                    epoch, batch = divmod(self.step, spe)
                    if epoch != order_epoch:
                        order, order_epoch = self.epoch_order(epoch), epoch
                    assert order is not None
                    value = self.train_step(order[batch * bs : (batch + 1) * bs])
                    if not math.isfinite(value):
                        kept = (f"the last good checkpoint (step {last_save_step}) is kept at {checkpoint}"
                                if checkpoint.is_file() else "no checkpoint had been written yet")
                        raise TrainingDiverged(
                            f"training diverged: the loss is {value} at step {self.step + 1}; stopped, {kept}",
                            "lower --lr, add --warmup-steps, or keep --grad-clip on")
                    if (checkpoint_every and self.step % checkpoint_every == 0) or (
                        not checkpoint_every and time.perf_counter() - last_save_time > CHECKPOINT_SECONDS
                    ):
                        save_now()
                    if callback is not None:
                        callback(self.step, value)
                    s = stats()
                    ips = f"{s['images_per_s']:.0f}" if s["images_per_s"] else "-"
                    progress.update(task, completed=self.step, loss=f"{value:.4f}", ips=ips)
                    if log_lines and (time.perf_counter() - last_log > LOG_SECONDS or self.step == target):
                        last_log = time.perf_counter()
                        avg = sum(self.loss_history[-50:]) / len(self.loss_history[-50:])
                        console.print(f"train step {self.step}/{total}  loss {avg:.4f} (last 50)  {ips} img/s  "
                                      f"{s['seconds']:.0f} s", highlight=False)
            except KeyboardInterrupt:
                if self.step > last_save_step:
                    save_now()
                raise
            if self.step > last_save_step or not checkpoint.is_file():
                save_now()
        return stats()


def _final_loss(history: list[float]) -> float | None:
    if not history:
        return None
    tail = history[-min(len(history), 50):]
    return float(sum(tail) / len(tail))


def _base_weights(base_spec: TrainSpec, **kwargs: Any) -> dict[str, torch.Tensor]:
    """The trained weights (EMA if kept) of the model another one starts from (a ControlNet's base):
    reused from the cache or the shipped checkpoints, else trained first."""
    from cardiobench.engine.checkpoints import install_shipped

    console = kwargs.get("console") or Console(stderr=True)
    resolved = resolve_spec(base_spec)
    install_shipped(resolved.hash())
    if not kwargs.get("quiet"):
        console.print(f"[bold]base model[/] {resolved.short_hash()} ({resolved.noise}, {resolved.backbone})")
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
    quiet: bool = False,
    console: Console | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or continue, or reuse) the model of ``spec``; see the module docstring for where it goes.

    ``resume``: a checkpoint (file or folder) of the same model to continue from, whatever its training
    length. ``retrain``: ignore existing checkpoints. ``stop_after``: run at most this many steps now
    (a later call continues). ``callback(step, loss)`` runs after every step.
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

    if resume is not None:
        start = load_checkpoint(resume)
        other = TrainSpec.from_dict(start["spec"])
        if not other.same_model_as(rspec):
            diff = sorted(k for k, v in rspec.to_dict().items() if other.to_dict().get(k) != v
                          and k not in ("steps", "epochs"))
            raise CardiobenchError(f"cannot resume {resume}: it was trained with different {', '.join(diff)}",
                                   "only the training length (--steps/--epochs) may change when resuming")
        status = "resumed"
    elif not retrain and ckpt.is_file():
        start = load_checkpoint(ckpt, hint=RETRAIN_HINT)
        if start.get("spec_hash") != h:
            raise CardiobenchError(
                f"{ckpt} holds a checkpoint of another training spec",
                f"choose another --out, pass --resume {ckpt} to continue it with the new length, or --retrain")
        status = "reused" if start.get("complete") else "resumed"
    elif not retrain and out_dir is not None:
        cached = find_cached_checkpoint(h)
        if cached is not None:
            publish(cached, ckpt)
            state = load_checkpoint(ckpt)
            return result("reused", {}, state)

    if start is not None and status == "reused":
        return result("reused", {}, start)
    base_spec = trainer.method.base_spec(spec) if trainer.method is not None else None
    if start is None and base_spec is not None:  # a fresh ControlNet
        trainer.load_base(_base_weights(base_spec, device=device, data_root=data_root, quiet=quiet,
                                        console=console))
    if start is not None:
        trainer.load_state_dict(start, resume if resume is not None else ckpt)
        if trainer.step > trainer.total_steps:
            raise CardiobenchError(f"the checkpoint already has {trainer.step} steps, more than the "
                                   f"{trainer.total_steps} asked for", "ask for more --steps, or --retrain")
    stats = trainer.fit(ckpt, stop_after=stop_after, checkpoint_every=checkpoint_every, quiet=quiet,
                        console=console, callback=callback)
    if trainer.step >= trainer.total_steps and out_dir is not None and trainer.rank == 0:
        publish(ckpt, cached_checkpoint_path(h))
    return result(status, stats)
