"""The contract every conditioning method must meet, as a reusable pytest suite.

In your plugin's tests::

    from cardiobench.testing.conditioning import ConditioningContract

    class TestMyMethod(ConditioningContract):
        method = "my-method"            # the registered name
        options = {"strength": 0.5}     # factory options

The suite builds the method through the registry and a small ``unet`` through ``build_network`` and checks:
the registration metadata (``condition``, ``tasks``, ``families``), ``config()`` is plain JSON and rebuilds
an equal method, the network's training output has the shape of ``x_t`` and is deterministic for a seeded
generator, gradients reach the parameters the method trains (and only those), the sampling ``model_fn``
returns the right shape and depends on the condition, and a missing condition is a clear error.

Methods that do not train the diffusion network (``trains_network=False``, e.g. classifier guidance) skip the
training checks; override ``sampling_method`` to return a method ready to sample (with its auxiliary model).

``depth = D`` runs every check on volumes ``(B, C, D, size, size)`` with a 3-D backbone (``spatial_dims=3``);
the method must then declare ``spatial_dims`` containing 3 in its registration metadata.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
import torch

from cardiobench.conditioning.base import CONDITIONS, Condition, ConditioningMethod
from cardiobench.errors import CardiobenchError
from cardiobench.metrics.base import TASKS
from cardiobench.plugins import get_component


class ConditioningContract:
    """Subclass as ``Test...`` and set ``method`` and ``options``."""

    method: ClassVar[str] = "classifier-free"
    options: ClassVar[dict[str, Any]] = {}
    backbone: ClassVar[str] = "unet"
    backbone_options: ClassVar[dict[str, Any]] = {"size": "tiny", "channel_mults": [1, 2]}
    channels: ClassVar[int] = 4
    size: ClassVar[int] = 16
    batch: ClassVar[int] = 4
    num_classes: ClassVar[int] = 5
    #: slices per volume: run the suite on 3-D volumes (None: 2-D slices)
    depth: ClassVar[int | None] = None

    @property
    def spatial(self) -> tuple[int, ...]:
        return (self.size, self.size) if self.depth is None else (self.depth, self.size, self.size)

    # -- helpers ---------------------------------------------------------------------------
    def component(self):
        return get_component("conditioning", self.method)

    def make(self) -> ConditioningMethod:
        return self.component().create(**self.options)

    def sampling_method(self) -> ConditioningMethod:
        """The method as the sampler uses it (override to attach e.g. a trained classifier)."""
        return self.make()

    def network(self, method: ConditioningMethod | None = None) -> torch.nn.Module:
        backbone = get_component("backbone", self.backbone)

        geometry = {} if self.depth is None else {"spatial_dims": 3}

        def make_backbone(cin: int, cout: int, **extra: Any) -> torch.nn.Module:
            return backbone.create(cin, cout, **{**self.backbone_options, **geometry, **extra})

        torch.manual_seed(0)
        method = method or self.make()
        if method.trains_network:
            return method.build_network(make_backbone, self.channels, self.channels)
        return make_backbone(self.channels, self.channels)

    def condition(self, seed: int = 0, batch: int | None = None) -> Condition:
        g = torch.Generator().manual_seed(seed)
        b = batch or self.batch
        labels = torch.randint(0, self.num_classes, (b,), generator=g)
        images = torch.rand(b, 1, *self.spatial, generator=g) * 2 - 1
        return Condition(labels=labels, images=images)

    def inputs(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed + 100)
        x = torch.randn(self.batch, self.channels, *self.spatial, generator=g)
        t = torch.randint(0, 1000, (self.batch,), generator=g)
        return x, t

    def process(self):
        return get_component("noise", "gaussian").create(num_timesteps=1000)

    # -- registration ------------------------------------------------------------------------
    def test_metadata(self):
        assert self.component().summary, "give the factory a docstring or a summary"
        meta = self.component().metadata
        assert meta.get("condition") in CONDITIONS
        tasks = tuple(meta.get("tasks", ()))
        assert tasks and set(tasks) <= set(TASKS)
        assert tuple(meta.get("families", ()))
        method = self.make()
        assert method.condition == meta["condition"] and tuple(method.tasks) == tasks
        if self.depth is not None:
            assert 3 in tuple(meta.get("spatial_dims", (2,))), (
                f"{self.method} is tested on volumes: register it with spatial_dims=(2, 3)")

    def test_config_is_json_and_rebuilds_the_method(self):
        method = self.make()
        cfg = method.config()
        assert json.loads(json.dumps(cfg)) == cfg
        assert self.component().create(**cfg).config() == cfg

    # -- training ----------------------------------------------------------------------------
    def _skip_untrained(self, method: ConditioningMethod) -> None:
        if not method.trains_network:
            pytest.skip(f"{self.method} does not train the diffusion network")

    def test_training_output_shape_and_determinism(self):
        method = self.make()
        self._skip_untrained(method)
        net = self.network(method)
        x, t = self.inputs()
        cond = self.condition()
        outs = [method.forward_train(net, x, t, cond, torch.Generator().manual_seed(3)) for _ in range(2)]
        assert outs[0].shape == x.shape
        assert torch.isfinite(outs[0]).all()
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)

    def test_gradients_reach_exactly_the_trained_parameters(self):
        method = self.make()
        self._skip_untrained(method)
        net = self.network(method)
        for p in net.parameters():  # move zero-initialised layers off zero so every gradient path is open
            p.data.add_(0.01 * torch.randn_like(p))
        x, t = self.inputs()
        out = method.forward_train(net, x, t, self.condition(), torch.Generator().manual_seed(0))
        out.square().mean().backward()
        trained = {id(p) for p in method.trainable_parameters(net)}
        assert trained, "the method trains no parameter"
        for name, p in net.named_parameters():
            if id(p) in trained:
                assert p.grad is not None, f"no gradient reaches trained parameter {name}"
            else:
                assert p.grad is None, f"frozen parameter {name} received a gradient"

    # -- sampling ----------------------------------------------------------------------------
    def test_model_fn_shape_and_dependence_on_the_condition(self):
        method = self.sampling_method()
        net = self.network(method)
        for p in net.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
        x, t = self.inputs()
        scale = 2.0 if method.condition == "label" else 1.0
        with torch.enable_grad() if method.needs_grad else torch.no_grad():
            a = method.model_fn(net, self.condition(0), guidance_scale=scale, process=self.process())(x, t)
            b = method.model_fn(net, self.condition(1), guidance_scale=scale, process=self.process())(x, t)
        assert a.shape == x.shape and torch.isfinite(a).all()
        assert not torch.equal(a, b), "the output does not depend on the condition"

    def test_missing_condition_is_a_clear_error(self):
        method = self.sampling_method()
        net = self.network(method)
        with pytest.raises(CardiobenchError):
            method.model_fn(net, Condition(), guidance_scale=1.0, process=self.process())(*self.inputs())
