"""D3PM (``cardiobench/diffusion/categorical.py``) against its formulas, and end to end through ``cardiobench run``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiobench.diffusion.categorical import D3PMProcess, D3PMSampler
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.plugins import check_compatible, get_component
from cardiobench.testing.cli import invoke

K = 4
TRANSITIONS = ("uniform", "absorbing")


def _states(idx: list[int] | torch.Tensor, s: int) -> torch.Tensor:
    """(B,) state indices -> (B, S, 1) one-hot float64."""
    return torch.nn.functional.one_hot(torch.as_tensor(idx), s).double().unsqueeze(-1)


def _one_step(proc: D3PMProcess, t: int) -> torch.Tensor:
    """Q_t written out from beta_t (row i: q(x_t | x_{t-1} = i)), not from the closed form."""
    s = proc.num_states
    beta = proc.beta(t)
    if proc.transition == "uniform":
        return (1 - beta) * torch.eye(s, dtype=torch.float64) + beta / K * torch.ones(s, s, dtype=torch.float64)
    q = (1 - beta) * torch.eye(s, dtype=torch.float64)
    q[:, -1] += beta  # every state goes to [MASK] with probability beta_t; [MASK] stays
    return q


def _product(proc: D3PMProcess, s: int, t: int) -> torch.Tensor:
    """Q_{s+1} Q_{s+2} ... Q_t by matrix products."""
    m = torch.eye(proc.num_states, dtype=torch.float64)
    for i in range(s + 1, t + 1):
        m = m @ _one_step(proc, i)
    return m


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_forward_marginals_are_the_products_of_the_one_step_matrices(transition):
    proc = D3PMProcess(num_timesteps=15, num_classes=K, transition=transition)
    n = proc.num_states
    x0 = _states(list(range(K)), n)
    qbar = torch.eye(n, dtype=torch.float64)
    for t in range(15):
        qbar = qbar @ _one_step(proc, t)
        np.testing.assert_allclose(proc.marginal(x0, torch.full((K,), t))[..., 0], qbar[:K], atol=1e-12)
        np.testing.assert_allclose(proc.transition_matrix(-1, t), qbar, atol=1e-12)
        for s in (-1, t // 2, t - 1):
            np.testing.assert_allclose(proc.transition_matrix(s, t), _product(proc, s, t), atol=1e-12)
    # the prior is the stationary end: abar_T = 0
    np.testing.assert_allclose(qbar[:K], proc.noise_dist.expand(K, -1), atol=1e-12)


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_schedules(transition):
    proc = D3PMProcess(num_timesteps=10, transition=transition)
    abar = proc.abar(torch.arange(-1, 10))
    assert float(abar[0]) == 1.0 and float(abar[-1]) == 0.0 and bool((abar[1:] < abar[:-1]).all())
    if transition == "absorbing":  # mutual information: beta_t = 1 / (T - t + 1) in the paper's 1..T
        assert proc.schedule == "mutual-information"
        for t in range(10):
            assert proc.beta(t) == pytest.approx(1.0 / (10 - (t + 1) + 1), abs=1e-12)
    else:
        assert proc.schedule == "cosine"
    with pytest.raises(CardiobenchError, match="absorbing transitions only"):
        D3PMProcess(transition="uniform", schedule="mutual-information")
    with pytest.raises(CardiobenchError):
        D3PMProcess(transition="gaussian")


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize(("t", "s"), [(7, 6), (7, 3), (9, -1), (0, -1), (5, 0)])
def test_posterior_is_bayes_and_normalised(transition, t, s):
    """q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0) with the matrix products, for each possible
    (x_t, x_0); and p(x_s | x_t) for a soft prediction is the mixture of those posteriors."""
    proc = D3PMProcess(num_timesteps=10, num_classes=K, transition=transition)
    n = proc.num_states
    q_ts, q_s0, q_t0 = _product(proc, s, t), _product(proc, -1, s), _product(proc, -1, t)
    tt, ss = torch.tensor([t]), torch.tensor([s])
    soft = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    for xt in range(n):
        mix = torch.zeros(n, dtype=torch.float64)
        norm = 0.0
        for x0 in range(K):
            if q_t0[x0, xt] == 0:
                continue  # x_t impossible from this x_0 (absorbing: an unmasked x_t != x_0)
            bayes = q_ts[:, xt] * q_s0[x0] / q_t0[x0, xt]
            assert float(bayes.sum()) == pytest.approx(1.0, abs=1e-12)
            post = proc.posterior(_states([xt], n), _states([x0], K)[:, :K], tt, ss)[0, :, 0]
            np.testing.assert_allclose(post, bayes, atol=1e-12)
            mix += soft[x0] * bayes
            norm += float(soft[x0])
        if norm == 0:
            continue
        pred = proc.posterior(_states([xt], n), soft.view(1, K, 1), tt, ss)[0, :, 0]
        np.testing.assert_allclose(pred, mix / norm, atol=1e-12)
        assert float(pred.sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize("steps", [1, 2, 7, 30])
def test_a_perfect_x0_predictor_returns_the_data(transition, steps):
    proc = D3PMProcess(num_timesteps=30, num_classes=K, transition=transition)
    data = torch.randint(0, K, (3, 8, 8), generator=torch.Generator().manual_seed(0))
    logits = torch.nn.functional.one_hot(data, K).movedim(-1, 1).float() * 50.0
    smp = D3PMSampler(proc)
    smp.set_timesteps(steps)
    assert len(smp.timesteps) == steps and int(smp.timesteps[0]) == 29
    assert int(smp.timesteps[-1]) == (0 if steps > 1 else 29)  # one step: from T-1 straight to the data
    seen = []
    out = smp.sample(lambda x, t: logits, (3, K, 8, 8), generator=torch.Generator().manual_seed(1),
                     callback=lambda st: seen.append(st))
    assert torch.equal(out.argmax(1), data)
    assert bool(((out == 1).sum(1) == 1).all()), "every final pixel is one class (no [MASK] left)"
    assert len(seen) == steps and seen[0].x0_pred.min() >= -1 and seen[0].x0_pred.max() <= 1


def test_absorbing_prior_is_all_mask_and_uniform_prior_is_uniform():
    g = torch.Generator().manual_seed(0)
    absorbing = D3PMProcess(num_timesteps=10, transition="absorbing").prior((2, K, 4, 4), generator=g)
    assert bool((absorbing == -1).all())
    uni = D3PMProcess(num_timesteps=10).prior((256, K, 8, 8), generator=g)
    assert bool(((uni == 1).sum(1) == 1).all())
    freq = (uni == 1).double().mean((0, 2, 3))
    np.testing.assert_allclose(freq, 0.25, atol=0.01)


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_training_loss(transition):
    proc = D3PMProcess(num_timesteps=20, num_classes=K, transition=transition)
    data = torch.randint(0, K, (4, 8, 8), generator=torch.Generator().manual_seed(0))
    x0 = torch.nn.functional.one_hot(data, K).movedim(-1, 1).float() * 2 - 1
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    perfect = float(proc.training_loss(lambda x, t: 50.0 * x0, x0, g()))
    assert perfect == pytest.approx(0.0, abs=1e-6)
    w = torch.nn.Parameter(torch.tensor(0.3))
    loss = proc.training_loss(lambda x, t: w * x, x0, g())
    loss.backward()
    assert float(loss.detach()) > 0 and w.grad is not None and float(w.grad) != 0
    assert torch.equal(loss.detach(), proc.training_loss(lambda x, t: w * x, x0, g()).detach())
    vb, ce = (float(proc.training_loss(lambda x, t: 0.3 * x, x0, g(), loss=name)) for name in ("vb", "ce"))
    assert float(loss.detach()) == pytest.approx(vb + 0.001 * ce, rel=1e-5)
    with pytest.raises(ValueError):
        proc.training_loss(lambda x, t: x, x0, g(), loss="nope")


def test_ddim_with_d3pm_is_incompatible():
    with pytest.raises(IncompatibleError, match="does not support noise process 'd3pm'"):
        check_compatible(noise="d3pm", sampler="ddim")
    with pytest.raises(IncompatibleError, match="does not support noise process 'gaussian'"):
        check_compatible(noise="gaussian", sampler="d3pm")
    with pytest.raises(IncompatibleError, match="classifier-guidance"):
        check_compatible(noise="d3pm", sampler="d3pm", conditioning="classifier-guidance")
    with pytest.raises(IncompatibleError):
        check_compatible(noise="d3pm", representation="bits")
    check_compatible(noise="d3pm", sampler="d3pm", conditioning="classifier-free", representation="onehot")
    with pytest.raises(IncompatibleError):
        D3PMSampler(get_component("noise", "gaussian").create(num_timesteps=10))

    from cardiobench.config import resolve_config
    from cardiobench.engine.pipeline import plan_from_config

    cfg = resolve_config(preset="tiny", overrides={"diffusion.noise": "d3pm", "sample.sampler": "ddim"})
    with pytest.raises(IncompatibleError):
        plan_from_config(cfg)


def _masks(run: dict) -> np.ndarray:
    with np.load(Path(run["artefacts"]["samples"])) as data:
        return data["masks"]


@pytest.mark.slow
def test_d3pm_trains_and_samples_through_run(tmp_path):
    res = invoke("run", "--preset", "tiny", "--noise", "d3pm", "--sampler", "d3pm", "--no-gif",
                 "--results", str(tmp_path / "r.db"), "--json")
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    assert run["noise"] == "d3pm" and run["sampler"] == "d3pm" and run["metrics"]["fid"] >= 0
    masks = _masks(run)
    assert masks.shape == (8, 16, 16) and masks.min() >= 0 and masks.max() <= 3


@pytest.mark.slow
def test_d3pm_with_classifier_free_guidance_through_run(tmp_path):
    res = invoke("run", "--preset", "tiny", "--noise", "d3pm", "--sampler", "d3pm", "--no-gif",
                 "--conditioning", "classifier-free", "--guidance-scale", "2",
                 "--set", "diffusion.options.transition=absorbing",
                 "--results", str(tmp_path / "r.db"), "--json")
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    masks = _masks(run)
    assert masks.min() >= 0 and masks.max() <= 3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["concat", "controlnet"])
def test_d3pm_segments_mri_slices(tmp_path, method):
    """Image-conditioned categorical diffusion (in the spirit of CCDM, Zbinden et al. 2023): the segmentation task
    runs with the k-sample ensemble and reports Dice/HD95 and the per-pixel uncertainty like the other families.
    ControlNet first trains its unconditional categorical base, then the control branch on it."""
    res = invoke("run", "--preset", "tiny", "--task", "segmentation", "--conditioning", method,
                 "--noise", "d3pm", "--sampler", "d3pm", "--ensemble-k", "3", "--no-gif",
                 "--results", str(tmp_path / "r.db"), "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    assert 0.0 <= metrics["dice_mean"] <= 1.0 and "hd95_mean" in metrics
    assert 0.0 <= metrics["uncertainty_mean"] <= 1.0
