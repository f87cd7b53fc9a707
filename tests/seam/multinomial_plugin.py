"""A third-party-style plugin of a non-Gaussian family: multinomial diffusion on label maps.

Multinomial diffusion (Hoogeboom, Nielsen, Jaini, Forré & Welling, NeurIPS 2021), with strided ancestral
sampling. It proves the representation seam: it registers through the public hooks, trains and samples
through ``cardiobench run`` with no edit of ``cardiobench/engine``, and reuses the built-in ``onehot``
representation (states are one-hot maps in [-1, 1], decoded by argmax).

Forward process over K classes, timesteps t = 0..T-1 (0 least noise; -1 is the data)::

    q(x_t | x_0) = Cat(x_t; abar_t x_0 + (1 - abar_t) / K),      abar_t = cos-schedule, abar_{-1} = 1
    q(x_s | x_t, x_0) ∝ [a_{t|s} x_t + (1 - a_{t|s}) / K] ⊙ [abar_s x_0 + (1 - abar_s) / K],  a_{t|s} = abar_t / abar_s

The network sees x_t (one-hot in [-1, 1]) and predicts logits of x_0 (x0-parameterisation); the model's
reverse step plugs the predicted probabilities into the posterior. Loss: the variational bound term
KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) (for t = 0: -log p(x_0 | x_t)) + lambda * cross-entropy(x_0, x0_hat).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from cardiobench.diffusion.base import SampleStep
from cardiobench.hookspecs import hookimpl

FAMILY = "multinomial"
EPS = 1e-12


def _probs(x: torch.Tensor) -> torch.Tensor:
    """One-hot in [-1, 1] -> probabilities in [0, 1]."""
    return (x + 1.0) / 2.0


class MultinomialProcess:
    family = FAMILY

    def __init__(self, num_timesteps: int = 100, num_classes: int = 4, hybrid_lambda: float = 0.01) -> None:
        self.num_timesteps, self.num_classes, self.hybrid_lambda = int(num_timesteps), int(num_classes), hybrid_lambda
        steps = torch.arange(self.num_timesteps + 1, dtype=torch.float64)
        f = torch.cos((steps / self.num_timesteps + 0.008) / 1.008 * math.pi / 2) ** 2
        abar = (f / f[0]).clamp(min=1e-6)
        self._abar = abar  # index t + 1 for timestep t; index 0: the data (abar = 1)

    def config(self) -> dict:
        return {"num_timesteps": self.num_timesteps, "num_classes": self.num_classes,
                "hybrid_lambda": self.hybrid_lambda}

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t for integer timesteps (-1: 1), float64 (B,)."""
        return self._abar[(t.long() + 1).cpu()]

    def marginal(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) probabilities; x0 probabilities (B, K, ...)."""
        a = self.abar(t).to(x0).view(-1, *([1] * (x0.dim() - 1)))
        return a * x0 + (1 - a) / self.num_classes

    def posterior(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q(x_s | x_t, x_0) for s < t (x_t one-hot probabilities, x0 probabilities), normalised over K."""
        shape = (-1, *([1] * (x0.dim() - 1)))
        a_ts = (self.abar(t) / self.abar(s)).to(x0).view(shape)
        left = a_ts * x_t + (1 - a_ts) / self.num_classes
        right = self.marginal(x0, s)
        theta = left * right
        return theta / theta.sum(1, keepdim=True)

    def draw(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A one-hot sample in [-1, 1] of the categorical ``probs`` (B, K, ...), by inverse CDF on CPU uniforms."""
        u = torch.rand((probs.shape[0], 1, *probs.shape[2:]), generator=generator).to(probs)
        idx = (probs.cumsum(1) < u).sum(1).clamp(max=self.num_classes - 1)
        return torch.nn.functional.one_hot(idx, self.num_classes).movedim(-1, 1).to(probs) * 2 - 1

    # -- the seam: what the engine asks of every process -------------------------------------------------
    def prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T: uniform over the K classes, one-hot in [-1, 1]."""
        return self.draw(torch.full(shape, 1.0 / self.num_classes), generator)

    def training_loss(self, model_fn, x0: torch.Tensor, generator: torch.Generator, *, loss: str = "mse"
                      ) -> torch.Tensor:
        """Hybrid loss (L_vb term + lambda * CE); ``loss`` (a linear-Gaussian setting) does not apply."""
        b = x0.shape[0]
        t = torch.randint(0, self.num_timesteps, (b,), generator=generator)
        p0 = _probs(x0)
        x_t = self.draw(self.marginal(p0, t.to(x0.device)), generator)
        t = t.to(x0.device)
        logits = model_fn(x_t, t).float()
        p0_hat = logits.softmax(1)
        s = t - 1
        true = self.posterior(_probs(x_t), p0, t, s)
        pred = self.posterior(_probs(x_t), p0_hat, t, s)
        kl = (true * ((true + EPS).log() - (pred + EPS).log())).sum(1)
        nll = -((pred + EPS).log() * p0).sum(1)  # t = 0: -log p(x_0 | x_t)
        vb = torch.where((t == 0).view(-1, *([1] * (kl.dim() - 1))), nll, kl)
        ce = -(logits.log_softmax(1) * p0).sum(1)
        return vb.mean() + self.hybrid_lambda * ce.mean()


class MultinomialSampler:
    families = (FAMILY,)
    inference_mode = True

    def __init__(self, process: MultinomialProcess) -> None:
        self.process = process
        self.timesteps = torch.arange(process.num_timesteps - 1, -1, -1)

    def config(self) -> dict:
        return {"num_inference_steps": len(self.timesteps)}

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        n = self.process.num_timesteps if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= self.process.num_timesteps:
            raise ValueError(f"steps must be in 1..{self.process.num_timesteps}, got {n}")
        ts = torch.linspace(self.process.num_timesteps - 1, 0, n).round().long()
        self.timesteps = torch.unique_consecutive(ts)

    def step(self, model_output: torch.Tensor, index: int, x_t: torch.Tensor, noise=None,
             generator: torch.Generator | None = None) -> SampleStep:
        ts = self.timesteps
        t = ts[index].expand(x_t.shape[0])
        s = (ts[index + 1] if index + 1 < len(ts) else torch.tensor(-1)).expand(x_t.shape[0])
        p0_hat = model_output.float().softmax(1)
        probs = self.process.posterior(_probs(x_t), p0_hat, t, s)
        return SampleStep(index, int(ts[index]), self.process.draw(probs, generator), p0_hat * 2 - 1)

    def iter_sample(self, model_fn, shape, *, generator=None, device="cpu", dtype=torch.float32,
                    x_T=None) -> Iterator[SampleStep]:
        x = (x_T if x_T is not None else self.process.prior(shape, generator)).to(device, dtype)
        ctx = torch.inference_mode if self.inference_mode else torch.no_grad
        for i, t in enumerate(self.timesteps.tolist()):
            with ctx():
                out = model_fn(x, torch.full((shape[0],), t, dtype=torch.long, device=device))
                step = self.step(out, i, x, generator=generator)
            x = step.x_t
            yield step

    def sample(self, model_fn, shape, *, generator=None, device="cpu", dtype=torch.float32, x_T=None,
               callback=None) -> torch.Tensor:
        last = None
        for last in self.iter_sample(model_fn, shape, generator=generator, device=device, dtype=dtype, x_T=x_T):
            if callback is not None:
                callback(last)
        return last.x_t


@hookimpl
def register_noise_processes(register):
    register("multinomial", MultinomialProcess, family=FAMILY)


@hookimpl
def register_samplers(register):
    register("multinomial-ancestral", MultinomialSampler, families=(FAMILY,))
