"""The backbone contract suite itself: its 3-D mode and its refusal of a plugin that does not declare 3-D."""

import pytest
import torch

from cardiobench.hookspecs import hookimpl
from cardiobench.models.unet import build_unet
from cardiobench.testing.backbones import BackboneContract

pytestmark = pytest.mark.usefixtures("one_thread")


def flat_unet(in_channels, out_channels=None, **options):
    """A U-Net registered without spatial_dims metadata: 2-D only, as far as the registry knows."""
    return build_unet(in_channels, out_channels, size="tiny", **options)


class FlatPlugin:
    @hookimpl
    def register_backbones(self, register):
        register("flat-unet", flat_unet)


class Flat3D(BackboneContract):
    backbone = "flat-unet"
    spatial_dims = 3
    sizes = (8,)


class Flat2D(BackboneContract):
    backbone = "flat-unet"
    sizes = (8,)


def test_a_3d_suite_refuses_a_backbone_that_does_not_declare_3d(register_plugin):
    register_plugin(FlatPlugin(), "flat")
    with pytest.raises(pytest.fail.Exception, match=r"spatial_dims=3 but registers spatial_dims=\(2,\).*declare it"):
        Flat3D().make()
    Flat2D().test_output_shape_equals_input_shape()  # absent metadata = 2-D, checked as before


def test_3d_inputs_and_factory_option():
    class Unet3D(BackboneContract):
        spatial_dims = 3
        depth = 2
        options = {"size": "tiny"}

    suite = Unet3D()
    x, t = suite.inputs(8)
    assert x.shape == (suite.batch, suite.in_channels, 2, 8, 8) and t.shape == (suite.batch,)
    assert suite.make().spatial_dims == 3


def test_nudged_moves_every_parameter_reproducibly():
    a, b = build_unet(4, 4, size="tiny"), build_unet(4, 4, size="tiny")
    b.load_state_dict(a.state_dict())
    before = {k: v.clone() for k, v in a.state_dict().items()}
    BackboneContract.nudged(a), BackboneContract.nudged(b)
    for name, p in a.named_parameters():
        assert not torch.equal(p, before[name]) and torch.equal(p, dict(b.named_parameters())[name]), name
