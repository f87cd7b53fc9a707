"""MONAI's DiffusionModelUNet as the ``monai-unet`` backbone: the contract in 2-D and 3-D, and its adaptations."""

import pytest
import torch

from cardiobench.conditioning.controlnet import ControlNetModel
from cardiobench.errors import CardiobenchError
from cardiobench.models import plugin
from cardiobench.models.monai_unet import SIZES, MonaiUNet, build_monai_unet
from cardiobench.plugins import get_component
from cardiobench.testing.backbones import BackboneContract

pytestmark = pytest.mark.usefixtures("one_thread")


class TestMonaiUNetTiny(BackboneContract):
    backbone = "monai-unet"
    options = {"size": "tiny"}
    sizes = (16,)
    batch = 2


class TestMonaiUNetTiny3D(BackboneContract):
    backbone = "monai-unet"
    options = {"size": "tiny"}
    spatial_dims = 3
    depth = 2
    sizes = (16,)
    batch = 2


def test_registered_like_the_unet_without_residuals():
    meta = get_component("backbone", "monai-unet").metadata
    assert meta["spatial_dims"] == (2, 3) and meta["class_labels"] is True and meta["residuals"] is False
    assert meta["default_size"] == "small" and plugin.MONAI_UNET_SIZES == meta["sizes"] == tuple(SIZES)


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_builds_and_round_trips_its_config(size):
    model = build_monai_unet(4, 4, size=size)
    clone = MonaiUNet(**model.config())
    assert clone.config() == model.config() and "spatial_dims" not in model.config()
    assert sum(p.numel() for p in clone.parameters()) == sum(p.numel() for p in model.parameters())


def test_3d_config_round_trips_through_the_factory():
    model = build_monai_unet(4, 3, size="tiny", spatial_dims=3, depth_downsample=1, num_classes=5, norm_eps=1e-5)
    config = model.config()
    assert config["spatial_dims"] == 3 and config["depth_downsample"] == 1 and config["norm_eps"] == 1e-5
    rebuilt = get_component("backbone", "monai-unet").create(**config)
    assert rebuilt.config() == config and rebuilt.net.num_class_embeds == 6


def test_null_class_is_the_extra_embedding_row():
    model = build_monai_unet(4, 4, size="tiny", num_classes=5)
    assert model.null_class == 5 and model.net.class_embedding.num_embeddings == 6


def test_monai_initialisation_is_kept_the_output_starts_at_zero():
    model = build_monai_unet(4, 4, size="tiny").eval()
    with torch.no_grad():
        assert torch.equal(model(torch.randn(2, 4, 16, 16), 10), torch.zeros(2, 4, 16, 16))


def test_depth_is_never_pooled_by_default_and_depth_downsample_pools_it():
    x = torch.randn(1, 4, 2, 16, 16)  # D = 2 with three levels: MONAI alone would need a multiple of 4
    model = build_monai_unet(4, 4, size="tiny", spatial_dims=3).eval()
    strides = [b.downsampler.op.conv.stride for b in model.net.down_blocks[:-1]]
    assert strides == [(1, 2, 2), (1, 2, 2)]
    with torch.no_grad():
        assert model(x, 3).shape == x.shape
    pooled = build_monai_unet(4, 4, size="tiny", spatial_dims=3, depth_downsample=1)
    assert [b.downsampler.op.conv.stride for b in pooled.net.down_blocks[:-1]] == [(1, 2, 2), (2, 2, 2)]
    with pytest.raises(ValueError, match="D must be a multiple of 2"):
        pooled(torch.randn(1, 4, 3, 16, 16), 3)


def test_resblock_updown_is_made_in_plane_too():
    model = BackboneContract.nudged(build_monai_unet(4, 4, size="tiny", spatial_dims=3, resblock_updown=True)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 3, 16, 16), 3).shape == (1, 4, 3, 16, 16)


def test_bad_options_and_inputs_are_one_line_errors():
    with pytest.raises(CardiobenchError, match="unknown monai-unet size 'huge'"):
        build_monai_unet(4, 4, size="huge")
    with pytest.raises(CardiobenchError, match="num_class_embeds cannot be set"):
        build_monai_unet(4, 4, size="tiny", num_class_embeds=3)
    with pytest.raises(CardiobenchError, match="bad monai-unet option: .*norm_num_groups"):
        build_monai_unet(4, 4, size="tiny", norm_num_groups=5)
    model = build_monai_unet(4, 4, size="tiny")
    with pytest.raises(ValueError, match="H and W multiples of 4"):
        model(torch.zeros(1, 4, 18, 18), 0)
    with pytest.raises(ValueError, match="built without num_classes"):
        model(torch.zeros(1, 4, 16, 16), 0, class_labels=torch.zeros(1))


def test_controlnet_refuses_it():
    with pytest.raises(CardiobenchError, match="cannot take a ControlNet"):
        ControlNetModel(build_monai_unet(4, 4, size="tiny"))
