"""The domain evaluator: a small CNN that predicts a mask's pathology group, the ruler of FID/KID/IS/PR.

Inception features are a poor ruler for 4-class label maps (and their weights cannot be downloaded here),
so every data set gets its own ruler: a CNN trained on the data set's training-split masks to predict the
pathology group (NOR, MINF, DCM, HCM, RV). Its penultimate features (``features``, 128-d) feed FID, KID
and precision/recall; its logits feed the Inception Score.

- Input: a label map (any size) -> resized by nearest neighbour to the evaluator's native size (64 by
  default) -> one-hot, 4 channels. One evaluator per data set serves every resolution; during training a
  quarter of the batches make a 64 -> 32 -> 64 round trip so that upsampled 32-px masks are in-distribution.
  Real-vs-real references are always measured at the same resolution as the samples.
- Training is deterministic: seeded initialisation and shuffling, CPU, ``torch.use_deterministic_algorithms``
  and a fixed thread count. The identity of an evaluator (``evaluator_id``) is the first 12 hex digits of
  the sha256 of its configuration and weights (names, dtypes, shapes and bytes in a fixed order), so it
  does not depend on how the file was serialised. Results record it; the leaderboard only ranks results
  measured with the same evaluator.
- The phantom's evaluator ships in ``cardiobench/assets`` (weights + a JSON with its id, accuracy and the
  command that regenerates it); other data sets' evaluators are trained on first use and cached under
  ``$CARDIOBENCH_CACHE_DIR/evaluators`` keyed by (data set, training-data fingerprint, configuration); files are
  read and written by the artefact store (``EVALUATORS``, ``cardiobench.engine.store``) and training runs on the
  shared loop (``cardiobench.engine.loop``).
- Two training objectives (``EvaluatorConfig.objective``), the same backbone and 128-d features:
  ``"pathology"`` (the default, every evaluator before the option existed): supervised cross-entropy on the
  pathology group. ``"ssl"``: self-supervised contrastive learning (SimCLR, Chen et al., "A simple framework
  for contrastive learning of visual representations", ICML 2020): two augmented views of every training mask
  (``augment_views``: rotation, flip, scale/shift, a smooth elastic warp, a blocky round trip; never the
  damage transforms of the validity check), a projection head (discarded after training) and the NT-Xent loss;
  then a linear probe (``head``, the frozen features -> pathology group, cross-entropy) so that the logits
  still feed the Inception Score and the conditional metrics. Which objective a data set gets by default is
  data set registration metadata (``evaluator_objective``, see ``default_config``).
- Every evaluator carries a **validity record** (``meta["validity"]``, ``cardiobench.metrics.validity``):
  test accuracy against chance and the FID ordering real < mismatched < damaged < blobs, measured once on
  the real splits when it is trained and stored in its file. A file written before the record existed is
  measured when it is loaded (a cached file is rewritten with it; its id does not change: the id covers the
  configuration and weights only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cardiobench.data.base import GROUPS, NUM_CLASSES
from cardiobench.engine.loop import TrainLoop, as_progress
from cardiobench.engine.store import ArtefactStore
from cardiobench.errors import CardiobenchError, warn
from cardiobench.progress import Progress

FORMAT = "cardiobench-evaluator/1"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: the shipped evaluators: data set name -> file stem in cardiobench/assets
SHIPPED: dict[str, str] = {"phantom": "phantom-evaluator"}
REGENERATE = "cardiobench evaluator train --dataset {dataset} --ship"
_HINT = "train one with `cardiobench evaluator train`, or omit it to use the shipped evaluator"
#: where training reports: a ``Progress``, or (the older form) a ``log(message)`` callable
Reporter = Progress | Callable[[str], None] | None


def _check_file(blob: Any, path: Path, hint: str) -> None:
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CardiobenchError(f"{path} is not a cardiobench evaluator file (expected format {FORMAT})", hint)


#: the store of evaluators: cached ``cache_dir("evaluators")/<dataset>-<data fingerprint>-<config hash>.pt``
#: (the name is the key: files hold no spec hash), shipped ``assets/<SHIPPED[dataset]>.pt`` (keyed by data set)
EVALUATORS = ArtefactStore(
    "evaluators", what="evaluator file", hint=_HINT, header={"format": FORMAT}, check=_check_file, key_field=None,
    shipped_dir=lambda: ASSETS, shipped_name=lambda dataset: f"{SHIPPED[dataset]}.pt" if dataset in SHIPPED else None,
)


class EvaluatorWarning(UserWarning):
    """The evaluator in use may not match the data (e.g. a shipped evaluator for an older phantom)."""


@dataclass(frozen=True)
class EvaluatorConfig:
    """Architecture and training recipe; part of the evaluator's identity."""

    size: int = 64  # native input resolution
    width: int = 32  # channels of the first conv blocks (doubled, then doubled again)
    features: int = 128  # dimension of the penultimate features (FID/KID/PR)
    num_classes: int = len(GROUPS)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    roundtrip_prob: float = 0.25  # batches made blocky by a size -> size/2 -> size round trip
    seed: int = 0
    threads: int = 2  # fixed so training is bit-reproducible on one machine
    # -- added with the SSL objective; left out of the identity when they cannot affect training (see
    # ``config_identity``), so every pathology evaluator made before keeps its id
    objective: str = "pathology"  # "pathology" (supervised) | "ssl" (SimCLR + linear probe)
    ssl_temperature: float = 0.2  # NT-Xent temperature tau (SimCLR used 0.1-0.5)
    ssl_projection: int = 64  # output dimension of the SimCLR projection head g (discarded after training)
    probe_epochs: int = 200  # full-batch steps of the linear probe (head) on the frozen SSL features

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise CardiobenchError(f"unknown evaluator objective {self.objective!r}",
                                   f"use one of: {', '.join(OBJECTIVES)}")


#: the training objectives of ``EvaluatorConfig.objective``
OBJECTIVES: tuple[str, ...] = ("pathology", "ssl")
#: configuration fields that only the SSL objective reads
_SSL_FIELDS: tuple[str, ...] = ("ssl_temperature", "ssl_projection", "probe_epochs")


def config_identity(config: EvaluatorConfig) -> dict[str, Any]:
    """The configuration as it enters the evaluator's identity (``weights_digest``, ``cache_path``).

    Fields added after evaluators were published are left out when they cannot change the weights: for the
    ``"pathology"`` objective, ``objective`` itself and the SSL-only fields. So the identity of a pathology
    configuration is the dictionary it had before the SSL objective existed (the shipped phantom evaluator
    keeps its id), and every SSL configuration differs from every pathology one by its ``objective``."""
    d = asdict(config)
    if config.objective == "pathology":
        for name in ("objective", *_SSL_FIELDS):
            d.pop(name)
    return d


def default_config(dataset: str | None = None) -> EvaluatorConfig:
    """The evaluator configuration a data set gets when none is given: the default recipe with the
    objective the data set was registered with (``register(..., evaluator_objective="ssl")``; no metadata,
    or an unknown data set: ``"pathology"``). Data sets choose their ruler by metadata; nothing here knows
    a data set by name."""
    objective = "pathology"
    if dataset is not None:
        from cardiobench.plugins import registry

        comp = next((c for c in registry("dataset") if c.name == dataset), None)
        if comp is not None:
            objective = str(comp.metadata.get("evaluator_objective", objective))
    return EvaluatorConfig(objective=objective)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True)
    )


class PathologyCNN(nn.Module):
    """(B, 4, S, S) one-hot masks -> (features (B, F), logits (B, classes))."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        c = config.width
        self.body = nn.Sequential(
            _block(NUM_CLASSES, c, stride=2),  # 64 -> 32: a strided stem keeps full-resolution work small
            _block(c, c),
            nn.MaxPool2d(2),
            _block(c, 2 * c),
            nn.MaxPool2d(2),
            _block(2 * c, 4 * c),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(4 * c, config.features), nn.ReLU(inplace=True))
        self.head = nn.Linear(config.features, config.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(self.body(x))
        return feats, self.head(feats)


def resize_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) integer labels -> (B, size, size) by nearest neighbour (pixel centres)."""
    if labels.shape[-1] == size and labels.shape[-2] == size:
        return labels
    x = labels[:, None].float()
    return F.interpolate(x, size=(size, size), mode="nearest-exact")[:, 0].to(labels.dtype)


def to_input(labels: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) labels (uint8/long, or (B, 1, H, W)) -> (B, 4, size, size) float32 one-hot in {0, 1}."""
    if labels.ndim == 4:
        labels = labels[:, 0]
    lab = resize_labels(labels.long().clamp(0, NUM_CLASSES - 1), size)
    return F.one_hot(lab, NUM_CLASSES).permute(0, 3, 1, 2).float()


def hash_tensors(h: Any, state_dict: dict[str, torch.Tensor]) -> Any:
    """Feed every tensor's name, dtype, shape and bytes, in key order, to the hash ``h``; returns ``h``. So an id
    does not depend on how the file was serialised (shared by the mask and the image rulers)."""
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h


def weights_digest(config: EvaluatorConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) of the configuration and every tensor's name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    h.update(json.dumps(config_identity(config), sort_keys=True).encode())
    return hash_tensors(h, state_dict).hexdigest()


def data_fingerprint(masks: np.ndarray, groups: np.ndarray) -> str:
    """sha256 (hex) of the training masks and groups: which data an evaluator was trained on."""
    h = hashlib.sha256()
    m = np.ascontiguousarray(masks, dtype=np.uint8)
    h.update(f"{m.shape}|".encode())
    h.update(m.tobytes())
    h.update(np.ascontiguousarray(groups, dtype=np.int64).tobytes())
    return h.hexdigest()


@dataclass
class Evaluator:
    """A trained evaluator: the model (eval mode, CPU), its configuration, identity and report."""

    model: PathologyCNN
    config: EvaluatorConfig
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def digest(self) -> str:
        return weights_digest(self.config, self.model.state_dict())

    @property
    def id(self) -> str:
        """The evaluator's identity: the first 12 hex digits of ``digest``."""
        return self.digest[:12]

    @property
    def validity(self) -> dict[str, Any] | None:
        """The validity record measured when it was trained (``cardiobench.metrics.validity``), if any."""
        return self.meta.get("validity")

    @torch.no_grad()
    def predict(
        self, masks, batch_size: int = 256, device: str | torch.device = "cpu"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W) label maps -> (features (N, F) float32, logits (N, classes) float32)."""
        model = self.model.to(device)
        m = torch.as_tensor(np.asarray(masks))
        feats, logits = [], []
        for s in range(0, len(m), batch_size):
            f, lg = model(to_input(m[s : s + batch_size].to(device), self.config.size))
            feats.append(f.cpu())
            logits.append(lg.cpu())
        self.model.to("cpu")
        if not feats:
            return np.zeros((0, self.config.features), np.float32), np.zeros((0, self.config.num_classes), np.float32)
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def accuracy(self, masks, groups) -> float:
        _, logits = self.predict(masks)
        return float((logits.argmax(1) == np.asarray(groups)).mean()) if len(logits) else float("nan")

    def save(self, path: str | Path) -> Path:
        """Write the evaluator atomically (``EVALUATORS.save``)."""
        self.path = EVALUATORS.save(path, {"config": asdict(self.config), "state_dict": self.model.state_dict(),
                                           "meta": self.meta})
        return self.path


def load_evaluator_file(path: str | Path) -> Evaluator:
    """Read an evaluator written by ``Evaluator.save``; a clear error if the file is not one."""
    path = Path(path)
    blob = EVALUATORS.read(path)
    try:
        config = EvaluatorConfig(**blob["config"])
        model = PathologyCNN(config)
        model.load_state_dict(blob["state_dict"])
        meta = dict(blob.get("meta", {}))
    except Exception as exc:  # keys, types or shapes that do not fit: a damaged file or another version
        raise EVALUATORS.damaged(path, exc) from None
    model.eval().requires_grad_(False)
    return Evaluator(model=model, config=config, meta=meta, path=path)


@contextlib.contextmanager
def _deterministic(threads: int):
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def augment_views(lab: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random view of each (B, S, S) label map, as (B, 4, S, S) one-hot float: the SimCLR augmentations
    (Chen et al. 2020) made for label maps.

    Per map: a horizontal flip (p 0.5), a rotation of up to +-30 degrees, an isotropic scale in [0.85, 1.15],
    a shift of up to 8 % of the field of view and a smooth elastic warp (a 4x4 grid of displacements, standard
    deviation 1.5 % of the field of view, about 1 px at 64 px, upsampled bicubically), applied as one sampling
    grid to the one-hot channels (bilinear, outside = background) and snapped back to labels by argmax; then,
    with probability 1/4, the blocky ``size -> size/2 -> size`` round trip. None of these is one of the damage
    transforms of the validity check (erosion, dilation, holes, a missing RV): the ruler is not trained on its
    test. All randomness comes from ``gen``."""
    b = lab.shape[0]
    x = to_input(lab, size)
    u = torch.rand(b, 6, generator=gen)
    angle = (u[:, 0] * 2 - 1) * (torch.pi / 6)
    scale = 0.85 + 0.3 * u[:, 1]
    flip = torch.where(u[:, 2] < 0.5, -1.0, 1.0)
    shift = (u[:, 3:5] * 2 - 1) * 0.16  # normalised coordinates span 2: 8 % of the field of view
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [b, NUM_CLASSES, size, size], align_corners=False)
    coarse = torch.randn(b, 2, 4, 4, generator=gen) * 0.03
    warp = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    warped = F.grid_sample(x, grid + warp, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped[:, 0] += 1e-6  # outside the image (all channels 0) and exact ties: background
    out = warped.argmax(1)
    blocky = u[:, 5] < 0.25
    if blocky.any():
        out[blocky] = resize_labels(resize_labels(out[blocky], size // 2), size)
    return F.one_hot(out, NUM_CLASSES).permute(0, 3, 1, 2).float()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1), averaged over the 2B
    views: for view i with positive j, ``-log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)``, s = cosine
    similarity of the projections."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


class _EpochTally:
    """Per-epoch sums of a training (loss, correct predictions, items), reported when an epoch ends."""

    def __init__(self) -> None:
        self.loss, self.correct, self.items = 0.0, 0, 0

    def add(self, loss: torch.Tensor, n: int, correct: int = 0) -> None:
        self.loss += float(loss.detach()) * n
        self.correct += correct
        self.items += n


def _run_epochs(loop: TrainLoop, cfg: EvaluatorConfig, n: int, per_epoch: int, gen: torch.Generator,
                batch_loss: Callable[[torch.Tensor, _EpochTally], torch.Tensor],
                line: Callable[[_EpochTally], str], progress: Progress) -> None:
    """``cfg.epochs`` epochs of ``per_epoch`` steps on the shared loop: each epoch draws a permutation of the ``n``
    training items from ``gen``; step ``b`` of an epoch trains on its ``b``-th batch (``per_epoch == 1``: all
    items); ``line(tally)`` is logged after each epoch."""
    bs = cfg.batch_size
    epoch: dict[str, Any] = {}

    def loss_at(step: int) -> torch.Tensor:
        b = step % per_epoch
        if b == 0:
            epoch.update(order=torch.randperm(n, generator=gen), tally=_EpochTally())
        idx = epoch["order"][b * bs : (b + 1) * bs] if per_epoch > 1 else epoch["order"]
        return batch_loss(idx, epoch["tally"])

    def end_of_epoch(step: int, _loss: float) -> None:
        if step % per_epoch == 0:
            progress.log(f"epoch {step // per_epoch}/{cfg.epochs}: {line(epoch['tally'])}")

    loop.run(loss_at, cfg.epochs * per_epoch, items_per_step=bs, progress=progress, label="evaluator",
             what="evaluator training", hint="lower the evaluator's learning rate (EvaluatorConfig.lr)",
             callback=end_of_epoch)


def _one_cycle(params: list[torch.Tensor], cfg: EvaluatorConfig, steps: int) -> TrainLoop:
    """AdamW with the one-cycle learning rate over ``steps`` steps, on the shared loop."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.2)
    return TrainLoop(opt, scheduler=sched)


def _train_pathology(model: PathologyCNN, x_all: torch.Tensor, y_all: torch.Tensor, cfg: EvaluatorConfig,
                     gen: torch.Generator, progress: Progress) -> None:
    """Supervised: cross-entropy on the pathology group (the original recipe, bit for bit)."""
    per_epoch = (len(x_all) + cfg.batch_size - 1) // cfg.batch_size
    loop = _one_cycle(list(model.parameters()), cfg, cfg.epochs * per_epoch)
    model.train()

    def batch_loss(idx: torch.Tensor, tally: _EpochTally) -> torch.Tensor:
        lab = x_all[idx]
        if torch.rand((), generator=gen).item() < cfg.roundtrip_prob:
            lab = resize_labels(resize_labels(lab, cfg.size // 2), cfg.size)
        _, logits = model(to_input(lab, cfg.size))
        loss = F.cross_entropy(logits, y_all[idx])
        tally.add(loss, len(idx), int((logits.argmax(1) == y_all[idx]).sum()))
        return loss

    _run_epochs(loop, cfg, len(x_all), per_epoch, gen, batch_loss,
                lambda t: f"loss {t.loss / t.items:.4f}, train accuracy {t.correct / t.items:.3f}", progress)


def _train_ssl(model: PathologyCNN, x_all: torch.Tensor, y_all: torch.Tensor, cfg: EvaluatorConfig,
               gen: torch.Generator, progress: Progress) -> None:
    """Self-supervised: SimCLR (NT-Xent on two ``augment_views`` of each mask, through a projection head
    g = Linear-ReLU-Linear on the 128-d features, Chen et al. 2020), no labels; then the linear probe: ``head``
    trained on the frozen features of the (unaugmented) training masks, full batch, cross-entropy."""
    proj = nn.Sequential(nn.Linear(cfg.features, cfg.features), nn.ReLU(inplace=True),
                         nn.Linear(cfg.features, cfg.ssl_projection))
    params = [*model.body.parameters(), *model.embed.parameters(), *proj.parameters()]
    # full batches only (the last partial one is dropped): a fixed number of negatives
    per_epoch = len(x_all) // cfg.batch_size if len(x_all) >= 2 * cfg.batch_size else 1
    loop = _one_cycle(params, cfg, cfg.epochs * per_epoch)
    model.train()
    proj.train()

    def batch_loss(idx: torch.Tensor, tally: _EpochTally) -> torch.Tensor:
        lab = x_all[idx]
        v1, v2 = augment_views(lab, cfg.size, gen), augment_views(lab, cfg.size, gen)
        z = proj(model.embed(model.body(torch.cat([v1, v2]))))
        loss = nt_xent(z[: len(idx)], z[len(idx) :], cfg.ssl_temperature)
        tally.add(loss, len(idx))
        return loss

    _run_epochs(loop, cfg, len(x_all), per_epoch, gen, batch_loss,
                lambda t: f"NT-Xent loss {t.loss / max(t.items, 1):.4f}", progress)
    # the linear probe on frozen features (the SimCLR linear evaluation protocol)
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.embed(model.body(to_input(x_all[s : s + 256], cfg.size)))
                           for s in range(0, len(x_all), 256)])
    probe = TrainLoop(torch.optim.AdamW(model.head.parameters(), lr=1e-2, weight_decay=cfg.weight_decay))
    probe.run(lambda _step: F.cross_entropy(model.head(feats), y_all), cfg.probe_epochs, progress=progress,
              label="linear probe", what="linear probe training")
    if progress.enabled and probe.history:
        acc = float((model.head(feats).argmax(1) == y_all).float().mean())
        progress.log(f"linear probe ({cfg.probe_epochs} steps): loss {probe.history[-1]:.4f}, "
                     f"train accuracy {acc:.3f}")


def train_evaluator(
    train_masks: np.ndarray,
    train_groups: np.ndarray,
    config: EvaluatorConfig | None = None,
    *,
    eval_sets: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Progress | None = None,
    log: Reporter = None,
) -> Evaluator:
    """Train a ``PathologyCNN`` deterministically on the CPU with ``config.objective`` ("pathology":
    supervised; "ssl": SimCLR then a linear probe), on the shared training loop; ``eval_sets`` (name ->
    (masks, groups)) are scored afterwards into ``meta["accuracy"]`` (and a confusion matrix per set).
    ``progress`` (or the older ``log(message)`` callable) shows the training (default: silent)."""
    reporter = as_progress(progress, log)
    cfg = config or EvaluatorConfig()
    groups = np.asarray(train_groups, dtype=np.int64)
    if len(train_masks) == 0:
        raise CardiobenchError("cannot train an evaluator on an empty training split")
    if len(np.unique(groups)) < 2:
        raise CardiobenchError("the training split has fewer than two pathology groups; an evaluator needs labels")
    t0 = time.perf_counter()
    with _deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = PathologyCNN(cfg)
        x_all = resize_labels(torch.as_tensor(np.asarray(train_masks)).long(), cfg.size).to(torch.uint8)
        y_all = torch.as_tensor(groups)
        train = _train_ssl if cfg.objective == "ssl" else _train_pathology
        train(model, x_all, y_all, cfg, gen, reporter)
        model.eval().requires_grad_(False)
    ev = Evaluator(model=model, config=cfg)
    meta: dict[str, Any] = {
        "groups": list(GROUPS),
        "train_fingerprint": data_fingerprint(x_all.numpy(), groups),
        "n_train": int(len(groups)),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "torch": str(torch.__version__),
        "objective": cfg.objective,
        "accuracy": {},
        "confusion": {},
    }
    for name, (masks, y) in (eval_sets or {}).items():
        if len(masks) == 0:
            continue
        _, logits = ev.predict(masks)
        pred = logits.argmax(1)
        y = np.asarray(y, dtype=np.int64)
        meta["accuracy"][name] = round(float((pred == y).mean()), 4)
        cm = np.zeros((cfg.num_classes, cfg.num_classes), dtype=np.int64)
        np.add.at(cm, (y, pred), 1)
        meta["confusion"][name] = cm.tolist()
    ev.meta = meta
    return ev


# -- getting the evaluator of a data set --------------------------------------------------------------------
def shipped_paths(dataset: str) -> tuple[Path, Path] | None:
    stem = SHIPPED.get(dataset)
    return None if stem is None else (ASSETS / f"{stem}.pt", ASSETS / f"{stem}.json")


def cache_path(dataset: str, fingerprint: str, config: EvaluatorConfig) -> Path:
    """Where the evaluator trained on this data with this configuration is cached."""
    cfg = hashlib.sha256(json.dumps(config_identity(config), sort_keys=True).encode()).hexdigest()[:8]
    return EVALUATORS.cache_path(f"{dataset}-{fingerprint[:16]}-{cfg}")


def load_splits(dataset: str, size: int, data_options: dict[str, Any] | None = None, *,
                volumes: bool = False) -> dict[str, Any]:
    """``{"train", "val", "test"}`` SliceSets of a registered data set at ``size``.

    A volumetric data set (``depth`` in ``data_options``) gives the short-axis slices of its volumes (what a 2-D
    ruler measures), or with ``volumes=True`` the volumes themselves."""
    from cardiobench.data import open_dataset

    source = open_dataset(dataset, size=size, **(data_options or {}))
    sets = {split: source.load(split) for split in ("train", "val", "test")}
    return sets if volumes else {split: s.slices() for split, s in sets.items()}


def get_evaluator(
    dataset: str,
    data_options: dict[str, Any] | None = None,
    *,
    config: EvaluatorConfig | None = None,
    use_shipped: bool = True,
    train: bool = True,
    progress: Progress | None = None,
    log: Reporter = None,
) -> Evaluator:
    """The evaluator of ``dataset``: the shipped one (phantom), else the cached one, else trained now and cached.

    ``config=None``: ``default_config(dataset)``, the objective the data set was registered with.

    The training data is the data set's training split at the evaluator's native size. A shipped evaluator
    whose training-data fingerprint differs (the generator changed) is still used, as the published ruler,
    with an ``EvaluatorWarning`` saying how to regenerate it. ``train=False``: an error instead of training.
    ``progress`` (or the older ``log(message)`` callable) shows a training (default: silent).
    """
    reporter = as_progress(progress, log)
    cfg = config or default_config(dataset)
    splits = load_splits(dataset, cfg.size, data_options)
    fingerprint = data_fingerprint(splits["train"].masks, splits["train"].groups)
    shipped = EVALUATORS.shipped(dataset) if use_shipped and config is None and not data_options else None
    if shipped is not None:
        ev = load_evaluator_file(shipped)
        if validity_stale(ev):  # a shipped file older than the validity record: measured now, in memory
            add_validity(ev, splits)
        if ev.meta.get("train_fingerprint") != fingerprint:
            warn(
                f"the shipped {dataset} evaluator {ev.id} was trained on different {dataset} data "
                f"(the generator changed); its numbers stay comparable with other results of evaluator "
                f"{ev.id}. Regenerate it with: {REGENERATE.format(dataset=dataset)}",
                EvaluatorWarning,
            )
        return ev
    path = cache_path(dataset, fingerprint, cfg)
    if path.is_file():
        try:
            ev = load_evaluator_file(path)
        except CardiobenchError:
            path.unlink(missing_ok=True)  # a corrupt cache entry: train again
        else:
            if validity_stale(ev):  # cached before the validity record existed: measure it once, keep it
                add_validity(ev, splits)
                ev.save(path)
            return ev
    if not train:
        raise CardiobenchError(
            f"no evaluator for {dataset} yet", f"train one: cardiobench evaluator train --dataset {dataset}"
        )
    if reporter.enabled:
        reporter.log(f"training the {dataset} evaluator ({cfg.objective} objective, {len(splits['train'])} masks, "
                     f"{cfg.epochs} epochs, CPU) ...")
    ev = build_evaluator(dataset, splits, cfg, log=reporter)
    if validity_stale(ev):
        add_validity(ev, splits)
    ev.save(path)
    return ev


def build_evaluator(
    dataset: str, splits: dict[str, Any], config: EvaluatorConfig | None = None, *,
    progress: Progress | None = None, log: Reporter = None,
) -> Evaluator:
    """Train on ``splits["train"]`` (native size), score every split into ``meta`` and, when there is a test
    split, measure the validity record (``meta["validity"]``). ``progress`` (or ``log``): see ``train_evaluator``."""
    reporter = as_progress(progress, log)
    train = splits["train"]
    ev = train_evaluator(
        train.masks,
        train.groups,
        config,
        eval_sets={name: (s.masks, s.groups) for name, s in splits.items()},
        progress=reporter,
    )
    ev.meta["dataset"] = dataset
    if "test" in splits:
        add_validity(ev, splits, progress=reporter)
    return ev


def validity_stale(ev: Evaluator) -> bool:
    """Whether ``ev`` has no validity record, or one of an older definition (measured again on load)."""
    from cardiobench.metrics.validity import VERSION

    return not ev.validity or ev.validity.get("version") != VERSION


def add_validity(ev: Evaluator, splits: dict[str, Any], *, progress: Progress | None = None,
                 log: Reporter = None) -> dict[str, Any]:
    """Measure ``ev``'s validity record on ``splits`` ("train" and "test" SliceSets) into ``ev.meta``."""
    from cardiobench.metrics.validity import evaluator_validity, ruler_line, ruler_validity

    train, test = splits["train"], splits["test"]
    record = evaluator_validity(ev, test.masks, test.groups, train.masks, train.groups)
    ev.meta["validity"] = record
    reporter = as_progress(progress, log)
    if reporter.enabled:
        reporter.log(f"validity ({record.get('seconds')} s): {ruler_line(ev.id, ruler_validity(record))}")
    return record


def evaluator_report(ev: Evaluator) -> dict[str, Any]:
    """JSON-able description: id, digest, configuration, accuracy per split, where it came from."""
    return {
        "evaluator_id": ev.id,
        "sha256": ev.digest,
        "dataset": ev.meta.get("dataset"),
        "path": str(ev.path) if ev.path else None,
        "config": asdict(ev.config),
        "accuracy": ev.meta.get("accuracy", {}),
        "confusion": ev.meta.get("confusion", {}),
        "groups": ev.meta.get("groups", list(GROUPS)),
        "n_train": ev.meta.get("n_train"),
        "train_seconds": ev.meta.get("train_seconds"),
        "train_fingerprint": ev.meta.get("train_fingerprint"),
        "torch": ev.meta.get("torch"),
        "command": ev.meta.get("command"),
        "validity": ev.validity,
    }
