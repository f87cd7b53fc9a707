"""Classifier-free guidance (Ho & Salimans 2022): one network, conditional and unconditional at once.

Training drops the pathology label to the learned null token (the backbone's ``null_class`` row of its class
embedding) with probability ``p_uncond``. Sampling mixes the two predictions::

    eps_hat = eps_u + s (eps_c - eps_u)          (s = guidance scale; s = 1: the conditional model)

The mix is applied to the network output ``m`` directly: for every prediction type (epsilon, v, x0) eps is an
affine function of m at fixed (x_t, t), ``eps = a x_t + b m``, and the weights ``(1 - s) + s`` sum to one, so
mixing m is exactly mixing eps. For the ``categorical`` family (D3PM) the network outputs logits of x_0, and the
same mix is guidance on the logits: ``log p~_u + s (log p~_c - log p~_u)`` up to a constant, i.e.
``p~ ∝ p~_u^(1-s) p~_c^s`` (docs/conditioning.md). Both halves go through the network in one batched forward.
``s = 1`` (plain conditional) and ``s = 0`` (plain unconditional) skip the half they do not need.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from cardiobench.conditioning.base import BackboneFactory, Condition, ConditioningMethod, drop_labels
from cardiobench.data.base import GROUPS
from cardiobench.diffusion.base import ModelFn
from cardiobench.errors import CardiobenchError, IncompatibleError


def null_class_of(net: nn.Module) -> int:
    """The backbone's "no label" class id; a clear error for a backbone without class labels."""
    null = getattr(net, "null_class", None)
    if null is None:
        raise IncompatibleError(
            f"backbone {type(net).__name__} has no null class label, needed by classifier-free guidance",
            "use a backbone that takes num_classes and exposes null_class (e.g. unet)",
        )
    return int(null)


def require_labels(cond: Condition, method: str) -> torch.Tensor:
    if cond.labels is None:
        raise CardiobenchError(f"{method} needs class labels (the pathology group of each sample)")
    return cond.labels


class ClassifierFreeGuidance(ConditioningMethod):
    """Classifier-free guidance (Ho & Salimans 2022): label dropout in training, mixed predictions in sampling.

    Options: ``p_uncond`` (probability of training a batch item without its label, default 0.1),
    ``num_classes`` (default 5, the pathology groups).
    """

    name = "classifier-free"
    condition = "label"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    #: the network output is mixed / conditioned as it is, whatever it means (eps, v, x0, or x0 logits)
    families: ClassVar[tuple[str, ...]] = ("linear-gaussian", "categorical")

    def __init__(self, p_uncond: float = 0.1, num_classes: int = len(GROUPS)):
        if not 0.0 <= float(p_uncond) < 1.0:
            raise CardiobenchError(f"p_uncond must be in [0, 1), got {p_uncond}",
                                   "e.g. --set conditioning.options.p_uncond=0.1")
        if int(num_classes) < 1:
            raise CardiobenchError(f"num_classes must be >= 1, got {num_classes}")
        self.p_uncond = float(p_uncond)
        self.num_classes = int(num_classes)

    def config(self) -> dict[str, Any]:
        return {"p_uncond": self.p_uncond, "num_classes": self.num_classes}

    def build_network(self, make_backbone: BackboneFactory, in_channels: int, out_channels: int) -> nn.Module:
        try:
            net = make_backbone(in_channels, out_channels, num_classes=self.num_classes)
        except TypeError as exc:
            raise IncompatibleError(f"the backbone does not take class labels: {exc}",
                                    "use a backbone with a num_classes option (e.g. unet)") from None
        null_class_of(net)
        return net

    def forward_train(self, net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: Condition,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        labels = drop_labels(require_labels(cond, self.name), null_class_of(net), self.p_uncond, generator)
        return net(x_t, t, class_labels=labels)

    def model_fn(self, net: nn.Module, cond: Condition, *, guidance_scale: float = 1.0,
                 process: Any = None) -> ModelFn:
        s = float(guidance_scale)
        y = require_labels(cond, self.name)
        null = torch.full_like(y, null_class_of(net))
        if s == 1.0:
            return lambda x, t: net(x, t, class_labels=y)
        if s == 0.0:
            return lambda x, t: net(x, t, class_labels=null)
        y_both = torch.cat([y, null])

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = net(torch.cat([x, x]), torch.cat([t, t]), class_labels=y_both)
            m_c, m_u = out.chunk(2)
            return torch.lerp(m_u, m_c, s)  # m_u + s (m_c - m_u)

        return guided
