"""Issue item 7: our DDPM and DDIM samplers reproduce diffusers' DDPMScheduler / DDIMScheduler.

Both are driven by the same fixed network function and the same injected noise, step by step, for the
linear and cosine schedules, epsilon / v / x0 prediction, several step counts, spacings, eta values and
both clipping settings. In float64 (diffusers' float32 ``alphas_cumprod`` promoted to float64, so both
sides do the same arithmetic) the trajectories agree to ~1e-12. In float32 two correct implementations
differ by rounding that the cosine schedule's first step amplifies (``1/sqrt(abar_999)`` ~ 2e4), and a
1000-step DDPM chain accumulates ~1e-4, so the float32 checks use the shorter configurations.
"""

from __future__ import annotations

import pytest
import torch

from cardiobench.diffusion import DDIMSampler, DDPMSampler, GaussianProcess

diffusers = pytest.importorskip("diffusers")

SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction", "x0": "sample"}
SHAPE = (3, 2, 5, 5)


def fixed_network(alphas_cumprod: torch.Tensor, prediction_type: str, gain: float = 1.0):
    """A deterministic, nonlinear stand-in for a trained network: it 'believes' x0 = gain tanh(1.5 x + 0.3 cos x).

    ``gain > 1`` overshoots [-1, 1] (as a guided x0 estimate does), so clipping x0 changes the step.
    """

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = alphas_cumprod.to(x.dtype)[t].reshape(-1, 1, 1, 1)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        x0 = gain * torch.tanh(1.5 * x + 0.3 * torch.cos(x))
        eps = (x - a * x0) / s
        return {"epsilon": eps, "x0": x0, "v": a * eps - s * x0}[prediction_type]

    return fn


def _to_float64(scheduler) -> None:
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    for name in ("final_alpha_cumprod", "one"):
        if hasattr(scheduler, name):
            setattr(scheduler, name, getattr(scheduler, name).double())


def ddim_max_diff(schedule, ptype, steps, spacing, eta, clip, dtype, prev_timestep="stride", use_clipped=True,
                  gain=1.0):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule=SCHEDULES[schedule],
                                  prediction_type=PREDICTIONS[ptype], clip_sample=clip, timestep_spacing=spacing)
    ref.set_timesteps(steps)
    fn = fixed_network(ref.alphas_cumprod, ptype, gain)
    if dtype == torch.float64:
        _to_float64(ref)
    ours = DDIMSampler(GaussianProcess(1000, beta_schedule=schedule, prediction_type=ptype), steps, eta=eta,
                       timestep_spacing=spacing, clip_x0=clip, prev_timestep=prev_timestep,
                       use_clipped_model_output=use_clipped)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=g, dtype=dtype)
    y = x.clone()
    worst = 0.0
    for i, t in enumerate(ref.timesteps.tolist()):
        noise = torch.randn(SHAPE, generator=g, dtype=dtype)
        tb = torch.full((SHAPE[0],), t)
        theirs = ref.step(fn(x, tb), t, x, eta=eta, variance_noise=noise if eta > 0 else None,
                          use_clipped_model_output=use_clipped)
        mine = ours.step(fn(y, tb), i, y, noise=noise)
        worst = max(worst, float((theirs.pred_original_sample - mine.x0_pred).abs().max()) * 1e-3,
                    float((theirs.prev_sample - mine.x_t).abs().max()))
        x, y = theirs.prev_sample, mine.x_t
    assert torch.isfinite(y).all()
    return worst


def ddpm_max_diff(schedule, ptype, steps, variance, clip, dtype, spacing="leading"):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=SCHEDULES[schedule],
                                  prediction_type=PREDICTIONS[ptype], clip_sample=clip, variance_type=variance,
                                  timestep_spacing=spacing)
    ref.set_timesteps(steps)
    fn = fixed_network(ref.alphas_cumprod, ptype)
    if dtype == torch.float64:
        _to_float64(ref)
    ours = DDPMSampler(GaussianProcess(1000, beta_schedule=schedule, prediction_type=ptype), steps,
                       variance=variance, clip_x0=clip, timestep_spacing=spacing)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = x.clone()
    # the same seeded generator on both sides: diffusers draws one randn per step with t > 0, so do we
    g_ref, g_ours = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    worst = 0.0
    for i, t in enumerate(ref.timesteps.tolist()):
        tb = torch.full((SHAPE[0],), t)
        theirs = ref.step(fn(x, tb), t, x, generator=g_ref)
        mine = ours.step(fn(y, tb), i, y, generator=g_ours)
        worst = max(worst, float((theirs.prev_sample - mine.x_t).abs().max()))
        x, y = theirs.prev_sample, mine.x_t
    assert torch.isfinite(y).all()
    return worst


DDIM_CASES = [  # steps, spacing, eta, clip
    (50, "leading", 0.0, True),
    (50, "leading", 0.5, False),
    (10, "trailing", 0.0, False),
    (25, "trailing", 1.0, True),
    (7, "linspace", 1.0, True),
    (12, "linspace", 0.0, False),
]
DDPM_CASES = [  # steps, variance, clip
    (100, "fixed_small", True),
    (100, "fixed_large", False),
    (13, "fixed_small", False),
    (13, "fixed_large", True),
]


@pytest.mark.parametrize("ptype", PREDICTIONS)
@pytest.mark.parametrize("use_clipped", [True, False])
def test_ddim_with_an_overshooting_x0_matches_diffusers_in_both_clipping_modes(ptype, use_clipped):
    """x0 estimates beyond [-1, 1] (guidance) are clipped; the noise estimate is the network's own
    (use_clipped_model_output=False, diffusers' default) or re-derived from the clipped x0 (True, ours)."""
    for steps, spacing, eta in [(25, "leading", 0.0), (10, "trailing", 1.0)]:
        diff = ddim_max_diff("cosine", ptype, steps, spacing, eta, True, torch.float64, use_clipped=use_clipped,
                             gain=1.8)
        assert diff < 1e-9, (ptype, steps, spacing, eta, diff)


@pytest.mark.parametrize("ptype", PREDICTIONS)
def test_the_two_clipping_modes_differ_when_x0_overshoots(ptype):
    """So the parity test above compares two different things (and neither is vacuous)."""
    proc = GaussianProcess(1000, prediction_type=ptype)
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def midway(gain: float, use_clipped: bool) -> torch.Tensor:  # x_t after 12 of 25 steps
        fn = fixed_network(ref.alphas_cumprod, ptype, gain)
        steps = DDIMSampler(proc, 25, use_clipped_model_output=use_clipped).iter_sample(
            fn, SHAPE, x_T=x_T, dtype=torch.float64)
        return next(s.x_t for s in steps if s.index == 11).clone()

    assert float((midway(1.8, True) - midway(1.8, False)).abs().max()) > 1e-2
    assert float((midway(1.0, True) - midway(1.0, False)).abs().max()) < 1e-9  # no overshoot: the same


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("ptype", PREDICTIONS)
@pytest.mark.parametrize("use_clipped", [True, False])
def test_ddim_matches_diffusers_float64(schedule, ptype, use_clipped):
    for steps, spacing, eta, clip in DDIM_CASES:
        diff = ddim_max_diff(schedule, ptype, steps, spacing, eta, clip, torch.float64, use_clipped=use_clipped)
        assert diff < 1e-9, (schedule, ptype, steps, spacing, eta, clip, diff)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("ptype", PREDICTIONS)
def test_ddpm_matches_diffusers_float64(schedule, ptype):
    for steps, variance, clip in DDPM_CASES:
        diff = ddpm_max_diff(schedule, ptype, steps, variance, clip, torch.float64)
        assert diff < 1e-9, (schedule, ptype, steps, variance, clip, diff)


@pytest.mark.parametrize("schedule,ptype", [("cosine", "epsilon"), ("linear", "v")])
def test_full_1000_step_chains_match_diffusers_float64(schedule, ptype):
    assert ddpm_max_diff(schedule, ptype, 1000, "fixed_small", True, torch.float64) < 1e-9
    assert ddim_max_diff(schedule, ptype, 1000, "leading", 0.0, True, torch.float64) < 1e-9


def test_ddpm_trailing_spacing_matches_diffusers_float64():
    """Trailing ends above t = 0: diffusers adds noise of std 1e-10 there (its variance floor), we add none."""
    assert ddpm_max_diff("cosine", "epsilon", 20, "fixed_small", True, torch.float64, spacing="trailing") < 1e-9


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("ptype", ["epsilon", "v"])
def test_float32_trajectories_match_diffusers(schedule, ptype):
    for steps, spacing, eta in [(50, "leading", 0.0), (50, "leading", 0.5), (20, "leading", 1.0)]:
        diff = ddim_max_diff(schedule, ptype, steps, spacing, eta, True, torch.float32)
        assert diff < 1e-5, ("ddim", schedule, ptype, steps, spacing, eta, diff)
    for steps, variance in [(13, "fixed_small"), (20, "fixed_large")]:
        diff = ddpm_max_diff(schedule, ptype, steps, variance, True, torch.float32)
        assert diff < 1e-5, ("ddpm", schedule, ptype, steps, variance, diff)
    if schedule == "linear":  # the cosine schedule's first step from t = 999 amplifies rounding (see top)
        diff = ddim_max_diff(schedule, ptype, 10, "trailing", 0.0, True, torch.float32)
        assert diff < 1e-5, ("ddim trailing", schedule, ptype, diff)


def test_prev_timestep_rules():
    """'next' (default) and diffusers' 'stride' (t - T//N) agree for leading spacing and for trailing when
    N divides T; for linspace diffusers' DDIM lands between the timesteps it evaluates, we do not."""
    proc = GaussianProcess(1000)
    for spacing, steps in [("leading", 50), ("leading", 30), ("trailing", 50), ("trailing", 8)]:
        a = DDIMSampler(proc, steps, timestep_spacing=spacing)
        b = DDIMSampler(proc, steps, timestep_spacing=spacing, prev_timestep="stride")
        assert a.prev_timesteps.tolist() == b.prev_timesteps.tolist()
    nxt = DDIMSampler(proc, 7, timestep_spacing="linspace")
    stride = DDIMSampler(proc, 7, timestep_spacing="linspace", prev_timestep="stride")
    assert nxt.timesteps.tolist() == [999, 832, 666, 500, 333, 166, 0]
    assert nxt.prev_timesteps.tolist() == [832, 666, 500, 333, 166, 0, -1]
    assert stride.prev_timesteps.tolist() == [857, 690, 524, 358, 191, 24, -1]


@pytest.mark.parametrize("ptype", ["epsilon", "v"])
def test_ddim_eta_one_is_ddpm_posterior_sampling(ptype):
    """DDIM with eta = 1 lands on the next listed timestep with DDPM's posterior (Song et al. 2021, sec. 4.1):
    unclipped, it equals diffusers' DDPMScheduler, which also steps to the next listed timestep, for any spacing."""
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                  prediction_type=PREDICTIONS[ptype], clip_sample=False, timestep_spacing="linspace")
    ref.set_timesteps(9)
    fn = fixed_network(ref.alphas_cumprod, ptype)
    _to_float64(ref)
    ours = DDIMSampler(GaussianProcess(1000, prediction_type=ptype), 9, eta=1.0, timestep_spacing="linspace",
                       clip_x0=False)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = x.clone()
    g_ref, g_ours = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for i, t in enumerate(ref.timesteps.tolist()):
        tb = torch.full((SHAPE[0],), t)
        x = ref.step(fn(x, tb), t, x, generator=g_ref).prev_sample
        noise = torch.randn(SHAPE, generator=g_ours, dtype=torch.float64) if t > 0 else None
        y = ours.step(fn(y, tb), i, y, noise=noise).x_t
        torch.testing.assert_close(y, x, atol=1e-9, rtol=0)
