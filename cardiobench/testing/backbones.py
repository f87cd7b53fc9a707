"""The contract every backbone plugin must meet, as a reusable pytest suite.

In your plugin's tests::

    from cardiobench.testing.backbones import BackboneContract

    class TestMyBackbone(BackboneContract):
        backbone = "my-net"                # the registered name
        options = {"width": 8}             # factory options for a small, fast instance

The suite builds the backbone through the registry, ``factory(in_channels, out_channels, **options)``,
and checks: output shape equals input shape at several sizes (and with extra input channels), the output
depends on the timestep (long and float timesteps accepted), class labels are accepted (with
``num_classes``), ControlNet-style residuals are accepted (zero residuals change nothing, others do),
the forward pass is deterministic and independent across the batch, and gradients reach every parameter.

Residual shapes come from ``residuals_like``, which by default uses the U-Net's separable parts
(``embed``/``encode``); override it if your backbone exposes them differently. Class attributes:

- ``sizes``: spatial sizes tried (H = W; must suit the backbone's downsampling);
- ``num_classes``: passed as ``num_classes=...`` for the class-label test (``None`` skips it);
- ``supports_residuals``: ``False`` skips the residual test;
- ``spatial_dims``: 2 (the default: inputs ``(batch, C, size, size)``) or 3: every check then runs on volumes
  ``(batch, C, depth, size, size)`` and the factory gets ``spatial_dims=3``; the backbone must be registered with
  ``spatial_dims`` metadata naming 3 (e.g. ``spatial_dims=(2, 3)``; absent means 2-D only) and its model must
  have ``spatial_dims == 3``;
- ``depth``: the D of the 3-D inputs (must suit the backbone's pooling of D, if any).

Registration metadata ``class_labels=False`` / ``residuals=False`` (the backbone takes no class labels / no
ControlNet residuals; conditioning methods that need them refuse it) skip those tests too.

The behavioural checks (time, class labels, residuals, determinism, batch independence, gradients) run on a
*nudged* model, every parameter moved by small seeded noise (``nudged``): a backbone that zero-initialises its
output layer (ADM, MONAI's ``DiffusionModelUNet``) outputs exact zeros at initialisation, which would hide its
wiring; the checks are about the wiring, not the initial values.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from cardiobench.plugins import get_component


class BackboneContract:
    """Subclass as ``Test...`` and set ``backbone`` and ``options``."""

    backbone: ClassVar[str] = "unet"
    options: ClassVar[dict[str, Any]] = {}
    in_channels: ClassVar[int] = 4
    out_channels: ClassVar[int] = 4
    sizes: ClassVar[tuple[int, ...]] = (16, 32)
    batch: ClassVar[int] = 3
    num_classes: ClassVar[int | None] = 5
    supports_residuals: ClassVar[bool] = True
    spatial_dims: ClassVar[int] = 2
    depth: ClassVar[int] = 4

    # -- helpers ---------------------------------------------------------------------------
    def make(self, in_channels: int | None = None, **extra: Any) -> torch.nn.Module:
        declared = tuple(self.metadata().get("spatial_dims", (2,)))
        if self.spatial_dims not in declared:
            pytest.fail(f"backbone {self.backbone!r} is checked with spatial_dims={self.spatial_dims} but registers "
                        f"spatial_dims={declared}: a backbone that supports it must declare it, e.g. "
                        "register(..., spatial_dims=(2, 3))")
        torch.manual_seed(0)
        factory = get_component("backbone", self.backbone)
        dims = {"spatial_dims": 3} if self.spatial_dims == 3 else {}  # 2-D: nothing new is passed
        return factory.create(in_channels or self.in_channels, self.out_channels,
                              **{**dims, **self.options, **extra})

    @staticmethod
    def nudged(model: torch.nn.Module, scale: float = 0.05) -> torch.nn.Module:
        """``model`` with every parameter moved by ``scale * N(0, 1)`` noise (seeded; in place)."""
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
        return model

    def spatial_shape(self, size: int) -> tuple[int, ...]:
        """``(size, size)`` in 2-D, ``(depth, size, size)`` in 3-D."""
        return (size, size) if self.spatial_dims == 2 else (self.depth, size, size)

    def inputs(self, size: int | None = None, channels: int | None = None, seed: int = 0):
        """x ``(batch, C, *spatial_shape(size))`` and t ``(batch,)`` long."""
        g = torch.Generator().manual_seed(seed)
        size = size or self.sizes[0]
        x = torch.randn(self.batch, channels or self.in_channels, *self.spatial_shape(size), generator=g)
        t = torch.randint(0, 1000, (self.batch,), generator=g)
        return x, t

    def residuals_like(self, model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor):
        """Zero residuals shaped like the backbone's skips and middle block: ``(list, tensor)``."""
        with torch.no_grad():
            skips, mid = model.encode(x, model.embed(t, batch=x.shape[0]))
        return [torch.zeros_like(s) for s in skips], torch.zeros_like(mid)

    def metadata(self) -> dict[str, Any]:
        return get_component("backbone", self.backbone).metadata

    # -- the contract ----------------------------------------------------------------------
    def test_is_registered_module(self):
        assert isinstance(self.make(), torch.nn.Module)
        assert get_component("backbone", self.backbone).summary, "give the factory a docstring or a summary"

    def test_spatial_dims(self):
        model = self.make()
        assert getattr(model, "spatial_dims", 2) == self.spatial_dims, (
            f"the model's spatial_dims attribute is {getattr(model, 'spatial_dims', None)!r}, "
            f"expected {self.spatial_dims}")

    def test_output_shape_equals_input_shape(self):
        model = self.nudged(self.make()).eval()
        for size in self.sizes:
            x, t = self.inputs(size)
            with torch.no_grad():
                out = model(x, t)
            assert out.shape == (self.batch, self.out_channels, *self.spatial_shape(size)), size
            assert torch.isfinite(out).all(), size

    def test_extra_input_channels(self):
        model = self.make(in_channels=self.in_channels + 1).eval()
        x, t = self.inputs(channels=self.in_channels + 1)
        with torch.no_grad():
            assert model(x, t).shape == (self.batch, self.out_channels, *x.shape[2:])

    def test_output_depends_on_time(self):
        model = self.nudged(self.make()).eval()
        x, _ = self.inputs()
        with torch.no_grad():
            a = model(x, torch.full((self.batch,), 1, dtype=torch.long))
            b = model(x, torch.full((self.batch,), 700, dtype=torch.long))
            c = model(x, torch.full((self.batch,), 700.0))
        assert not torch.allclose(a, b)
        torch.testing.assert_close(b, c)

    def test_deterministic(self):
        model = self.nudged(self.make()).eval()
        x, t = self.inputs()
        with torch.no_grad():
            assert torch.equal(model(x, t), model(x, t))
        a, b = self.make().state_dict(), self.make().state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), "two builds with the same seed differ"

    def test_batch_items_are_independent(self):
        model = self.nudged(self.make()).eval()
        x, t = self.inputs()
        with torch.no_grad():
            whole = model(x, t)
            first = model(x[:1], t[:1])
        torch.testing.assert_close(whole[:1], first, rtol=1e-4, atol=1e-5)

    def test_class_labels(self):
        if self.num_classes is None or self.metadata().get("class_labels", True) is False:
            pytest.skip("no class conditioning")
        model = self.nudged(self.make(num_classes=self.num_classes)).eval()
        x, t = self.inputs()
        with torch.no_grad():
            y0 = model(x, t, class_labels=torch.zeros(self.batch, dtype=torch.long))
            y1 = model(x, t, class_labels=torch.ones(self.batch, dtype=torch.long))
            none = model(x, t)
            null = model(x, t, class_labels=torch.full((self.batch,), self.num_classes, dtype=torch.long))
        assert not torch.allclose(y0, y1)
        torch.testing.assert_close(none, null)  # no labels = the null label (classifier-free guidance)

    def test_residuals(self):
        if not self.supports_residuals or self.metadata().get("residuals", True) is False:
            pytest.skip("no residual inputs")
        model = self.nudged(self.make()).eval()
        x, t = self.inputs()
        skips, mid = self.residuals_like(model, x, t)
        with torch.no_grad():
            plain = model(x, t)
            zero = model(x, t, residuals=(skips, mid))
            bumped = model(x, t, residuals=([s + 0.5 for s in skips], mid + 0.5))
        torch.testing.assert_close(plain, zero)
        assert not torch.allclose(plain, bumped)

    def test_gradients_reach_every_parameter(self):
        labels = bool(self.num_classes) and self.metadata().get("class_labels", True) is not False
        model = self.nudged(self.make(num_classes=self.num_classes) if labels else self.make())
        model.train()
        x, t = self.inputs()
        kwargs = {"class_labels": torch.arange(self.batch) % self.num_classes} if labels else {}
        out = model(x, t, **kwargs)
        (out - x[:, : self.out_channels]).pow(2).mean().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient for {missing[:5]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0
