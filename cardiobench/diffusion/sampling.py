"""The one step executor shared by every sampler of the ``linear-gaussian`` family.

A sampler only says which timesteps it visits and, per step t -> s, the four numbers of its update in the
basis (``posterior.ddpm_coefficients`` / ``posterior.ddim_coefficients``)::

    u_s = on_x0 ⊙ u0_hat + on_xt ⊙ u_t + on_eps ⊙ eps_hat + noise_std ⊙ z

with ``u0_hat`` and ``eps_hat`` linear in ``u_t`` and the model output ``m`` (``posterior.prediction_coefficients``).
``set_timesteps`` folds all of this into six coefficients per step, once::

    u0_hat = x0_xt u_t + x0_m m            (then clipped to [-1, 1] in pixel space if clip_x0)
    u_s    = on_x0 u0_hat + (on_xt + on_eps eps_xt) u_t + (on_eps eps_m) m + noise_std z

or, when the noise estimate is re-derived from the clipped ``u0_hat`` (``eps_from_clipped_x0``, DDIM's
``use_clipped_model_output``: ``eps_hat = (u_t - alpha_t u0_hat) / sigma_t``)::

    u_s    = (on_x0 - on_eps alpha_t / sigma_t) u0_hat + (on_xt + on_eps / sigma_t) u_t + noise_std z

For a process with ``identity_basis`` (Gaussian DDPM) the coefficients are Python floats and a step is a
handful of in-place tensor passes into preallocated buffers: no tensor is built per step, no host-device
synchronisation, no allocation. Other processes (blurring) go through ``to_basis``/``from_basis`` with
per-coefficient tensors moved to the device once (per device and dtype).

The pieces, in the notation of docs/diffusion.md ("Clipping, folding and what a step costs"): ``_plan`` (the
steps' coefficients for one device and dtype, ``_PlannedStep``), ``_scalar_recipe`` (``_ScalarRecipe``: the
in-place passes of one float-coefficient step), ``_step_scalar`` (runs them), ``_LazyStep`` (a yielded step whose
``x0_pred`` is computed only if read) and ``_step_basis`` (the general step).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import NamedTuple

import torch

from cardiobench.diffusion import posterior, schedules
from cardiobench.diffusion.base import ModelFn, NoiseProcess, Sampler, SampleStep
from cardiobench.errors import CardiobenchError, IncompatibleError

#: names of the six folded coefficients of a step, in plan order
COEFFICIENTS = ("x0_xt", "x0_m", "on_x0", "on_xt", "on_m", "noise_std")

Coef = float | torch.Tensor


def _draw_normal(buf: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``buf`` with N(0, 1) draws; identical to ``torch.randn(buf.shape, generator=generator)``."""
    if generator is None or generator.device == buf.device:
        return buf.normal_(generator=generator)
    return buf.copy_(torch.randn(buf.shape, generator=generator, device=generator.device, dtype=buf.dtype))


class _ScalarRecipe(NamedTuple):
    """One step ``t -> s`` with Python-float coefficients (``identity_basis``, so ``u = x``), as in-place passes.

    With ``clip_x0`` the clipped data estimate is carried divided by ``scale`` (``x0_xt``, or ``x0_m`` for x0
    prediction where ``x0_xt = 0``): ``y`` costs an ``add`` and a ``clamp_`` and ``scale`` folds into its weight::

        y   = clamp(u_t + y_m m, lo, hi),   y_m = x0_m / x0_xt,   [lo, hi] = [-1, 1] / scale
            = clip(u0_hat) / scale          (x0 prediction: y = clamp(m, lo, hi))
        u_s = (on_x0 scale) y + on_xt u_t + on_m m + noise_std z

    Without clipping ``u0_hat = x0_xt u_t + x0_m m`` folds into the other terms (no ``y``)::

        u_s = (on_x0 x0_xt + on_xt) u_t + (on_x0 x0_m + on_m) m + noise_std z

    Either sum ``u_s = sum_k c_k src_k`` (zero terms dropped) is evaluated as
    ``lead (src_0 + sum_{k>=1} (c_k / lead) src_k)`` with the largest ``|c_k|`` as ``lead``: one
    ``torch.add(..., out=)``, one ``add_`` per further term and one ``mul_`` (none if ``lead == 1``).
    """

    y_m: float | None  #: weight of ``m`` in ``y``; None without clipping (no ``y``); 0 for x0 prediction
    lo: float | None  #: clamp bounds of ``y``
    hi: float | None
    terms: tuple[tuple[str, float], ...]  #: ``(src_k, c_k / lead)``, largest ``|c_k|`` first; src in y, u_t, m, z
    lead: float
    #: how ``u0_hat`` is read back from the buffers: ``("y", scale)`` -> ``scale y``;
    #: ``("u_t, m", x0_xt, x0_m)`` -> ``x0_xt u_t + x0_m m``
    x0_hat: tuple


def _scalar_recipe(coefs: list[float], clip: bool) -> _ScalarRecipe:
    """Fold one step's six float coefficients (``COEFFICIENTS`` order) into a ``_ScalarRecipe``."""
    x0_xt, x0_m, on_x0, on_xt, on_m, noise_std = coefs
    if clip:
        scale = x0_xt if x0_xt != 0.0 else x0_m  # y = clip(u0_hat) / scale
        y_m = x0_m / x0_xt if x0_xt != 0.0 else 0.0
        lo, hi = sorted((-1.0 / scale, 1.0 / scale))
        terms = [("y", on_x0 * scale), ("u_t", on_xt), ("m", on_m)]
        x0_hat: tuple = ("y", scale)
    else:
        y_m, lo, hi = None, None, None
        terms = [("u_t", on_x0 * x0_xt + on_xt), ("m", on_x0 * x0_m + on_m)]
        x0_hat = ("u_t, m", x0_xt, x0_m)
    terms.append(("z", noise_std))
    terms = sorted((term for term in terms if term[1] != 0.0), key=lambda term: -abs(term[1]))
    if not terms:  # u_s = 0
        terms = [("u_t", 0.0)]
    lead = terms[0][1]
    ratios = ((terms[0][0], 1.0), *((src, c / lead) for src, c in terms[1:]))
    return _ScalarRecipe(y_m, lo, hi, ratios, lead, x0_hat)


class _PlannedStep(NamedTuple):
    """One step of a plan (``LinearGaussianSampler._plan``), for one device and dtype."""

    #: ``(x0_xt, x0_m, on_x0, on_xt, on_m, noise_std)``: Python floats, or tensors on the device (per basis
    #: coefficient, e.g. (1, H, W) or (1, D, H, W))
    coefficients: tuple[Coef, ...]
    #: per coefficient: is it zero (everywhere)? (``is_zero[5]``: the step draws no noise)
    is_zero: tuple[bool, ...]
    #: the in-place passes of a step with float coefficients; None if any coefficient is a tensor
    recipe: _ScalarRecipe | None


class _LazyStep(SampleStep):
    """The ``SampleStep`` of a fast-path step: ``x0_pred`` (the clipped ``u0_hat``) is computed when first read.

    Plain sampling never reads it, and it would cost one tensor pass per step. ``x0_fn(*x0_args)`` computes it
    from the step's buffers, so, like every yielded tensor, it is valid until the next step.
    """

    def __init__(self, index: int, timestep: int, x_t: torch.Tensor, x0_fn=None, x0_args: tuple = ()):
        self.index = index
        self.timestep = timestep
        self.x_t = x_t
        self._x0_fn, self._x0_args, self._x0 = x0_fn, x0_args, None

    @property
    def x0_pred(self) -> torch.Tensor:  # type: ignore[override]
        if self._x0 is None:
            self._x0 = self._x0_fn(*self._x0_args)
        return self._x0

    @x0_pred.setter
    def x0_pred(self, value: torch.Tensor) -> None:
        self._x0 = value


class LinearGaussianSampler(Sampler):
    """Base class of DDPM and DDIM: timestep choice + per-step coefficients; the step loop is shared."""

    families = ("linear-gaussian",)
    default_steps: int | None = None
    #: with ``clip_x0``, use the noise estimate implied by the *clipped* data estimate in the update (DDIM's
    #: ``use_clipped_model_output``); it matters only for samplers whose update has an ``eps_hat`` term
    eps_from_clipped_x0: bool = False

    def __init__(self, process: NoiseProcess, *, num_inference_steps: int | None = None,
                 timestep_spacing: str = "leading", clip_x0: bool = True):
        family = getattr(process, "family", None)
        if family not in self.families:
            raise IncompatibleError(
                f"{type(self).__name__} does not support noise processes of family {family!r}",
                f"it supports: {', '.join(self.families)}",
            )
        self.process = process
        self.timestep_spacing = schedules.check_choice(timestep_spacing, schedules.TIMESTEP_SPACINGS,
                                                       "timestep_spacing")
        self.clip_x0 = bool(clip_x0)
        self._plans: dict[tuple[str, torch.dtype], list[tuple]] = {}
        self.set_timesteps(num_inference_steps)

    # -- what a concrete sampler provides -------------------------------------------------------------------
    @abstractmethod
    def step_coefficients(self, alpha_t: Coef, sigma_t: Coef, alpha_s: Coef, sigma_s: Coef
                          ) -> tuple[Coef, Coef, Coef, Coef]:
        """``(on_x0, on_xt, on_eps, noise_std)`` of the steps t -> s (see ``posterior``).

        Called once by ``set_timesteps`` with float64 tensors holding every step along the first axis
        (shapes ``(N, 1, 1, 1)`` or ``(N, 1, *spatial)``): the formulas must be elementwise.
        """

    def previous_timesteps(self, timesteps: list[int]) -> list[int]:
        """Where each step lands: the next listed timestep, ``-1`` (the data) after the last."""
        return timesteps[1:] + [-1]

    # -- timesteps and coefficients, computed once ------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        n = num_inference_steps
        if n is None:  # the sampler's default (capped at T), or every timestep
            n = min(self.default_steps or self.process.num_timesteps, self.process.num_timesteps)
        ts = schedules.inference_timesteps(self.process.num_timesteps, int(n), self.timestep_spacing)
        prevs = self.previous_timesteps(ts)
        self.num_inference_steps = len(ts)
        self.timesteps = torch.tensor(ts, dtype=torch.long)
        self.prev_timesteps = torch.tensor(prevs, dtype=torch.long)
        self._ts = ts
        # every step's coefficients at once: alpha/sigma of all (t, s) pairs in one batch, elementwise formulas
        proc = self.process
        t_all, s_all = torch.tensor(ts, dtype=torch.long), torch.tensor(prevs, dtype=torch.long)
        a_t, s_t = proc.alpha(t_all, dtype=torch.float64), proc.sigma(t_all, dtype=torch.float64)
        a_s, s_s = proc.alpha(s_all, dtype=torch.float64), proc.sigma(s_all, dtype=torch.float64)
        x0_xt, x0_m, eps_xt, eps_m = posterior.prediction_coefficients(a_t, s_t, proc.prediction_type)
        on_x0, on_xt, on_eps, noise_std = self.step_coefficients(a_t, s_t, a_s, s_s)
        if self.clip_x0 and self.eps_from_clipped_x0:
            # eps_hat re-derived from the clipped data estimate: eps_hat = (u_t - alpha_t ⊙ u0_hat) / sigma_t
            on_x0, on_xt_all, on_m = on_x0 - on_eps * a_t / s_t, on_xt + on_eps / s_t, 0.0 * on_eps
        else:
            on_xt_all, on_m = on_xt + on_eps * eps_xt, on_eps * eps_m
        table = [torch.as_tensor(c, dtype=torch.float64) for c in (x0_xt, x0_m, on_x0, on_xt_all, on_m, noise_std)]
        n_steps = len(ts)
        table = [c.expand(n_steps, *c.shape[1:]) if c.dim() and c.shape[0] == 1 else c for c in table]
        for c in table:
            if not bool(torch.isfinite(c).all()):
                bad = int((~torch.isfinite(c)).reshape(n_steps, -1).any(1).nonzero()[0, 0])
                raise CardiobenchError(
                    f"{type(self).__name__}: non-finite step coefficients at timestep {ts[bad]} -> {prevs[bad]}")
        # per step: (1, ...) values that are constant over the basis become 0-d (-> Python floats)
        self._table64 = [c.reshape(n_steps) if c.dim() and c[0].numel() == 1 else c for c in table]
        self._plans = {}

    @property
    def coefficients(self) -> list[tuple[torch.Tensor, ...]]:
        """Per step, the six float64 CPU coefficients in ``COEFFICIENTS`` order (0-d or per basis coefficient)."""
        return [tuple(c[i] for c in self._table64) for i in range(self.num_inference_steps)]

    def _plan(self, device: torch.device, dtype: torch.dtype) -> list[_PlannedStep]:
        """Every step's coefficients ready for ``device`` and ``dtype``, built once per pair.

        A coefficient that is one number per step becomes a Python float (no tensor, no host-device
        synchronisation in the step); one that varies over the basis, (N, 1, *spatial) in ``_table64``, moves to the
        device in one transfer per table and each step holds a (1, *spatial) view of it. Steps whose six coefficients
        are all floats get their ``_ScalarRecipe``.
        """
        key = (str(device), dtype)
        plan = self._plans.get(key)
        if plan is None:
            columns: list[list[Coef]] = []  # per coefficient (COEFFICIENTS order), its value at every step
            zero_columns: list[list[bool]] = []
            for table in self._table64:
                if table.dim() == 1:  # (N,): one number per step
                    columns.append(table.tolist())
                    zero_columns.append((table == 0).tolist())
                else:  # (N, 1, *spatial): one number per step and basis coefficient
                    columns.append(list(table.to(device=device, dtype=dtype).unbind(0)))
                    zero_columns.append((table == 0).reshape(len(table), -1).all(1).tolist())
            plan = []
            for i in range(self.num_inference_steps):
                coefficients = tuple(column[i] for column in columns)
                is_zero = tuple(column[i] for column in zero_columns)
                scalar = all(isinstance(c, float) for c in coefficients)
                recipe = _scalar_recipe(list(coefficients), self.clip_x0) if scalar else None
                plan.append(_PlannedStep(coefficients, is_zero, recipe))
            self._plans[key] = plan
        return plan

    def _scalar_plan(self, plan: list[_PlannedStep]) -> bool:
        """Whether every step takes the fast path: identity basis and float coefficients throughout."""
        return self.process.identity_basis and all(step.recipe is not None for step in plan)

    @staticmethod
    def _step_scalar(recipe: _ScalarRecipe, u_t: torch.Tensor, m: torch.Tensor, y: torch.Tensor, u_s: torch.Tensor,
                     z: torch.Tensor | None) -> None:
        """The fast-path step (``_ScalarRecipe``): 2 to 5 in-place passes, no allocation.

        Reads ``u_t`` (the state), ``m`` (the model output) and ``z`` (the step's noise, None without), all
        (B, C, *spatial); writes ``y`` (the clipped data estimate / scale, with clipping) and ``u_s`` (the new
        state), preallocated (B, C, *spatial) buffers distinct from the inputs.
        """
        y_m, lo, hi, terms, lead, _ = recipe
        if y_m is not None:  # y = clamp(u_t + y_m m, lo, hi) = clip(u0_hat) / scale
            if y_m == 0.0:  # x0 prediction: y = clamp(m, lo, hi)
                torch.clamp(m, lo, hi, out=y)
            else:
                torch.add(u_t, m, alpha=y_m, out=y)
                y.clamp_(lo, hi)
        src = {"u_t": u_t, "m": m, "y": y, "z": z}
        (src_0, _), rest = terms[0], terms[1:]
        if not rest:  # u_s = lead src_0
            torch.mul(src[src_0], lead, out=u_s)
            return
        (src_1, ratio_1), rest = rest[0], rest[1:]
        torch.add(src[src_0], src[src_1], alpha=ratio_1, out=u_s)  # u_s = src_0 + (c_1 / lead) src_1
        for src_k, ratio_k in rest:  # ... + (c_k / lead) src_k
            u_s.add_(src[src_k], alpha=ratio_k)
        if lead != 1.0:  # u_s = lead (...)
            u_s.mul_(lead)

    @staticmethod
    def _x0_scalar(recipe: _ScalarRecipe, u_t: torch.Tensor, m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``u0_hat`` (clipped with ``clip_x0``) of a fast-path step, from its buffers: ``scale y``, or
        ``x0_xt u_t + x0_m m`` without clipping. A new (B, C, *spatial) tensor; valid until the buffers are reused."""
        x0_hat = recipe.x0_hat
        with torch.no_grad():
            if x0_hat[0] == "y":
                return y * x0_hat[1]  # scale y
            _, x0_xt, x0_m = x0_hat
            return torch.add(u_t * x0_xt, m, alpha=x0_m)  # x0_xt u_t + x0_m m

    def _data_estimate(self, coefs: tuple, zeros: tuple, x: torch.Tensor, m: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(u_t, V m, u0_hat, x0_hat)`` of one step in the process's basis (``x``, ``m``: pixel space).

        u0_hat = x0_xt u_t + x0_m V m (zero terms skipped); a clipping sampler clips in pixel space:
        x0_hat = clamp(V^T u0_hat, -1, 1), u0_hat = V x0_hat.
        """
        proc = self.process
        x0_xt, x0_m = coefs[0], coefs[1]
        u = proc.to_basis(x)  # u_t = V x_t
        mu = proc.to_basis(m)
        u0 = x0_m * mu if zeros[0] else (x0_xt * u if zeros[1] else x0_xt * u + x0_m * mu)
        if self.clip_x0:
            x0 = proc.from_basis(u0).clamp_(-1.0, 1.0)
            u0 = proc.to_basis(x0)
        else:
            x0 = proc.from_basis(u0)
        return u, mu, u0, x0

    def _step_basis(self, coefs: tuple, zeros: tuple, x: torch.Tensor, m: torch.Tensor,
                    z: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The general step, per coefficient in the process's basis (``zeros``: ``_PlannedStep.is_zero``).

        ``x`` (the state x_t), ``m`` (the model output): pixel space, (B, C, *spatial); ``z``: the step's noise in
        the basis, or None. Returns ``(x0_hat, x_s)`` in pixel space.
        """
        proc = self.process
        _, _, on_x0, on_xt, on_m, noise_std = coefs
        u, mu, u0, x0 = self._data_estimate(coefs, zeros, x, m)
        # u_s = on_x0 u0_hat + on_xt u_t + on_m m + noise_std z
        us = on_x0 * u0
        if not zeros[3]:
            us = us + on_xt * u
        if not zeros[4]:
            us = us + on_m * mu
        if z is not None:
            us = us + noise_std * z
        return x0, proc.from_basis(us)

    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> SampleStep:
        plan = self._plan(x_t.device, x_t.dtype)
        coefs, zeros, recipe = plan[index]
        z = None
        if not zeros[5]:  # noise_std != 0
            z = noise if noise is not None else _draw_normal(torch.empty_like(x_t), generator)
        with torch.no_grad():
            if self._scalar_plan(plan):
                y = torch.empty_like(x_t)
                out = torch.empty_like(x_t)
                self._step_scalar(recipe, x_t, model_output, y, out, z)
                x0 = self._x0_scalar(recipe, x_t, model_output, y)
            else:
                x0, out = self._step_basis(coefs, zeros, x_t, model_output, z)
        return SampleStep(index=index, timestep=self._ts[index], x_t=out, x0_pred=x0)

    def _start(self, shape: tuple[int, ...], n: int, device: torch.device, dtype: torch.dtype,
               generator: torch.Generator | None, x_T: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The state buffer holding x_T (given, else N(0, I) from ``generator``), (B, C, *spatial), and the (N, B) long
        timesteps the network sees, moved to the device once (row i: step i's input)."""
        with torch.no_grad():
            x = torch.empty(shape, device=device, dtype=dtype)
            if x_T is not None:
                x.copy_(x_T)
            else:
                _draw_normal(x, generator)
            t_in = self.timesteps.to(device)[:, None].expand(n, shape[0]).contiguous()
        return x, t_in

    def iter_sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        device = torch.device(device)
        plan = self._plan(device, dtype)
        scalar = self._scalar_plan(plan)
        shape = tuple(shape)
        n = len(plan)
        x, t_in = self._start(shape, n, device, dtype, generator, x_T)
        with torch.no_grad():
            # the other buffers, each (B, C, *spatial): the next state (u_s), y / x0_hat, the noise z
            spare = torch.empty_like(x)
            x0 = torch.empty_like(x)
            z = torch.empty_like(x) if not all(step.is_zero[5] for step in plan) else None
        ts = self._ts
        ctx = torch.inference_mode if self.inference_mode else torch.no_grad
        for i in range(n):
            coefs, zeros, recipe = plan[i]
            with ctx():
                m = model_fn(x, t_in[i])
                zi = None if zeros[5] else _draw_normal(z, generator)
                if scalar:  # u_s -> spare, y -> x0; then the new state is x and u_t is spare
                    self._step_scalar(recipe, x, m, x0, spare, zi)
                    x, spare = spare, x
                    yield _LazyStep(i, ts[i], x, self._x0_scalar, (recipe, spare, m, x0))
                    continue
                # results copied into the preallocated (ordinary, non-inference) buffers, as on the fast path
                x0_new, x_new = self._step_basis(coefs, zeros, x, m, zi)
                x0.copy_(x0_new)
                spare.copy_(x_new)
                x, spare = spare, x
            yield SampleStep(i, ts[i], x, x0)

    def config(self) -> dict:
        return {
            "num_inference_steps": self.num_inference_steps,
            "timestep_spacing": self.timestep_spacing,
            "clip_x0": self.clip_x0,
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({self.process!r}, {opts})"
