"""Exponential moving average of a model's weights (Polyak averaging), as used by DDPM (Ho et al. 2020).

``ema = decay_t * ema + (1 - decay_t) * weights`` after every optimizer step, with the warm-up
``decay_t = min(decay, (1 + step) / (10 + step))`` (diffusers' ``EMAModel`` default), so early EMA
weights are not dominated by the random initialisation. Buffers are copied as is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """The averaged copy of ``model`` (``ema.model``, in eval mode, no gradients)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._src = model
        pairs = zip(self.model.parameters(), model.parameters(), strict=True)
        self._pairs = [(e, p) for e, p in pairs if p.dtype.is_floating_point and p.requires_grad]  # frozen: constant

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in, after optimizer step number ``step`` (0-based)."""
        w = 1.0 - self.decay_at(step)
        ema_p = [e for e, _ in self._pairs]
        src_p = [p.detach() for _, p in self._pairs]
        torch._foreach_lerp_(ema_p, src_p, w)
        for eb, b in zip(self.model.buffers(), self._src.buffers(), strict=True):
            eb.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
