"""Classifier guidance: the eps <-> model-output inverse, eq. 14 in the process's basis, sampling, and steering."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from cardiobench.conditioning.base import Condition
from cardiobench.conditioning.classifier import build_classifier, classifier_spec_for, ensure_classifier
from cardiobench.conditioning.classifier_guidance import ClassifierGuidance, classifier_log_prob_grad, guided_eps
from cardiobench.data.tensors import masks_to_onehot, onehot_to_masks
from cardiobench.diffusion.blurring import BlurringProcess
from cardiobench.diffusion.ddim import DDIMSampler
from cardiobench.diffusion.ddpm import DDPMSampler
from cardiobench.diffusion.gaussian import GaussianProcess
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.models.unet import build_unet
from cardiobench.specs import TrainSpec
from cardiobench.testing.conditioning import ConditioningContract

pytestmark = pytest.mark.usefixtures("one_thread")

PROCESSES = {
    "gaussian": lambda pred, T=1000: GaussianProcess(num_timesteps=T, prediction_type=pred),
    "blurring": lambda pred, T=1000: BlurringProcess(num_timesteps=T, image_size=16, prediction_type=pred),
}


def tiny_unet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = build_unet(4, 4, size="tiny", channel_mults=[1, 2])
    g = torch.Generator().manual_seed(seed + 1)
    for p in net.parameters():  # off the zero initialisation, so the output depends on the input
        p.data.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


class LinearClassifier(nn.Module):
    """logits_k = <A_k, x> + b_k(t): grad_x log p(y | x) = A_y - sum_k p_k A_k in closed form."""

    def __init__(self, size: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(0.05 * torch.randn(5, 4, size, size, generator=g), requires_grad=False)
        self.b = nn.Parameter(torch.randn(5, generator=g), requires_grad=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kchw->bk", x, self.A) + self.b * (1 + t[:, None].float() / 1000)

    def grad_log_prob(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        A = self.A.double()
        logits = torch.einsum("bchw,kchw->bk", x.double(), A) + self.b.double() * (1 + t[:, None].double() / 1000)
        p = torch.softmax(logits, dim=1)
        return A[y] - torch.einsum("bk,kchw->bchw", p, A)


# -- NoiseProcess.model_output_from_eps ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
@pytest.mark.parametrize("pred", ["epsilon", "v", "x0"])
@pytest.mark.parametrize("kind", ["gaussian", "blurring"])
def test_model_output_from_eps_inverts_predict_eps(kind, pred, dtype, tol):
    proc = PROCESSES[kind](pred)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 1, 10, 100, 250, 500, 750, 900, 990, 999])
    x = torch.randn(len(t), 4, 16, 16, generator=g, dtype=dtype)
    eps = torch.randn(len(t), 4, 16, 16, generator=g, dtype=dtype)
    m = torch.randn(len(t), 4, 16, 16, generator=g, dtype=dtype)
    # Recovering u_0 from eps divides by alpha_t and recovering eps from u_0 divides by sigma_t, so the rounding
    # error of a round trip is bounded by tol times the condition number max(1/alpha_t, 1/sigma_t) (alpha_t per
    # frequency for blurring, whose high frequencies are damped to min_scale).
    a = proc.alpha(t, dtype=torch.float64).reshape(len(t), -1).amin(dim=1)
    s = proc.sigma(t, dtype=torch.float64).reshape(len(t), -1).amin(dim=1)
    cond = torch.maximum(1.0 / a, 1.0 / s).clamp(min=1.0)

    def check(got: torch.Tensor, want: torch.Tensor) -> None:
        err = (got - want).abs().reshape(len(t), -1).amax(dim=1).double()
        assert bool((err <= tol * cond).all()), (err / cond).max()

    check(proc.predict_eps(proc.model_output_from_eps(eps, x, t), x, t), eps)
    check(proc.model_output_from_eps(proc.predict_eps(m, x, t), x, t), m)
    # where alpha_t and sigma_t are both far from 0 the round trips are plain float precision
    well = (cond < 10).nonzero().flatten()
    assert len(well) >= 3 if kind == "gaussian" else len(well) >= 1
    back = proc.model_output_from_eps(proc.predict_eps(m[well], x[well], t[well]), x[well], t[well])
    assert (back - m[well]).abs().max() <= tol
    # consistent with predict_x0: the output's data estimate is (u_t - sigma_t eps) / alpha_t in the basis
    out = proc.model_output_from_eps(eps, x, t)
    at, st = proc.alpha(t, dtype=dtype), proc.sigma(t, dtype=dtype)
    check(proc.predict_x0(out, x, t), proc.from_basis((proc.to_basis(x) - st * proc.to_basis(eps)) / at))
    if pred == "epsilon":
        assert torch.equal(out, eps)


# -- eq. 14 in closed form ---------------------------------------------------------------------------------
def test_log_prob_gradient_matches_the_closed_form_of_a_linear_classifier():
    clf = LinearClassifier()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 16, 16, generator=g)
    t = torch.randint(0, 1000, (6,), generator=g)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    with torch.no_grad():  # as inside the sampler
        grad = classifier_log_prob_grad(clf, x, t, y)
    torch.testing.assert_close(grad.double(), clf.grad_log_prob(x, t, y), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("pred", ["epsilon", "v", "x0"])
@pytest.mark.parametrize("kind", ["gaussian", "blurring"])
def test_guided_noise_estimate_is_eq_14_in_closed_form(kind, pred):
    proc = PROCESSES[kind](pred)
    clf = LinearClassifier()
    net = tiny_unet()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 4, 16, 16, generator=g)
    t = torch.tensor([20, 200, 450, 700, 960])
    y = torch.tensor([4, 3, 2, 1, 0])
    w = 2.5
    method = ClassifierGuidance(classifier=clf)
    with torch.no_grad():
        out = method.model_fn(net, Condition(labels=y), guidance_scale=w, process=proc)(x, t)
        eps = proc.predict_eps(net(x, t), x, t)
        guided = proc.predict_eps(out, x, t)
    # sigma_t from the schedules themselves: sqrt(1 - abar_t) (Ho et al.), sqrt(sigmoid(-logSNR)) (blurring)
    if kind == "gaussian":
        sigma = (1 - proc.alphas_cumprod[t]).sqrt()
    else:
        tc = (t.double() + 1) / proc.num_timesteps  # sigma_t = sin(c_min t + c_max) (Kingma et al. 2021)
        c_max = np.arctan(np.exp(-0.5 * proc.logsnr_max))
        c_min = np.arctan(np.exp(-0.5 * proc.logsnr_min)) - c_max
        sigma = torch.sin(c_min * tc + c_max)
    expected = eps.double() - sigma.reshape(-1, 1, 1, 1) * w * clf.grad_log_prob(x, t, y)
    # float32 round trips through the output (largest for x0 prediction at small t, where eps = (u_t - alpha m) /
    # sigma): 4e-5 at most, against guidance shifts sigma w |g| of 0.015 (t = 20) to 0.4 (t = 960)
    torch.testing.assert_close(guided.double(), expected, rtol=0, atol=1e-4)


def test_guidance_with_a_per_coefficient_sigma_is_applied_in_the_dct_basis():
    """eps_hat = V^T (sigma ⊙ w ⊙ V g): checked against an explicit orthonormal DCT (scipy)."""

    class PerFrequencySigma(BlurringProcess):
        def sigma(self, t, *, dtype=None):
            base = super().sigma(t, dtype=dtype)
            ramp = torch.linspace(0.5, 1.5, self.image_size, dtype=base.dtype)
            return base * ramp[None, :, None] * ramp[None, None, :]  # (B, 1, H, W): one value per frequency

    proc = PerFrequencySigma(num_timesteps=1000, image_size=16)
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(2, 4, 16, 16, generator=g, dtype=torch.float64)
    grad = torch.randn(2, 4, 16, 16, generator=g, dtype=torch.float64)
    t = torch.tensor([100, 800])
    out = guided_eps(proc, eps, grad, t, 1.7)
    sig = proc.sigma(t, dtype=torch.float64).numpy()
    v_g = scipy.fft.dctn(grad.numpy(), axes=(-2, -1), norm="ortho")
    expected = eps.numpy() - scipy.fft.idctn(sig * 1.7 * v_g, axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)
    # a scalar sigma makes the basis round trip the identity: eps - sigma w g
    plain = BlurringProcess(num_timesteps=1000, image_size=16)
    s = plain.sigma(t, dtype=torch.float64)
    torch.testing.assert_close(guided_eps(plain, eps, grad, t, 1.7), eps - s * 1.7 * grad, rtol=0, atol=1e-12)


# -- sampling ----------------------------------------------------------------------------------------------
def sampler_for(name: str, proc, steps: int = 8):
    smp = DDPMSampler(proc) if name == "ddpm" else DDIMSampler(proc, eta=0.0)
    smp.set_timesteps(steps)
    return smp


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("kind", ["gaussian", "blurring"])
def test_scale_zero_is_unguided_sampling_bit_for_bit(kind, sampler):
    proc = PROCESSES[kind]("x0")
    net = tiny_unet()
    method = ClassifierGuidance(classifier=LinearClassifier())
    y = torch.tensor([0, 1, 2, 3])
    shape = (4, 4, 16, 16)
    plain = sampler_for(sampler, proc).sample(lambda x, t: net(x, t), shape, generator=torch.Generator().manual_seed(5))
    smp = sampler_for(sampler, proc)
    smp.inference_mode = not method.needs_grad  # what the engine does
    fn = method.model_fn(net, Condition(labels=y), guidance_scale=0.0, process=proc)
    guided = smp.sample(fn, shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(plain, guided)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("kind", ["gaussian", "blurring"])
def test_guided_sampling_runs_through_the_real_samplers_outside_inference_mode(kind, sampler):
    proc = PROCESSES[kind]("x0", T=100)
    net = tiny_unet()
    clf = build_classifier("tiny", seed=0).eval().requires_grad_(False)
    method = ClassifierGuidance(classifier=clf)
    y = torch.tensor([0, 1, 2, 3])
    fn = method.model_fn(net, Condition(labels=y), guidance_scale=3.0, process=proc)
    shape = (4, 4, 16, 16)
    smp = sampler_for(sampler, proc)
    smp.inference_mode = False
    steps = list(smp.iter_sample(fn, shape, generator=torch.Generator().manual_seed(5)))
    guided = steps[-1].x_t.clone()
    assert len(steps) == 8 and torch.isfinite(guided).all()
    assert not guided.requires_grad  # no autograd graph leaks out of the sampler
    plain = sampler_for(sampler, proc).sample(lambda x, t: net(x, t), shape, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(plain, guided)
    assert torch.is_grad_enabled()
    # inference mode left on: a clear error instead of a silent zero gradient
    smp.inference_mode = True
    with pytest.raises(CardiobenchError, match="inference_mode"):
        smp.sample(fn, shape, generator=torch.Generator().manual_seed(5))


def test_missing_labels_process_or_classifier_are_clear_errors(tmp_path):
    net = tiny_unet()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([1, 2])
    proc = PROCESSES["gaussian"]("epsilon")
    with pytest.raises(CardiobenchError, match="class labels"):
        ClassifierGuidance(classifier=LinearClassifier()).model_fn(net, Condition(), guidance_scale=1.0, process=proc)
    with pytest.raises(CardiobenchError, match="noise process"):
        ClassifierGuidance(classifier=LinearClassifier()).model_fn(net, Condition(labels=t), guidance_scale=1.0)
    fn = ClassifierGuidance().model_fn(net, Condition(labels=t), guidance_scale=1.0, process=proc)
    with pytest.raises(CardiobenchError, match="no classifier checkpoint"):
        fn(x, t)
    fn = ClassifierGuidance(classifier_checkpoint=str(tmp_path / "gone.pt")).model_fn(
        net, Condition(labels=t), guidance_scale=1.0, process=proc)
    with pytest.raises(CardiobenchError, match="gone.pt does not exist"):
        fn(x, t)
    with pytest.raises(CardiobenchError, match="does not train"):
        ClassifierGuidance().forward_train(net, x, t, Condition(labels=t))
    with pytest.raises(CardiobenchError, match="classifier size"):
        ClassifierGuidance(classifier_size="huge")


def test_options_and_registration():
    from cardiobench.plugins import get_component

    comp = get_component("conditioning", "classifier-guidance")
    method = comp.create(classifier_size="tiny", classifier_steps=7)
    assert isinstance(method, ClassifierGuidance)
    assert method.config() == {"classifier_size": "tiny", "classifier_steps": 7}
    assert ClassifierGuidance(classifier_checkpoint="/x.pt").config() == ClassifierGuidance().config()
    assert (method.needs_grad, method.trains_network, method.condition) == (True, False, "label")
    assert comp.metadata["families"] == ("linear-gaussian",) or list(comp.metadata["families"]) == ["linear-gaussian"]


class TestClassifierGuidanceContract(ConditioningContract):
    method = "classifier-guidance"
    options = {"classifier_size": "tiny", "classifier_steps": 10}

    def sampling_method(self):
        clf = build_classifier("tiny", seed=0)
        g = torch.Generator().manual_seed(0)
        for p in clf.parameters():
            p.data.add_(0.1 * torch.randn(p.shape, generator=g))
        return ClassifierGuidance(**self.options, classifier=clf.eval().requires_grad_(False))


# -- with a real trained classifier ------------------------------------------------------------------------
TINY_TRAIN = TrainSpec(dataset="phantom", resolution=16, dataset_options={"train_patients": 2, "test_patients": 1},
                       noise_options={"num_timesteps": 100, "prediction_type": "x0"}, steps=5)


def test_a_trained_classifier_file_is_checked_against_the_sampling_process():
    method = ClassifierGuidance(classifier_size="tiny", classifier_steps=5)
    path = method.prepare(TINY_TRAIN, device="cpu")
    assert method.classifier_checkpoint == str(path)
    net, y = tiny_unet(), torch.tensor([0, 1])
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([5, 50])
    same = GaussianProcess(num_timesteps=100, prediction_type="epsilon")  # prediction type does not matter
    with torch.no_grad():
        assert method.model_fn(net, Condition(labels=y), guidance_scale=1.0, process=same)(x, t).shape == x.shape
    other = GaussianProcess(num_timesteps=200)
    with pytest.raises(IncompatibleError, match="noise options"):
        method.model_fn(net, Condition(labels=y), guidance_scale=1.0, process=other)(x, t)
    mismatch = ClassifierGuidance(classifier_checkpoint=str(path), classifier_size="tiny", classifier_steps=6)
    with pytest.raises(IncompatibleError, match="classifier_steps=6"):
        mismatch.model_fn(net, Condition(labels=y), guidance_scale=1.0, process=same)(x, t)


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """A tiny trained unconditional x0-prediction model and its tiny trained classifier (T = 100, 16x16)."""
    from cardiobench.engine.sample import load_model
    from cardiobench.engine.train import train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARDIOBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cg-cache")))
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            spec = classifier_spec_for(TINY_TRAIN, size="tiny", steps=300, batch_size=32)
            clf_path = ensure_classifier(spec, device="cpu")
            model_spec = TINY_TRAIN.replace(backbone_options={"size": "tiny", "channel_mults": [1, 2]}, steps=60,
                                            batch_size=16, lr=2e-3, ema_decay=0.0)
            net, proc, _, _ = load_model(train(model_spec, None, device="cpu").checkpoint, device="cpu")
            method = ClassifierGuidance(classifier_checkpoint=str(clf_path), classifier_size="tiny",
                                        classifier_steps=300)
            method.classifier_for(proc, torch.device("cpu"))  # loaded now, while the cache folder exists
        finally:
            torch.set_num_threads(before)
    return net, proc, method


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guidance_raises_the_classifier_s_probability_of_the_requested_group(trained_pair, sampler):
    """Samples guided toward class y are classified as y (by the guiding classifier, on the decoded masks at
    t = 0) with a higher probability than unguided samples from the same noise (measured: log p -1.80 -> -1.45
    with DDPM, -2.08 -> -1.22 with DDIM at w = 3)."""
    net, proc, method = trained_pair
    clf = method.classifier_for(proc, torch.device("cpu"))
    n = 40
    y = torch.arange(n) % 5
    shape = (n, 4, 16, 16)

    def score(scale: float) -> tuple[float, float]:
        smp = sampler_for(sampler, proc, steps=20)
        smp.inference_mode = False
        fn = method.model_fn(net, Condition(labels=y), guidance_scale=scale, process=proc)
        x0 = smp.sample(fn, shape, generator=torch.Generator().manual_seed(11))
        onehot = masks_to_onehot(onehot_to_masks(x0))
        with torch.no_grad():
            logp = torch.log_softmax(clf(onehot, torch.zeros(n, dtype=torch.long)), dim=1)
        return float(logp.gather(1, y[:, None]).mean()), float((logp.argmax(1) == y).float().mean())

    (lp0, acc0), (lp3, acc3) = score(0.0), score(3.0)
    assert lp3 > lp0 + 0.15, (lp0, lp3)
    assert acc3 > acc0, (acc0, acc3)
