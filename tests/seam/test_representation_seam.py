"""The representation seam: a plugin of a non-Gaussian family (multinomial diffusion, ``multinomial_plugin``)
is checked against its paper's formulas, then trained, sampled and scored through ``cardiobench run`` with no
engine edit; and the engine is checked to hard-code nothing about what is diffused."""

from __future__ import annotations

from pathlib import Path

import multinomial_plugin as mp
import numpy as np
import pytest
import torch

from cardiobench.testing.cli import invoke

ENGINE = Path(__file__).resolve().parents[2] / "cardiobench" / "engine"


def _onehot(idx: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(idx, k).movedim(-1, 1).double()


def test_forward_marginal_is_the_product_of_one_step_matrices():
    proc = mp.MultinomialProcess(num_timesteps=12, num_classes=4)
    k = 4
    x0 = _onehot(torch.tensor([[2]]), k)  # (1, K, 1)
    q = x0[0, :, 0]
    for t in range(12):  # one-step matrix Q_t = a_t I + (1 - a_t) / K, a_t = abar_t / abar_{t-1}
        a = float(proc.abar(torch.tensor([t])) / proc.abar(torch.tensor([t - 1])))
        q = (a * torch.eye(k, dtype=torch.float64) + (1 - a) / k) @ q
        np.testing.assert_allclose(proc.marginal(x0, torch.tensor([t]))[0, :, 0], q, atol=1e-12)


def test_posterior_is_bayes_and_normalised():
    proc = mp.MultinomialProcess(num_timesteps=10, num_classes=4)
    k, t, s = 4, torch.tensor([7]), torch.tensor([3])
    a_ts = float(proc.abar(t) / proc.abar(s))
    for xt_class in range(k):
        for x0_class in range(k):
            x_t, x0 = _onehot(torch.tensor([[xt_class]]), k), _onehot(torch.tensor([[x0_class]]), k)
            post = proc.posterior(x_t, x0, t, s)[0, :, 0]
            # brute force: q(x_s | x_0) q(x_t | x_s) / q(x_t | x_0), over every value of x_s
            q_s = proc.marginal(x0, s)[0, :, 0]
            like = torch.tensor([a_ts * (xs == xt_class) + (1 - a_ts) / k for xs in range(k)], dtype=torch.float64)
            bayes = q_s * like / (q_s * like).sum()
            np.testing.assert_allclose(post, bayes, atol=1e-12)
            assert float(post.sum()) == pytest.approx(1.0, abs=1e-12)


def test_a_perfect_x0_predictor_returns_the_data():
    proc = mp.MultinomialProcess(num_timesteps=30, num_classes=4)
    data = torch.randint(0, 4, (3, 8, 8), generator=torch.Generator().manual_seed(0))
    logits = _onehot(data, 4).float() * 50.0  # certain of the data
    smp = mp.MultinomialSampler(proc)
    smp.set_timesteps(7)
    out = smp.sample(lambda x, t: logits, (3, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.argmax(1), data)


@pytest.mark.slow
def test_a_new_family_trains_and_samples_through_run(register_plugin, tmp_path):
    register_plugin(mp, "multinomial-test")
    res = invoke("run", "--noise", "multinomial", "--sampler", "multinomial-ancestral", "--preset", "tiny",
                 "--no-gif", "--results", str(tmp_path / "r.db"), "--json")
    assert res.exit_code == 0, res.output
    import json

    run = json.loads(res.stdout)
    assert run["noise"] == "multinomial" and run["sampler"] == "multinomial-ancestral" and run["metrics"]["fid"] >= 0
    with np.load(Path(run["artefacts"]["samples"])) as data:
        masks = data["masks"]
    assert masks.shape == (8, 16, 16) and masks.max() <= 3
    # the family is the compatibility unit: a linear-Gaussian sampler is refused before any work, one line
    bad = invoke("run", "--noise", "multinomial", "--sampler", "ddim", "--preset", "tiny",
                 "--results", str(tmp_path / "r.db"))
    assert bad.exit_code == 2 and "does not support noise process 'multinomial'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


#: names whose use in the engine would mean it decides what is diffused (the DiffusedVariable's job)
FORBIDDEN = {"randn", "masks_to_onehot", "onehot_to_masks", "mse_loss", "smooth_l1_loss", "NUM_CLASSES", "argmax",
             "q_sample", "training_target", "one_hot"}


def test_the_engine_hard_codes_nothing_about_what_is_diffused():
    import ast

    hits = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
                node.name if isinstance(node, ast.alias) else None
            if name is not None and name.split(".")[-1] in FORBIDDEN:
                hits.append(f"{path.name}:{node.lineno} {name}")
    assert not hits, f"the engine decides what is diffused: {hits} (ask the DiffusedVariable instead)"
