"""The shared math of linear Gaussian diffusion, written once for every process and sampler.

Every function works per coefficient of the orthonormal basis ``u = V x``: its arguments are Python
floats or tensors that broadcast against each other (a 0-d tensor for a scalar schedule such as
Gaussian DDPM, a ``(1, H, W)`` or ``(1, D, H, W)`` tensor of per-frequency values for blurring diffusion).
Notation, used identically in ``docs/diffusion.md``:

- forward marginal   ``q(u_t | u_0) = N(alpha_t u_0, sigma_t^2)``
- transition s < t   ``alpha_ts = alpha_t / alpha_s``, ``sigma2_ts = sigma_t^2 - alpha_ts^2 sigma_s^2``
- posterior          ``q(u_s | u_t, u_0) = N(coef_x0 u_0 + coef_xt u_t, var)`` with
  ``coef_x0 = alpha_s sigma2_ts / sigma_t^2``, ``coef_xt = alpha_ts sigma_s^2 / sigma_t^2``,
  ``var = sigma_s^2 sigma2_ts / sigma_t^2`` (Ho et al. 2020 eq. 7; Hoogeboom & Salimans 2023 sec. 3 for
  the per-frequency form, where it is written ``1/sigma2_den = 1/sigma_s^2 + alpha_ts^2/sigma2_ts``,
  ``mu = sigma2_den (alpha_ts/sigma2_ts u_t + alpha_s/sigma_s^2 u_0)``, the same numbers).

The posterior is written without dividing by ``sigma_s``, so ``s = -1`` (the data itself,
``alpha_s = 1``, ``sigma_s = 0``) needs no special case: ``coef_x0 = 1``, ``coef_xt = 0``, ``var = 0``.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from cardiobench.errors import CardiobenchError

T = TypeVar("T", float, torch.Tensor)

PREDICTION_TYPES = ("epsilon", "v", "x0")
DDPM_VARIANCES = ("fixed_small", "fixed_large")


def _clamp0(x: T) -> T:
    if isinstance(x, torch.Tensor):
        return x.clamp(min=0.0)
    return max(x, 0.0)


def _sqrt(x: T) -> T:
    if isinstance(x, torch.Tensor):
        return x.sqrt()
    return x**0.5


def check_prediction_type(prediction_type: str) -> str:
    if prediction_type not in PREDICTION_TYPES:
        raise CardiobenchError(
            f"unknown prediction_type {prediction_type!r}", f"use one of: {', '.join(PREDICTION_TYPES)}"
        )
    return prediction_type


def prediction_coefficients(alpha: T, sigma: T, prediction_type: str) -> tuple[T, T, T, T]:
    """``(x0_xt, x0_m, eps_xt, eps_m)``: the estimates as linear maps of ``u_t`` and the model output ``m``.

    ``u0_hat = x0_xt u_t + x0_m m`` and ``eps_hat = eps_xt u_t + eps_m m``, per coefficient:

    - ``epsilon`` (Ho et al. 2020): ``u0_hat = (u_t - sigma m) / alpha``, ``eps_hat = m``.
    - ``v`` (Salimans & Ho 2022, ``v = alpha eps - sigma u_0``):
      ``u0_hat = (alpha u_t - sigma m) / (alpha^2 + sigma^2)``,
      ``eps_hat = (sigma u_t + alpha m) / (alpha^2 + sigma^2)``. With ``alpha^2 + sigma^2 = 1`` (Gaussian DDPM,
      where ``alpha = sqrt(abar)``) this is diffusers' ``sqrt(abar) x_t - sqrt(1 - abar) v``.
    - ``x0``: ``u0_hat = m``, ``eps_hat = (u_t - alpha m) / sigma``.
    """
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return 1.0 / alpha, -sigma / alpha, 0.0 * alpha, 1.0 + 0.0 * alpha
    if prediction_type == "v":
        norm = alpha * alpha + sigma * sigma
        return alpha / norm, -sigma / norm, sigma / norm, alpha / norm
    return 0.0 * alpha, 1.0 + 0.0 * alpha, 1.0 / sigma, -alpha / sigma


def training_target_coefficients(alpha: T, sigma: T, prediction_type: str) -> tuple[T, T]:
    """``(on_u0, on_eps)``: the regression target ``on_u0 u_0 + on_eps eps`` for ``prediction_type``.

    ``epsilon``: ``eps``; ``v``: ``alpha eps - sigma u_0`` (Salimans & Ho 2022, eq. in sec. 4); ``x0``: ``u_0``.
    """
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return 0.0 * alpha, 1.0 + 0.0 * alpha
    if prediction_type == "v":
        return -sigma + 0.0 * alpha, alpha + 0.0 * sigma
    return 1.0 + 0.0 * alpha, 0.0 * alpha


def transition(alpha_t: T, sigma_t: T, alpha_s: T, sigma_s: T) -> tuple[T, T]:
    """``(alpha_ts, sigma2_ts)`` of ``q(u_t | u_s) = N(alpha_ts u_s, sigma2_ts)`` for s < t.

    ``alpha_ts = alpha_t / alpha_s``; ``sigma2_ts = sigma_t^2 - alpha_ts^2 sigma_s^2`` (clamped at 0 against
    rounding; it is >= 0 whenever the signal-to-noise ratio does not increase from s to t).
    """
    alpha_ts = alpha_t / alpha_s
    sigma2_ts = _clamp0(sigma_t * sigma_t - alpha_ts * alpha_ts * sigma_s * sigma_s)
    return alpha_ts, sigma2_ts


def posterior_coefficients(alpha_t: T, sigma_t: T, alpha_s: T, sigma_s: T) -> tuple[T, T, T]:
    """``(coef_x0, coef_xt, var)`` of the posterior ``q(u_s | u_t, u_0)``.

    ``mean = coef_x0 u_0 + coef_xt u_t``. For Gaussian DDPM these are Ho et al. (2020) eq. 7:
    ``sqrt(abar_s) beta'/(1 - abar_t)``, ``sqrt(alpha') (1 - abar_s)/(1 - abar_t)`` and
    ``beta~ = (1 - abar_s)/(1 - abar_t) beta'`` with ``alpha' = abar_t/abar_s``, ``beta' = 1 - alpha'``.
    """
    alpha_ts, sigma2_ts = transition(alpha_t, sigma_t, alpha_s, sigma_s)
    sigma2_t = sigma_t * sigma_t
    sigma2_s = sigma_s * sigma_s
    coef_x0 = alpha_s * sigma2_ts / sigma2_t
    coef_xt = alpha_ts * sigma2_s / sigma2_t
    var = sigma2_s * sigma2_ts / sigma2_t
    return coef_x0, coef_xt, var


def ddpm_coefficients(alpha_t: T, sigma_t: T, alpha_s: T, sigma_s: T, variance: str = "fixed_small"
                      ) -> tuple[T, T, T, T]:
    """``(on_x0, on_xt, on_eps, noise_std)`` of one ancestral step ``u_s = on_x0 u0_hat + on_xt u_t + noise_std z``.

    The mean is the posterior mean with ``u_0 -> u0_hat`` (Ho et al. 2020, Algorithm 2). ``variance``:
    ``fixed_small`` = the posterior variance ``var``; ``fixed_large`` = the forward transition variance
    ``sigma2_ts`` (``beta'`` for Gaussian DDPM; Ho et al. 2020 sec. 3.2), except on the last step to the data
    (``s = -1``), which adds no noise.
    """
    if variance not in DDPM_VARIANCES:
        raise CardiobenchError(f"unknown DDPM variance {variance!r}", f"use one of: {', '.join(DDPM_VARIANCES)}")
    coef_x0, coef_xt, var = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)
    if variance == "fixed_large":
        _, sigma2_ts = transition(alpha_t, sigma_t, alpha_s, sigma_s)
        # elementwise "no noise on the last step, to the data (sigma_s = 0)"
        var = sigma2_ts * (sigma_s != 0) if isinstance(sigma_s, torch.Tensor) else sigma2_ts * (sigma_s != 0.0)
    return coef_x0, coef_xt, 0.0 * coef_x0, _sqrt(var)


def ddim_coefficients(alpha_t: T, sigma_t: T, alpha_s: T, sigma_s: T, eta: float = 0.0) -> tuple[T, T, T, T]:
    """``(on_x0, on_xt, on_eps, noise_std)`` of one DDIM step.

    ``u_s = alpha_s u0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z``.

    Song et al. (2021) eqs. 12 and 16 per coefficient, with ``c^2 = eta^2 var`` and ``var`` the posterior
    variance (``eta = 1``: same marginals and variance as DDPM ``fixed_small``; ``eta = 0``: deterministic).
    """
    if not 0.0 <= eta <= 1.0:
        raise CardiobenchError(f"DDIM eta must be in [0, 1], got {eta}")
    _, _, var = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)
    noise_var = (eta * eta) * var
    on_eps = _sqrt(_clamp0(sigma_s * sigma_s - noise_var))
    return alpha_s + 0.0 * alpha_t, 0.0 * alpha_t, on_eps, _sqrt(noise_var)


def posterior_mean_from_eps(u_t: torch.Tensor, eps: torch.Tensor, alpha_t, sigma_t, alpha_s, sigma_s) -> torch.Tensor:
    """The closed-form posterior mean with ``u_0 = (u_t - sigma_t eps) / alpha_t`` (reference for tests)."""
    coef_x0, coef_xt, _ = posterior_coefficients(alpha_t, sigma_t, alpha_s, sigma_s)
    return coef_x0 * (u_t - sigma_t * eps) / alpha_t + coef_xt * u_t
