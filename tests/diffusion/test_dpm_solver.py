"""Issue 14: the built-in DPM-Solver++(2M) sampler (``dpm-solver++``).

Parity with diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` driven by the
same fixed network function, the same timesteps (ours, passed to diffusers as custom timesteps, so every spacing is
compared) and the same betas. In float64 the trajectories agree to ~2e-12: diffusers' float32 ``sigmas`` are
recomputed in float64 from the float32 ``alphas_cumprod`` both sides share, and since ``step`` casts the sample to
float32, the float64 runs call diffusers' own ``convert_model_output`` and first/second-order updates through
``_step_float64`` (``step`` without the cast). In float32 ``step`` itself is compared, to 1e-5 (measured 3e-6).
Clipping: diffusers' dynamic thresholding with ``sample_max_value=1`` is exactly clipping x0 to [-1, 1] (its
per-sample scale is clamped to [1, 1]).
The convergence order (2) on both processes is checked by the sampler contract (tests/test_contracts_all_kinds.py).
"""

from __future__ import annotations

import pytest
import torch
from test_diffusion_parity import fixed_network  # the same stand-in network as the DDIM/DDPM parity

from cardiobench.diffusion import BlurringProcess, DDIMSampler, DPMSolverSampler, GaussianProcess
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import get_component

diffusers = pytest.importorskip("diffusers")

SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
PREDICTIONS = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}
SHAPE = (3, 2, 5, 5)
TOL64 = 1e-9
TOL32 = 1e-5




def _step_float64(ref, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
    """diffusers' ``DPMSolverMultistepScheduler.step`` (order 2, deterministic) without its cast to float32."""
    if ref.step_index is None:
        ref._init_step_index(t)
    final = ref.step_index == len(ref.timesteps) - 1  # final_sigmas_type="zero": always first order
    model_output = ref.convert_model_output(model_output, sample=sample)
    ref.model_outputs = [*ref.model_outputs[1:], model_output]
    if ref.lower_order_nums < 1 or final:
        prev = ref.dpm_solver_first_order_update(model_output, sample=sample)
    else:
        prev = ref.multistep_dpm_solver_second_order_update(ref.model_outputs, sample=sample)
    ref.lower_order_nums = min(ref.lower_order_nums + 1, 2)
    ref._step_index += 1
    return prev


def dpm_max_diff(schedule, ptype, steps, spacing, clip, dtype, gain=1.0):
    ours = DPMSolverSampler(GaussianProcess(1000, beta_schedule=schedule, prediction_type=ptype), steps,
                            timestep_spacing=spacing, clip_x0=clip)
    ref = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_schedule=SCHEDULES[schedule], prediction_type=PREDICTIONS[ptype],
        algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True,
        final_sigmas_type="zero", thresholding=clip, sample_max_value=1.0)
    ref.set_timesteps(timesteps=ours.timesteps.tolist())
    assert ref.timesteps.tolist() == ours.timesteps.tolist()
    fn = fixed_network(ref.alphas_cumprod, ptype, gain)
    if dtype == torch.float64:  # diffusers keeps float32 sigmas: recompute them in float64 from the same abar
        abar = ref.alphas_cumprod.double()[ref.timesteps]
        ref.sigmas = torch.cat([((1 - abar) / abar).sqrt(), torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype)
    y = x.clone()
    worst = 0.0
    for i, t in enumerate(ref.timesteps.tolist()):
        tb = torch.full((SHAPE[0],), t)
        if dtype == torch.float64:
            theirs = _step_float64(ref, fn(x, tb), t, x)
        else:
            theirs = ref.step(fn(x, tb), t, x).prev_sample
        mine = ours.step(fn(y, tb), i, y)
        worst = max(worst, float((theirs - mine.x_t).abs().max()))
        x, y = theirs, mine.x_t
    assert torch.isfinite(y).all()
    return worst


CASES = [  # steps, spacing, clip
    (20, "leading", False),
    (20, "leading", True),
    (10, "trailing", False),
    (7, "linspace", True),
    (50, "trailing", True),
    (2, "leading", False),
]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("ptype", PREDICTIONS)
def test_matches_diffusers_float64(schedule, ptype):
    for steps, spacing, clip in CASES:
        diff = dpm_max_diff(schedule, ptype, steps, spacing, clip, torch.float64)
        assert diff < TOL64, (schedule, ptype, steps, spacing, clip, diff)


@pytest.mark.parametrize("ptype", ["epsilon", "x0"])
def test_matches_diffusers_with_an_overshooting_x0(ptype):
    """x0 beyond [-1, 1] (as under guidance): clipping changes the step, and both sides clip alike."""
    for steps, spacing in [(20, "leading"), (9, "trailing")]:
        assert dpm_max_diff("cosine", ptype, steps, spacing, True, torch.float64, gain=1.8) < TOL64
    # and the comparison is not vacuous: the clipped and the unclipped trajectories differ
    proc = GaussianProcess(1000, beta_schedule="cosine", prediction_type=ptype)
    fn = fixed_network(proc.alphas_cumprod, ptype, 1.8)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    clipped, unclipped = (DPMSolverSampler(proc, 20, clip_x0=clip).sample(fn, SHAPE, x_T=x_T, dtype=torch.float64)
                          for clip in (True, False))
    assert float((clipped - unclipped).abs().max()) > 1e-2


@pytest.mark.parametrize("ptype", ["epsilon", "x0"])
def test_matches_diffusers_float32(ptype):
    for steps, spacing, clip in [(20, "leading", True), (10, "trailing", False)]:
        diff = dpm_max_diff("linear", ptype, steps, spacing, clip, torch.float32)
        assert diff < TOL32, (ptype, steps, spacing, clip, diff)


def test_a_wrong_correction_fails_parity():
    """The parity check can fail: a doubled second-order correction is far outside the tolerance."""

    class Doubled(DPMSolverSampler):
        correction = 1.0

    proc = GaussianProcess(1000, prediction_type="epsilon")
    good, bad = DPMSolverSampler(proc, 10, clip_x0=False), Doubled(proc, 10, clip_x0=False)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fn = fixed_network(proc.alphas_cumprod, "epsilon")
    a = good.sample(fn, SHAPE, x_T=x_T, dtype=torch.float64)
    b = bad.sample(fn, SHAPE, x_T=x_T, dtype=torch.float64)
    assert float((a - b).abs().max()) > 1e3 * TOL32


def test_first_and_last_steps_are_ddim():
    """The first step (no history) and the last (to the data) are DDIM's deterministic step, per coefficient."""
    for proc in (GaussianProcess(100, prediction_type="v"), BlurringProcess(100, image_size=5, prediction_type="v")):
        dpm = DPMSolverSampler(proc, 6, clip_x0=False)
        ddim = DDIMSampler(proc, 6, eta=0.0, clip_x0=False)
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        m = torch.tanh(x)
        torch.testing.assert_close(dpm.step(m, 0, x).x_t, ddim.step(m, 0, x).x_t, atol=1e-12, rtol=0)
        for i in range(1, 5):  # fill the history
            dpm.step(m, i, x)
        torch.testing.assert_close(dpm.step(m, 5, x).x_t, ddim.step(m, 5, x).x_t, atol=1e-12, rtol=0)
        # a middle step is not DDIM's (the correction is there)
        dpm.step(m, 0, x)
        assert float((dpm.step(2 * m, 1, x).x_t - ddim.step(2 * m, 1, x).x_t).abs().max()) > 1e-3


def test_blurring_coefficients_are_per_frequency_and_finite():
    proc = BlurringProcess(1000, image_size=8)
    sampler = DPMSolverSampler(proc, 25, timestep_spacing="trailing")
    assert sampler._on_prev64.shape[1:] == (1, 8, 8)
    assert bool(torch.isfinite(sampler._on_prev64).all())
    assert float(sampler._on_prev64[1:-1].abs().min()) > 0.0
    assert float(sampler._on_prev64[[0, -1]].abs().max()) == 0.0  # first and last steps: first order


def test_registered_with_order_2_and_options():
    comp = get_component("sampler", "dpm-solver++")
    assert comp.metadata["families"] == ("linear-gaussian",) and comp.metadata["order"] == 2
    sampler = comp.create(GaussianProcess(100))
    assert sampler.config() == {"num_inference_steps": 20, "timestep_spacing": "leading", "clip_x0": True,
                                "lower_order_final": True}
    with pytest.raises(CardiobenchError, match="lower_order_final"):
        comp.create(GaussianProcess(100), lower_order_final=False)
