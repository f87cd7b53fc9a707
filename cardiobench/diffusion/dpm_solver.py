"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models", algorithm 2): multistep, second order, data prediction, per coefficient of the process's basis.

A deterministic solver of the probability-flow ODE with one network call per step. For step ``i`` from ``t`` to
``s`` (the next listed timestep; ``-1``, the data, after the last), per basis coefficient::

    lambda = log(alpha / sigma),   h_i = lambda_s - lambda_t,   r_i = h_{i-1} / h_i
    D_i = x0_i + (1 / (2 r_i)) (x0_i - x0_{i-1})
    u_s = (sigma_s / sigma_t) u_t + alpha_s (1 - e^{-h_i}) D_i

with ``x0_i`` the data estimate at ``t`` (in the basis, clipped to [-1, 1] in pixel space with ``clip_x0``). The
first step has no earlier estimate and the last one goes to the data (``sigma_s = 0``, ``h = inf``): both take the
first-order step ``D_i = x0_i``, which is DDIM (eta = 0) with the noise estimate re-derived from ``x0_i``. This is
diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint")``
with its default ``lower_order_final=True, final_sigmas_type="zero"``. For blurring diffusion ``alpha``, ``sigma``
and so ``h``, ``r`` and every coefficient are per DCT frequency. See docs/diffusion.md, section "DPM-Solver++(2M)".

As the update is linear in the two data estimates, ``set_timesteps`` folds each step into the shared executor's
coefficients (``on_x0 = alpha_s (1 - e^{-h}) (1 + w)``, ``on_xt = sigma_s / sigma_t``, no noise term) plus one
more, ``on_prev = -alpha_s (1 - e^{-h}) w`` on the previous step's data estimate, with ``w = 1 / (2 r)`` (0 on the
first and the last step).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from cardiobench.diffusion.base import ModelFn, NoiseProcess, SampleStep
from cardiobench.diffusion.sampling import Coef, LinearGaussianSampler
from cardiobench.errors import CardiobenchError


class DPMSolverSampler(LinearGaussianSampler):
    """DPM-Solver++(2M) (Lu et al. 2022): deterministic, second order, 20 steps by default.

    ``num_inference_steps=None`` means 20 (or T if the process has fewer timesteps). ``lower_order_final``: the last
    step, to the data, is first order (the only choice: its ``h`` is infinite, where the second-order correction
    diverges; ``False`` is refused with that reason).
    """

    default_steps = 20
    #: D_i = x0_i + correction / r_i (x0_i - x0_{i-1}); 1/2 is the midpoint rule of the paper
    correction = 0.5

    def __init__(self, process: NoiseProcess, num_inference_steps: int | None = None,
                 timestep_spacing: str = "leading", clip_x0: bool = True, lower_order_final: bool = True):
        if not lower_order_final:
            raise CardiobenchError(
                "dpm-solver++: lower_order_final=False is not possible here",
                "the last step goes to the data (sigma = 0, h = inf), where the second-order correction diverges; "
                "it is always first order (diffusers' final_sigmas_type='zero' does the same)")
        self.lower_order_final = True
        self._prev_u0: torch.Tensor | None = None  # the previous step's data estimate, in the basis
        self._prev_plans: dict[tuple[str, torch.dtype], list[Coef]] = {}
        super().__init__(process, num_inference_steps=num_inference_steps, timestep_spacing=timestep_spacing,
                         clip_x0=clip_x0)

    def step_coefficients(self, alpha_t, sigma_t, alpha_s, sigma_s):
        exp_neg_h = (alpha_t * sigma_s) / (sigma_t * alpha_s)  # e^{-h_i}; 0 on the last step (to the data)
        h = -torch.log(exp_neg_h)  # inf on the last step
        weight = torch.zeros(torch.broadcast_shapes(h.shape, alpha_t.shape), dtype=torch.float64)
        # w_i = correction / r_i = correction h_i / h_{i-1}, steps 1 .. N-2; 0 on the first and the last step
        weight[1:-1] = self.correction * h[1:-1] / h[:-2]
        on_d = alpha_s * (1.0 - exp_neg_h)
        on_prev = -on_d * weight
        if not bool(torch.isfinite(on_prev).all()):
            raise CardiobenchError(f"{type(self).__name__}: non-finite multistep coefficients")
        n = on_prev.shape[0]
        self._on_prev64 = on_prev.reshape(n) if on_prev[0].numel() == 1 else on_prev
        self._prev_plans = {}
        return on_d * (1.0 + weight), sigma_s / sigma_t, 0.0 * on_d, 0.0 * on_d

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        super().set_timesteps(num_inference_steps)
        self._prev_u0 = None

    def _prev_plan(self, device: torch.device, dtype: torch.dtype) -> list[Coef]:
        """Per step, ``on_prev``: a Python float, or a per-coefficient tensor on ``device`` (as ``_plan``)."""
        key = (str(device), dtype)
        plan = self._prev_plans.get(key)
        if plan is None:
            table = self._on_prev64
            plan = table.tolist() if table.dim() == 1 else list(table.to(device=device, dtype=dtype).unbind(0))
            self._prev_plans[key] = plan
        return plan

    def _dpm_step(self, index: int, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``index`` from state ``x`` with model output ``m`` (pixel space, (B, C, *spatial)); updates the history.

        Returns fresh ``(x0_hat, x_s)`` in pixel space.
        """
        proc = self.process
        coefs, zeros, _ = self._plan(x.device, x.dtype)[index]
        on_prev = self._prev_plan(x.device, x.dtype)[index]
        _, _, on_x0, on_xt, _, _ = coefs
        if index == 0:
            self._prev_u0 = None  # a new run: forget the last one
        u, _, u0, x0 = self._data_estimate(coefs, zeros, x, m)  # clipped in pixel space, as DDIM
        # u_s = on_x0 u0_i + on_prev u0_{i-1} + on_xt u_t
        us = on_x0 * u0
        if not zeros[3]:
            us = us + on_xt * u
        if self._prev_u0 is not None and not (isinstance(on_prev, float) and on_prev == 0.0):
            us = us + on_prev * self._prev_u0
        self._prev_u0 = u0
        return x0, proc.from_basis(us)

    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> SampleStep:
        with torch.no_grad():
            x0, out = self._dpm_step(index, x_t, model_output)
        return SampleStep(index=index, timestep=self._ts[index], x_t=out, x0_pred=x0)

    def iter_sample(self, model_fn: ModelFn, shape: tuple[int, ...], *,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32,
                    x_T: torch.Tensor | None = None) -> Iterator[SampleStep]:
        device = torch.device(device)
        shape = tuple(shape)
        n = self.num_inference_steps
        x, t_in = self._start(shape, n, device, dtype, generator, x_T)
        ctx = torch.inference_mode if self.inference_mode else torch.no_grad
        for i in range(n):
            with ctx():
                m = model_fn(x, t_in[i])
            with torch.no_grad():  # outside inference mode: the results are ordinary tensors
                x0, x = self._dpm_step(i, x, m)
            yield SampleStep(i, self._ts[i], x, x0)

    def config(self) -> dict:
        return {**super().config(), "lower_order_final": self.lower_order_final}
