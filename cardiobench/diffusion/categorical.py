"""Categorical diffusion on label maps: D3PM (Austin, Johnson, Ho, Tarlow & van den Berg, NeurIPS 2021).

The ``categorical`` family. A label map is a field of categorical variables; the forward process is a Markov
chain of transition matrices, written as in the paper with row vectors ``x`` (one-hot) and the paper's
timesteps ``1..T`` (ours are ``0..T-1``: our ``t`` is the paper's ``t + 1``; our ``-1`` is the data)::

    q(x_t | x_{t-1}) = Cat(x_t; p = x_{t-1} Q_t)
    q(x_t | x_0)     = Cat(x_t; p = x_0 Qbar_t),                 Qbar_t = Q_1 Q_2 ... Q_t
    q(x_{t-1} | x_t, x_0) = Cat(x_{t-1}; p ∝ (x_t Q_t^T) ⊙ (x_0 Qbar_{t-1}))

Both transitions are ``Q_t = (1 - beta_t) I + beta_t 1 v^T`` for a fixed "noise" distribution ``v``:

- ``uniform``: ``v = 1/K`` over the K classes (Hoogeboom et al.'s multinomial diffusion);
- ``absorbing``: ``v = e_m``, an extra [MASK] state ``m = K`` that never leaves (BERT-like masking).

Matrices of this form are closed under products, so every multi-step transition is closed form:
``Q_{s->t} = Q_{s+1} ... Q_t = a I + (1 - a) 1 v^T`` with ``a = abar_t / abar_s``, ``abar_t = prod (1 - beta)``
(``Qbar_t`` is ``Q_{0->t}``). The strided posterior of the sampler is Bayes with it:
``q(x_s | x_t, x_0) ∝ q(x_t | x_s) q(x_s | x_0)``, ``q(x_t | x_s) = x_s Q_{s->t} [x_t]``.

**The representation.** States travel as the ``onehot`` representation: K channels in [-1, 1]. The [MASK] state
of the absorbing process is the all(-1) vector (no class active), so the network has K input and K output
channels whatever the transition. A masked pixel would decode to an arbitrary class, but no sample keeps one:
the last reverse step goes to the data (``q(x_{-1} | x_t, x_0) = x_0``), which unmasks every pixel.

**The network** sees ``x_t`` and the timestep and outputs logits of ``x_0`` over the K classes
(x0-parameterisation, ``p~(x_0 | x_t) = softmax``). The reverse step marginalises the posterior over that
prediction::

    p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p~(x_0 | x_t)

which is exact when ``p~`` is the true ``p(x_0 | x_t)``. (D3PM's reference code normalises the joint
``sum_{x_0} q(x_s, x_t | x_0) p~(x_0 | x_t)`` instead; the two agree for a certain prediction and differ by the
weight ``q(x_t | x_0)`` otherwise. The form above is the one the cross-entropy term trains ``p~`` for.)

**Loss** (the paper's hybrid loss, eq. 5 with the L_T constant left out)::

    L = L_vb + lambda * E[-log p~(x_0 | x_t)]
    L_vb = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))  for t > 1;   -log p(x_0 | x_1)  for t = 1

with ``t ~ U{1..T}``, averaged over pixels and the batch. ``hybrid_lambda`` defaults to 0.001, D3PM's value:
the auxiliary cross-entropy gives a direct, low-variance signal on ``x_0`` early in training, small enough that
the bound still decides the optimum.

**Schedules.** ``cosine``: ``abar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + 0.008) / 1.008 * pi/2)`` (Nichol &
Dhariwal's cumulative schedule, which D3PM uses for uniform transitions). ``mutual-information``: D3PM's schedule
for absorbing transitions, ``beta_t = 1 / (T - t + 1)``, so ``abar_t = 1 - t/T`` and the mutual information
between ``x_t`` and ``x_0`` falls linearly to 0. D3PM's mutual-information schedule for uniform transitions needs
a numerical solve per data set; it is not implemented: uniform transitions use ``cosine``. Both schedules end at
``abar_T = 0``, so the prior is exact: uniform over the K classes, or every pixel [MASK].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch

from cardiobench.diffusion.base import Sampler, SampleStep
from cardiobench.errors import CardiobenchError, IncompatibleError

FAMILY = "categorical"
TRANSITIONS = ("uniform", "absorbing")
SCHEDULES = ("cosine", "mutual-information")
#: default schedule of each transition (D3PM's choices)
DEFAULT_SCHEDULE = {"uniform": "cosine", "absorbing": "mutual-information"}
LOSSES = ("hybrid", "vb", "ce")
#: settings of the linear-Gaussian family's regression loss (``train.loss``): they do not apply, read as hybrid
_REGRESSION_LOSSES = ("mse", "smooth_l1")
_TINY = 1e-30

__all__ = ["FAMILY", "D3PMProcess", "D3PMSampler"]


def _view(v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ...) broadcasting against ``ref`` (B, S, *spatial)."""
    return v.to(ref).view(-1, *([1] * (ref.dim() - 1)))


class D3PMProcess:
    """D3PM (Austin et al. 2021): categorical diffusion with uniform or absorbing ([MASK]) transitions.

    Options: ``num_timesteps`` (T, default 1000), ``num_classes`` (K, default 4), ``transition`` (``uniform`` or
    ``absorbing``), ``schedule`` (``cosine`` or ``mutual-information``; default: cosine for uniform,
    mutual-information for absorbing), ``hybrid_lambda`` (weight of the auxiliary cross-entropy, default 0.001).
    Formulas: docs/diffusion.md, "D3PM".
    """

    family: ClassVar[str] = FAMILY

    def __init__(self, num_timesteps: int = 1000, num_classes: int = 4, transition: str = "uniform",
                 schedule: str | None = None, hybrid_lambda: float = 0.001) -> None:
        if transition not in TRANSITIONS:
            raise CardiobenchError(f"unknown D3PM transition {transition!r}", f"use one of: {', '.join(TRANSITIONS)}")
        schedule = DEFAULT_SCHEDULE[transition] if schedule is None else schedule
        if schedule not in SCHEDULES:
            raise CardiobenchError(f"unknown D3PM schedule {schedule!r}", f"use one of: {', '.join(SCHEDULES)}")
        if schedule == "mutual-information" and transition == "uniform":
            raise CardiobenchError("the mutual-information schedule is implemented for absorbing transitions only",
                                   "use schedule cosine with uniform transitions (D3PM's choice)")
        if int(num_timesteps) < 1 or int(num_classes) < 2:
            raise CardiobenchError(f"D3PM needs num_timesteps >= 1 and num_classes >= 2, got {num_timesteps}, "
                                   f"{num_classes}")
        if float(hybrid_lambda) < 0:
            raise CardiobenchError(f"hybrid_lambda must be >= 0, got {hybrid_lambda}")
        self.num_timesteps, self.num_classes = int(num_timesteps), int(num_classes)
        self.transition, self.schedule, self.hybrid_lambda = transition, schedule, float(hybrid_lambda)
        #: number of states: K, or K + 1 with the [MASK] state K
        self.num_states = self.num_classes + (transition == "absorbing")
        v = torch.full((self.num_states,), 1.0 / self.num_classes, dtype=torch.float64)
        if transition == "absorbing":
            v = torch.zeros(self.num_states, dtype=torch.float64)
            v[-1] = 1.0
        self.noise_dist = v  # the stationary distribution v (uniform, or the [MASK] state)
        T = self.num_timesteps
        steps = torch.arange(T + 1, dtype=torch.float64)  # paper's t = 0..T
        if schedule == "cosine":
            f = torch.cos((steps / T + 0.008) / 1.008 * math.pi / 2) ** 2
            abar = f / f[0]
        else:  # beta_t = 1 / (T - t + 1)  =>  abar_t = prod_{i <= t} (T - i) / (T - i + 1) = 1 - t / T
            abar = 1.0 - steps / T
        abar[-1] = 0.0  # the prior is exact
        self._abar = abar.clamp(0.0, 1.0)  # index: our timestep + 1 (index 0: the data, abar = 1)

    def config(self) -> dict[str, Any]:
        return {"num_timesteps": self.num_timesteps, "num_classes": self.num_classes, "transition": self.transition,
                "schedule": self.schedule, "hybrid_lambda": self.hybrid_lambda}

    # -- the schedule and the matrices (float64) -------------------------------------------------------------
    def abar(self, t: torch.Tensor | int) -> torch.Tensor:
        """abar_t (probability that x_t is still x_0) for our integer timesteps (``-1``: 1), float64."""
        return self._abar[(torch.as_tensor(t).long() + 1).cpu()]

    def beta(self, t: int) -> float:
        """beta of our timestep ``t`` (the paper's beta_{t+1}): ``1 - abar_t / abar_{t-1}``."""
        return float(1.0 - self.abar(t) / self.abar(t - 1))

    def transition_matrix(self, s: int, t: int) -> torch.Tensor:
        """``Q_{s->t}`` (S, S), float64, for ``-1 <= s <= t``: row i is q(x_t | x_s = i). ``s = t - 1``: ``Q_t``."""
        a = float(self.abar(t) / self.abar(s)) if float(self.abar(s)) > 0 else 0.0
        return a * torch.eye(self.num_states, dtype=torch.float64) + (1 - a) * self.noise_dist.expand(
            self.num_states, -1)

    # -- states: the onehot representation (K channels in [-1, 1]; [MASK] = all -1) <-> probabilities over S -----
    def to_states(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, ...) in [-1, 1] -> (B, S, ...) probabilities (the [MASK] state gets what the K classes leave)."""
        p = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
        if self.num_states == self.num_classes:
            return p
        return torch.cat([p, (1.0 - p.sum(1, keepdim=True)).clamp(min=0.0)], 1)

    def from_states(self, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """State indices (B, ...) -> (B, K, ...) one-hot in [-1, 1] (the [MASK] state: all -1), ``like``'s dtype."""
        onehot = torch.nn.functional.one_hot(idx.long(), self.num_states).movedim(-1, 1)[:, : self.num_classes]
        return onehot.to(like.dtype) * 2.0 - 1.0

    def draw(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """State indices (B, ...) drawn from ``probs`` (B, S, ...) by inverse CDF on one CPU uniform per pixel."""
        u = torch.rand((probs.shape[0], *probs.shape[2:]), generator=generator, dtype=torch.float64)
        cdf = probs.double().cumsum(1)
        # state j iff cdf_{j-1} <= u * total < cdf_j: a state of probability 0 is never drawn, even for u = 0
        idx = (cdf <= (u.to(probs.device) * cdf[:, -1]).unsqueeze(1)).sum(1)
        return idx.clamp(max=self.num_states - 1)

    # -- the forward process and its posteriors ------------------------------------------------------------------
    def marginal(self, p0: torch.Tensor, t: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """``q(x_t | x_s)`` probabilities: ``p0 Q_{s->t}`` for state probabilities ``p0`` (B, S, ...) at ``s``
        (default -1: ``q(x_t | x_0) = x_0 Qbar_t``)."""
        a = self.abar(t) / (self.abar(s) if s is not None else 1.0)
        a = _view(torch.nan_to_num(a, nan=0.0), p0)
        return a * p0 + (1 - a) * _view_v(self.noise_dist, p0)

    def _likelihood(self, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``q(x_t | x_s = j)`` as a function of j: ``a x_t + (1 - a) <v, x_t>``, (B, S, ...)."""
        a = _view(torch.nan_to_num(self.abar(t) / self.abar(s), nan=0.0), x_t)
        vx = (x_t * _view_v(self.noise_dist, x_t)).sum(1, keepdim=True)
        return a * x_t + (1 - a) * vx

    def posterior(self, x_t: torch.Tensor, p0: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``sum_{x_0} q(x_s | x_t, x_0) p0(x_0)`` (B, S, ...) for ``-1 <= s < t``.

        ``x_t``: state probabilities (one-hot) (B, S, ...); ``p0``: probabilities of x_0 over the K classes
        (B, K, ...) (one-hot: the exact posterior ``q(x_s | x_t, x_0)``). For class k,
        ``q(x_s = j | x_t, x_0 = k) = L_j (abar_s [j = k] + (1 - abar_s) v_j) / Z_k`` with ``L = q(x_t | x_s = .)``
        and ``Z_k = q(x_t | x_0 = k)``; classes with ``Z_k = 0`` (impossible given x_t) get no weight.
        """
        like = self._likelihood(x_t, t, s)
        ab = _view(self.abar(s), like)
        v = _view_v(self.noise_dist, like)
        k = self.num_classes
        z = ab * like[:, :k] + (1 - ab) * (like * v).sum(1, keepdim=True)  # (B, K, ...)  q(x_t | x_0 = k)
        w = torch.where(z > _TINY, p0 / z.clamp(min=_TINY), torch.zeros_like(z))
        if self.num_states > k:
            w_state = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
        else:
            w_state = w
        probs = like * (ab * w_state + (1 - ab) * v * w.sum(1, keepdim=True))
        total = probs.sum(1, keepdim=True)
        fallback = like / like.sum(1, keepdim=True).clamp(min=_TINY)  # a prediction only on impossible classes
        return torch.where(total > _TINY, probs / total.clamp(min=_TINY), fallback)

    # -- the seam: what the engine asks of every process -------------------------------------------------------
    def prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T on the CPU, float32 (B, K, *spatial): uniform over the K classes, or every pixel [MASK] (all -1).

        Draws one uniform per pixel from ``generator`` for both transitions (the absorbing prior is certain)."""
        probs = self.noise_dist.view(1, -1, *([1] * (len(shape) - 2))).expand(shape[0], -1, *shape[2:])
        return self.from_states(self.draw(probs, generator), torch.empty((), dtype=torch.float32))

    def model_output_from(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Logits of a network certain of ``x0`` (one-hot in [-1, 1], (B, K, ...)): ``50 * x0``."""
        return 50.0 * x0

    def training_loss(self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                      generator: torch.Generator, *, loss: str = "hybrid") -> torch.Tensor:
        """The hybrid loss of one batch of encoded data ``x0`` (B, K, *spatial), on ``x0``'s device.

        t ~ U{0..T-1} then x_t ~ q(x_t | x_0) (one uniform per pixel), drawn in this order from ``generator``.
        ``loss``: ``hybrid`` (L_vb + hybrid_lambda * CE), ``vb`` or ``ce``; the linear-Gaussian regression
        settings (``mse``, ``smooth_l1``, the ``train.loss`` key) do not apply to this family and mean ``hybrid``.
        """
        if loss in _REGRESSION_LOSSES:
            loss = "hybrid"
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r} for the {self.family} family (use {', '.join(LOSSES)})")
        b = x0.shape[0]
        t = torch.randint(0, self.num_timesteps, (b,), generator=generator)
        p0 = self.to_states(x0.float())
        idx_t = self.draw(self.marginal(p0, t), generator)
        x_t = self.from_states(idx_t, x0.float())
        t = t.to(x0.device)
        logits = model_fn(x_t, t).float()
        log_p0 = logits.log_softmax(1)
        p0k = p0[:, : self.num_classes]
        ce = -(log_p0 * p0k).sum(1)  # -log p~(x_0 | x_t)
        if loss == "ce":
            return ce.mean()
        st = self.to_states(x_t)
        true = self.posterior(st, p0k, t.cpu(), t.cpu() - 1)
        pred = self.posterior(st, log_p0.exp(), t.cpu(), t.cpu() - 1)
        logq = torch.where(true > 0, true.clamp(min=_TINY).log(), torch.zeros_like(true))
        kl = (true * (logq - pred.clamp(min=_TINY).log())).sum(1)
        nll = -(pred[:, : self.num_classes].clamp(min=_TINY).log() * p0k).sum(1)  # t = 0: -log p(x_0 | x_t)
        vb = torch.where(_view(t == 0, kl).bool(), nll, kl)
        if loss == "vb":
            return vb.mean()
        return vb.mean() + self.hybrid_lambda * ce.mean()


def _view_v(v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The state distribution ``v`` (S,) as (1, S, 1, ...) against ``ref`` (B, S, *spatial), ``ref``'s dtype."""
    return v.to(device=ref.device, dtype=ref.dtype).view(1, -1, *([1] * (ref.dim() - 2)))


class D3PMSampler(Sampler):
    """Strided ancestral sampling of D3PM: ``x_s ~ sum_{x_0} q(x_s | x_t, x_0) p~(x_0 | x_t)`` over N <= T steps.

    ``num_inference_steps`` (default T) timesteps, evenly spaced from T-1 down to 0; the last step goes to the data.
    Every draw comes from the CPU generator (one uniform per pixel per step, after the prior's).
    """

    families: ClassVar[tuple[str, ...]] = (FAMILY,)
    inference_mode: bool = True

    def __init__(self, process: D3PMProcess, num_inference_steps: int | None = None) -> None:
        family = getattr(process, "family", None)
        if family not in self.families:
            raise IncompatibleError(f"sampler d3pm does not support noise processes of family {family!r}",
                                    f"it supports: {', '.join(self.families)}")
        self.process = process
        self.set_timesteps(num_inference_steps)

    def config(self) -> dict[str, Any]:
        return {"num_inference_steps": len(self.timesteps)}

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        T = self.process.num_timesteps
        n = T if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= T:
            raise CardiobenchError(f"d3pm: number of steps must be in 1..{T}, got {n}")
        # n distinct integers from T-1 down to 0 (rounding a linspace never repeats one when n <= T)
        self.timesteps = torch.linspace(T - 1, 0, n, dtype=torch.float64).round().long()

    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> SampleStep:
        """One step from ``timesteps[index]`` to the next listed timestep (or -1, the data). ``noise`` is unused
        (the family has no Gaussian noise)."""
        ts = self.timesteps
        b = x_t.shape[0]
        t = ts[index].expand(b)
        s = (ts[index + 1] if index + 1 < len(ts) else torch.tensor(-1)).expand(b)
        p0_hat = model_output.float().softmax(1)
        probs = self.process.posterior(self.process.to_states(x_t.float()), p0_hat, t, s)
        x_s = self.process.from_states(self.process.draw(probs, generator), x_t)
        return SampleStep(index, int(ts[index]), x_s, (p0_hat * 2 - 1).to(x_t.dtype))

    def iter_sample(self, model_fn, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        x = (x_T if x_T is not None else self.process.prior(shape, generator)).to(device, dtype)
        ctx = torch.inference_mode if self.inference_mode else torch.no_grad
        for i, t in enumerate(self.timesteps.tolist()):
            with ctx():
                out = model_fn(x, torch.full((shape[0],), t, dtype=torch.long, device=device))
            with torch.no_grad():
                step = self.step(out, i, x, generator=generator)
            x = step.x_t
            yield step

