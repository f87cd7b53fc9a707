"""Classifier guidance (Dhariwal & Nichol 2021): an unconditional model steered by a noisy classifier's gradient.

The diffusion network is the plain unconditional one (this method never trains it). A separately trained
time-conditioned classifier ``p_phi(y | x_t, t)`` (``cardiobench.conditioning.classifier``, trained on the same
forward process) supplies the gradient of its log-probability of the requested pathology group ``y``. With the
noise estimate ``eps = process.predict_eps(net(x_t, t), x_t, t)`` the guided estimate is (Dhariwal & Nichol
2021, eq. 14, Algorithm 2)::

    eps_hat = eps - sigma_t * w * grad_{x_t} log p_phi(y | x_t, t)          (w = guidance scale)

and the sampler receives ``process.model_output_from_eps(eps_hat, x_t, t)``, the network output that means
``eps_hat``, so DDPM and DDIM (and every prediction type) use it unchanged. ``w = 0`` is the unguided model:
``model_fn`` then returns ``net(x, t)`` itself, bit for bit.

**The basis.** The processes of the ``linear-gaussian`` family are ``u_t = alpha_t ⊙ u_0 + sigma_t ⊙ eps`` in an
orthonormal basis ``u = V x`` (V = I for Gaussian DDPM, the 2-D DCT for blurring diffusion, where ``alpha_t`` is
per frequency). The score of the noisy marginal is ``grad_u log p(u_t) = -eps_u / sigma_t`` per coefficient, so
adding the classifier's score ``grad_u log p(y | u_t)`` gives ``eps_hat_u = eps_u - sigma_t ⊙ w ⊙ grad_u log
p(y | u_t)``. The classifier reads pixel-space ``x_t`` (like the denoiser), so autograd gives ``g = grad_x``;
since ``x = V^T u`` with V orthonormal, ``grad_u = V g``. The update applied is therefore::

    eps_hat = eps - V^T (sigma_t ⊙ w ⊙ V g)

which is exact for any per-coefficient ``sigma_t`` and reduces to ``eps - sigma_t w g`` when ``sigma_t`` is a
scalar (Gaussian DDPM; also blurring diffusion as implemented here, whose noise level is the same for every
frequency while its ``alpha_t`` is not). Taking the gradient in pixel space and mapping it with V, rather than
differentiating with respect to DCT coefficients directly, gives the same vector (V is orthonormal) with one
fewer inverse transform in the graph.

The sampler must run the network outside ``torch.inference_mode`` (``needs_grad``): set
``sampler.inference_mode = False``; the gradient is taken under ``torch.enable_grad`` on a detached copy of
``x_t``, so the sampler's own arithmetic stays under ``torch.no_grad``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cardiobench.conditioning.base import Condition, ConditioningMethod
from cardiobench.conditioning.classifier import (
    DEFAULT_SIZE,
    DEFAULT_STEPS,
    SIZES,
    ClassifierSpec,
    classifier_spec_for,
    ensure_classifier,
    forward_process_options,
    load_classifier,
)
from cardiobench.diffusion.base import ModelFn
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.progress import Progress
from cardiobench.specs import TrainSpec


def classifier_log_prob_grad(classifier: nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
                             ) -> torch.Tensor:
    """``grad_x log softmax(classifier(x, t))[y]`` per sample, (B, C, H, W), in float32 or ``x``'s dtype.

    Autograd on a detached copy of ``x`` under ``torch.enable_grad``; the classifier must not mix samples
    (no batch statistics), so the gradient of the batch sum is each sample's own gradient.
    """
    if torch.is_inference_mode_enabled():
        raise CardiobenchError("classifier guidance needs autograd but runs under torch.inference_mode",
                               "set sampler.inference_mode = False before sampling (method.needs_grad is True)")
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logp = F.log_softmax(classifier(xg, t).float(), dim=-1)
        selected = logp.gather(1, y.to(logp.device).long()[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, xg)
    return grad.to(x.dtype)


def guided_eps(process: Any, eps: torch.Tensor, grad: torch.Tensor, t: torch.Tensor, scale: float) -> torch.Tensor:
    """``eps - V^T (sigma_t ⊙ scale ⊙ V grad)``: Dhariwal & Nichol eq. 14 in the process's basis (pixel space)."""
    sigma = process.sigma(t, dtype=eps.dtype)
    if getattr(process, "identity_basis", False):
        return eps - (sigma * scale) * grad
    return eps - process.from_basis((sigma * scale) * process.to_basis(grad))


class ClassifierGuidance(ConditioningMethod):
    """Classifier guidance (Dhariwal & Nichol 2021): a noisy classifier's gradient steers an unconditional model.

    Options: ``classifier_size`` (``tiny`` or ``small``) and ``classifier_steps`` name the classifier trained for
    the model's data and forward process (``classifier_spec``); ``classifier_checkpoint`` is the path of its file
    (filled by ``prepare``, which the pipeline calls; not part of ``config``). ``classifier`` (Python API only)
    supplies a ready ``(x_t, t) -> logits`` module instead of a file.
    """

    name = "classifier-guidance"
    condition = "label"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    families: ClassVar[tuple[str, ...]] = ("linear-gaussian",)
    trains_network: ClassVar[bool] = False
    needs_grad: ClassVar[bool] = True

    def __init__(self, classifier_checkpoint: str | None = None, classifier_size: str = DEFAULT_SIZE,
                 classifier_steps: int = DEFAULT_STEPS, *, classifier: nn.Module | None = None):
        if classifier_size not in SIZES:
            raise CardiobenchError(f"unknown classifier size {classifier_size!r}",
                                   f"use one of: {', '.join(SIZES)} (conditioning.options.classifier_size)")
        if not isinstance(classifier_steps, int) or isinstance(classifier_steps, bool) or classifier_steps < 1:
            raise CardiobenchError(f"classifier_steps must be a positive integer, got {classifier_steps!r}")
        self.classifier_checkpoint = str(classifier_checkpoint) if classifier_checkpoint is not None else None
        self.classifier_size = classifier_size
        self.classifier_steps = int(classifier_steps)
        self._classifier = classifier
        self._classifier_spec: ClassifierSpec | None = None
        self._loaded: dict[str, nn.Module] = {}

    def config(self) -> dict[str, Any]:
        return {"classifier_size": self.classifier_size, "classifier_steps": self.classifier_steps}

    # -- the classifier ----------------------------------------------------------------------------------
    def classifier_spec(self, train_spec: TrainSpec) -> ClassifierSpec:
        """The classifier this method uses with a diffusion model of ``train_spec`` (same data, same process)."""
        return classifier_spec_for(train_spec, size=self.classifier_size, steps=self.classifier_steps)

    def prepare(self, train_spec: TrainSpec, *, device: str | torch.device = "auto", data_root: str | None = None,
                retrain: bool = False, progress: Progress | None = None, **_ignored: Any) -> Path:
        """Get (reuse, copy from the package, or train) the classifier for ``train_spec``; sets
        ``classifier_checkpoint``. ``progress`` shows a training (default: silent); other keywords of the
        ``ConditioningMethod.prepare`` contract that this method does not use are ignored."""
        path = ensure_classifier(self.classifier_spec(train_spec), device=device, data_root=data_root,
                                 retrain=retrain, progress=progress)
        self.classifier_checkpoint = str(path)
        self._loaded = {}
        return path

    def classifier_for(self, process: Any, device: torch.device) -> nn.Module:
        """The classifier module on ``device``, checked against the sampling ``process``."""
        if self._classifier is not None:
            return self._classifier.to(device)
        if self.classifier_checkpoint is None:
            raise CardiobenchError("classifier guidance has no classifier checkpoint",
                                   "train one with `cardiobench classifier train` and set classifier_checkpoint "
                                   "(cardiobench run does this itself)")
        key = str(device)
        if key not in self._loaded:
            model, spec, _ = load_classifier(self.classifier_checkpoint, device)
            if (spec.size, spec.steps) != (self.classifier_size, self.classifier_steps):
                raise IncompatibleError(
                    f"classifier {self.classifier_checkpoint} is size {spec.size} trained {spec.steps} steps, but "
                    f"the method is configured with classifier_size={self.classifier_size} and "
                    f"classifier_steps={self.classifier_steps}", "set the options to match the file")
            self._classifier_spec = spec
            self._loaded = {key: model}
        spec = self._classifier_spec
        assert spec is not None
        if process is not None and forward_process_options(process) != spec.noise_options:
            raise IncompatibleError(
                f"classifier {self.classifier_checkpoint} was trained on noise options {spec.noise_options}, "
                f"the model samples with {forward_process_options(process)}",
                "train a classifier for this model's noise process (`cardiobench classifier train`)")
        return self._loaded[key]

    # -- training and sampling ------------------------------------------------------------------------------
    def forward_train(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Condition,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        raise CardiobenchError("classifier guidance does not train the diffusion network",
                               "train the unconditional model (no --conditioning) and its classifier "
                               "(`cardiobench classifier train`)")

    def model_fn(self, net: nn.Module, cond: Condition, *, guidance_scale: float = 1.0,
                 process: Any = None) -> ModelFn:
        w = float(guidance_scale)
        if w == 0.0:
            return lambda x, t: net(x, t)
        if process is None:
            raise CardiobenchError("classifier guidance needs the noise process to guide the noise estimate")
        if cond.labels is None:
            raise CardiobenchError("classifier guidance needs class labels (the pathology group of each sample)")
        labels = cond.labels
        classifiers: dict[str, nn.Module] = {}  # loaded and checked once per device, not per step

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            key = str(x.device)
            if key not in classifiers:
                classifiers[key] = self.classifier_for(process, x.device)
            classifier = classifiers[key]
            m = net(x, t)
            eps = process.predict_eps(m, x, t)
            grad = classifier_log_prob_grad(classifier, x, t, labels)
            return process.model_output_from_eps(guided_eps(process, eps, grad, t, w), x, t)

        return guided


__all__ = ["ClassifierGuidance", "classifier_log_prob_grad", "guided_eps"]
