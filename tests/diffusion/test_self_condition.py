"""Self-conditioning (Chen, Zhang & Hinton 2023): the network also sees its previous data estimate.

Checked against the paper's Algorithm 1 (training: a first pass with zero estimate, without gradient, on half of
the batches) and Algorithm 2 (sampling: each step feeds the previous step's estimate), on any representation
and any linear-Gaussian process, through the seam only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiobench.diffusion.bits import AnalogBitsRepresentation
from cardiobench.diffusion.gaussian import GaussianProcess
from cardiobench.diffusion.representation import DiffusedVariable, OneHotRepresentation, SelfConditioned
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.factories import build_variable, create, model_channels
from cardiobench.results.store import ResultStore
from cardiobench.specs import TrainSpec
from cardiobench.testing.cli import invoke


def variable(prediction_type: str = "x0", rep=None) -> DiffusedVariable:
    rep = rep if rep is not None else AnalogBitsRepresentation(self_condition=True)
    return DiffusedVariable(rep, GaussianProcess(num_timesteps=50, prediction_type=prediction_type), 8)


def test_option_and_config():
    for rep in (AnalogBitsRepresentation(), OneHotRepresentation()):
        assert rep.self_condition is False and "self_condition" not in rep.config()  # hashes of old specs hold
    on = AnalogBitsRepresentation(self_condition=True)
    assert on.config() == {"num_classes": 4, "scale": 1.0, "self_condition": True}
    assert OneHotRepresentation(**OneHotRepresentation(self_condition=True).config()).self_condition
    with pytest.raises(ValueError, match="self_condition must be true or false"):
        AnalogBitsRepresentation(self_condition=1)
    with pytest.raises(CardiobenchError, match="bad option for representation 'bits'"):
        create("representation", "bits", self_condition="yes")


def test_the_network_input_doubles():
    base = dict(dataset="phantom", resolution=16, representation="bits", steps=3)
    assert model_channels(TrainSpec(**base)) == (2, 2)
    on = TrainSpec(**base, representation_options={"self_condition": True})
    assert model_channels(on) == (4, 2)
    assert build_variable(on).in_channels == 4 and on.hash() != TrainSpec(**base).hash()


@pytest.mark.parametrize("prediction_type", ["x0", "epsilon", "v"])
def test_training_follows_algorithm_1(prediction_type):
    """Per batch: a coin; heads -> a no-grad first pass on concat(x_t, 0) gives x0_hat, the loss pass sees
    concat(x_t, x0_hat); tails -> one pass on concat(x_t, 0). Both coins happen over a few batches."""
    var = variable(prediction_type)
    x0 = var.encode(torch.randint(0, 4, (3, 8, 8)))
    weight = torch.nn.Parameter(torch.tensor(0.7))
    calls: list[tuple[torch.Tensor, bool, torch.Tensor]] = []

    def model_fn(x, t):
        calls.append((x.detach().clone(), torch.is_grad_enabled(), t))
        return weight * x[:, :2] + 0.1 * x[:, 2:]

    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):
        calls.clear()
        loss = var.training_loss(model_fn, x0, generator)
        loss.backward()
        assert all(c[0].shape == (3, 4, 8, 8) for c in calls)
        if len(calls) == 1:  # tails
            assert torch.equal(calls[0][0][:, 2:], torch.zeros(3, 2, 8, 8)) and calls[0][1]
        else:  # heads
            assert len(calls) == 2 and not calls[0][1] and calls[1][1]
            first, second = calls[0][0], calls[1][0]
            assert torch.equal(first[:, :2], second[:, :2]) and torch.equal(first[:, 2:], torch.zeros(3, 2, 8, 8))
            # the estimate fed back is the process's x0_hat of the first output, whatever the parameterisation
            expected = var.process.predict_x0(0.7 * first[:, :2], first[:, :2], calls[0][2])
            assert torch.allclose(second[:, 2:], expected, atol=1e-5)
            if prediction_type == "x0":
                assert torch.allclose(second[:, 2:], 0.7 * first[:, :2], atol=1e-6)
        seen.add(len(calls))
    assert seen == {1, 2}
    assert weight.grad is not None and torch.isfinite(weight.grad)


def test_sampling_follows_algorithm_2():
    """Step 1 sees a zero estimate; step k sees predict_x0 of step k-1's output (here x0 prediction: the output)."""
    var = variable("x0")
    inputs: list[torch.Tensor] = []

    def model_fn(x, t):
        inputs.append(x.clone())
        return torch.full_like(x[:, :2], float(len(inputs)) / 10)

    fn = var.sampling_fn(model_fn)
    assert isinstance(fn, SelfConditioned)
    sampler = create("sampler", "ddim", var.process)
    sampler.set_timesteps(4)
    sampler.sample(fn, var.shape(2), generator=torch.Generator().manual_seed(0))
    assert len(inputs) == 4
    assert torch.equal(inputs[0][:, 2:], torch.zeros(2, 2, 8, 8))
    for k in range(1, 4):
        assert torch.allclose(inputs[k][:, 2:], torch.full((2, 2, 8, 8), k / 10))
    # a fresh wrapper per batch: no state leaks between batches
    assert var.sampling_fn(model_fn).x0_prev is None
    # off: the model_fn itself
    plain = variable("x0", AnalogBitsRepresentation())
    assert plain.sampling_fn(model_fn) is model_fn


def test_refused_where_it_cannot_work():
    with pytest.raises(CardiobenchError, match="self-conditioning needs the network's data estimate"):
        DiffusedVariable(OneHotRepresentation(self_condition=True), create("noise", "d3pm", num_timesteps=10), 8)
    with pytest.raises(IncompatibleError, match="classifier guidance"):
        variable().sampling_fn(lambda x, t: x, needs_grad=True)


TINY = ["--preset", "tiny", "--no-gif", "--num-samples", "16", "--steps", "3", "--train-steps", "3",
        "--set", "diffusion.representation_options.self_condition=true"]


@pytest.mark.slow
@pytest.mark.parametrize("noise, sampler, rep", [("gaussian", "ddpm", "bits"), ("blurring", "dpm-solver++", "bits"),
                                                 ("gaussian", "ddim", "onehot")])
def test_runs_end_to_end(tmp_path, noise, sampler, rep, one_thread):
    res = invoke("run", "--noise", noise, "--sampler", sampler, "--representation", rep,
                 "--results", str(tmp_path), *TINY)
    assert res.exit_code == 0, res.output
    [row] = ResultStore(tmp_path / "results.db").runs()
    assert '"self_condition": true' in open(row.artefacts["metrics"]).read()  # in the spec that names the model
    with np.load(row.artefacts["samples"]) as f:
        masks = f[f.files[0]]
    assert masks.shape[0] == 16 and masks.max() <= 3


@pytest.mark.parametrize("args, expected", [
    (["--noise", "d3pm", "--sampler", "d3pm"], "self-conditioning needs the network's data estimate"),
    (["--conditioning", "classifier-guidance"], "classifier guidance"),
])
def test_bad_combinations_exit_2_before_training(tmp_path, args, expected):
    res = invoke("run", *args, "--results", str(tmp_path), *TINY)
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("runs/*"))
