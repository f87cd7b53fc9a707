"""The contract every representation plugin must meet, as a reusable pytest suite.

A representation turns label maps into the tensor a diffusion model is trained on and back
(``cardiobench.diffusion.representation.Representation``). In your plugin's tests::

    from cardiobench.testing.representations import RepresentationContract

    class TestMyRepresentation(RepresentationContract):
        representation_name = "my-bits"          # as registered
        representation_options = {"num_classes": 4}

The suite builds the representation through the registry and checks: the registration (a ``Representation``,
a summary, ``families`` metadata if present is a tuple of strings), ``channels`` / ``num_classes`` /
``spatial_dims`` / ``shape()``, ``encode`` shapes and dtype (float32, finite; uint8 and int64 labels alike),
the round trip ``decode(encode(m)) == m`` on random label maps holding every class (square and non-square),
``decode`` of arbitrary real tensors (noisy states, huge values, zeros) giving uint8 labels in
``0..num_classes-1``, the device is preserved, inputs are not modified, batch items are independent, and
``config()`` is JSON from which the factory rebuilds a representation that encodes and decodes identically.

**Volumes.** The label maps follow the representation's ``spatial_dims``: (B, H, W) slices or (B, D, H, W)
volumes (cubes of side ``size``, and non-square (4, 6, 8)). To check a representation on volumes, build it for them
and say so, so that a 2-D build cannot pass silently::

    class TestMyRepresentation3D(RepresentationContract):
        representation_name = "my-bits"
        representation_options = {"num_classes": 4, "spatial_dims": 3}
        expected_spatial_dims = 3
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch

from cardiobench.diffusion.representation import Representation
from cardiobench.plugins import get_component


class RepresentationContract:
    """Subclass as ``Test...`` and set ``representation_name`` (and ``representation_options``)."""

    #: registered name of the representation under test
    representation_name: ClassVar[str] = ""
    #: factory options
    representation_options: ClassVar[dict[str, Any]] = {}
    #: batch size and spatial side used by the checks
    batch: ClassVar[int] = 4
    size: ClassVar[int] = 8
    #: the ``spatial_dims`` the representation must report (3: the suite runs on volumes); None: whatever it says
    expected_spatial_dims: ClassVar[int | None] = None

    # -- helpers ---------------------------------------------------------------------------
    def component(self):
        assert self.representation_name, "set representation_name in your RepresentationContract subclass"
        return get_component("representation", self.representation_name)

    def make(self, **overrides: Any) -> Representation:
        return self.component().create(**{**self.representation_options, **overrides})

    def spatial(self, rep: Representation, square: bool = True) -> tuple[int, ...]:
        if square:
            return (self.size,) * rep.spatial_dims
        return tuple(self.size - 2 * i for i in range(rep.spatial_dims))[::-1]  # e.g. (6, 8)

    def masks(self, rep: Representation, seed: int = 0, square: bool = True) -> torch.Tensor:
        """(B, *spatial) int64 labels, uniform over ``0..num_classes-1``; the first item holds every class (as many
        as it has pixels)."""
        g = torch.Generator().manual_seed(seed)
        m = torch.randint(0, rep.num_classes, (self.batch, *self.spatial(rep, square)), generator=g)
        k = min(rep.num_classes, m[0].numel())  # grey levels (256) may outnumber the pixels
        m[0].view(-1)[:k] = torch.arange(k)
        return m

    def noisy(self, rep: Representation, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
        """An arbitrary real tensor of the encoded shape: what a sampler may hand ``decode``."""
        g = torch.Generator().manual_seed(seed)
        return scale * torch.randn((self.batch, *rep.shape(self.spatial(rep))), generator=g)

    # -- registration ----------------------------------------------------------------------
    def test_registered_as_a_representation(self):
        comp = self.component()
        rep = self.make()
        assert isinstance(rep, Representation), "the factory must return a cardiobench Representation"
        assert comp.summary, "give the factory a docstring or a summary"
        if "families" in comp.metadata:
            fams = comp.metadata["families"]
            assert isinstance(fams, tuple) and fams and all(isinstance(f, str) and f for f in fams), (
                f"metadata 'families' must be a non-empty tuple of process family names, got {fams!r}")

    def test_sizes(self):
        rep = self.make()
        assert isinstance(rep.channels, int) and rep.channels >= 1
        assert isinstance(rep.num_classes, int) and rep.num_classes >= 2
        assert rep.spatial_dims in (2, 3)
        if self.expected_spatial_dims is not None:
            assert rep.spatial_dims == self.expected_spatial_dims, (
                f"built with {self.representation_options}, the representation has spatial_dims {rep.spatial_dims}, "
                f"not {self.expected_spatial_dims}")
        assert rep.shape(self.size) == (rep.channels, *(self.size,) * rep.spatial_dims)
        other = self.spatial(rep, square=False)
        assert rep.shape(other) == (rep.channels, *other)

    # -- encode / decode -------------------------------------------------------------------
    def test_encode_shape_and_dtype(self):
        rep = self.make()
        for square in (True, False):
            m = self.masks(rep, square=square)
            x = rep.encode(m)
            assert x.shape == (self.batch, rep.channels, *m.shape[1:]), x.shape
            assert x.dtype == torch.float32, x.dtype
            assert torch.isfinite(x).all()
            assert torch.equal(rep.encode(m.to(torch.uint8)), x), "uint8 and int64 labels must encode alike"

    def test_round_trip_every_class(self):
        rep = self.make()
        for seed, square in ((0, True), (1, True), (2, False)):
            m = self.masks(rep, seed, square)
            assert set(range(min(rep.num_classes, m[0].numel()))) <= set(m.unique().tolist())
            out = rep.decode(rep.encode(m))
            assert out.dtype == torch.uint8 and out.shape == m.shape, (out.dtype, out.shape)
            assert torch.equal(out.long(), m), "decode(encode(m)) must give m back"

    def test_round_trip_of_a_single_class_map(self):
        rep = self.make()
        for k in (0, rep.num_classes - 1):
            m = torch.full((2, *self.spatial(rep)), k, dtype=torch.long)
            assert torch.equal(rep.decode(rep.encode(m)).long(), m)

    def test_decode_of_any_real_tensor_gives_valid_labels(self):
        rep = self.make()
        cases = [self.noisy(rep, seed, scale) for seed, scale in ((0, 1.0), (1, 0.01), (2, 1e3))]
        cases.append(torch.zeros((self.batch, *rep.shape(self.size))))
        for x in cases:
            out = rep.decode(x)
            assert out.dtype == torch.uint8 and out.shape == (self.batch, *rep.mask_shape(self.size))
            assert int(out.min()) >= 0 and int(out.max()) <= rep.num_classes - 1

    def test_a_near_encoding_decodes_to_the_data(self):
        """A noisy encoding near the data decodes to the data (what the last sampler steps rely on)."""
        rep = self.make()
        m = self.masks(rep)
        x = rep.encode(m)
        near = x + 1e-3 * x.abs().amax().clamp(min=1.0) * self.noisy(rep, 4)
        assert torch.equal(rep.decode(near).long(), m)

    def test_inputs_untouched_and_deterministic(self):
        rep = self.make()
        m = self.masks(rep)
        keep = m.clone()
        x = rep.encode(m)
        assert torch.equal(m, keep), "encode modified its input"
        assert torch.equal(rep.encode(m), x)
        y = self.noisy(rep)
        keep_y = y.clone()
        d = rep.decode(y)
        assert torch.equal(y, keep_y), "decode modified its input"
        assert torch.equal(rep.decode(y), d)

    def test_batch_items_are_independent(self):
        rep = self.make()
        m = self.masks(rep)
        x = rep.encode(m)
        assert torch.equal(rep.encode(m[1:2]), x[1:2])
        y = self.noisy(rep)
        assert torch.equal(rep.decode(y[1:2]), rep.decode(y)[1:2])

    def test_device_is_preserved(self):
        rep = self.make()
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        for device in devices:
            m = self.masks(rep).to(device)
            x = rep.encode(m)
            assert x.device.type == device.type, f"encode moved a {device} tensor to {x.device}"
            out = rep.decode(x)
            assert out.device.type == device.type, f"decode moved a {device} tensor to {out.device}"
            assert torch.equal(out.long().cpu(), m.cpu())

    # -- configuration ---------------------------------------------------------------------
    def test_config_is_json_and_rebuilds_an_equal_representation(self):
        rep = self.make()
        cfg = rep.config()
        assert isinstance(cfg, dict)
        assert json.loads(json.dumps(cfg)) == cfg, "config() must be plain JSON"
        rebuilt = self.component().create(**cfg)
        assert rebuilt.config() == cfg
        assert (rebuilt.channels, rebuilt.num_classes, rebuilt.spatial_dims) == (
            rep.channels, rep.num_classes, rep.spatial_dims)
        m = self.masks(rep, 3)
        assert torch.equal(rebuilt.encode(m), rep.encode(m))
        y = self.noisy(rep, 3)
        assert torch.equal(rebuilt.decode(y), rep.decode(y))
