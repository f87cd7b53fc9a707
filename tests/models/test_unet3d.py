"""The seed's U-Net in 3-D (volumes (B, C, D, H, W)) and the guarantee that 2-D did not change."""

import hashlib

import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.models import plugin
from cardiobench.models.unet import SIZES, UNet, build_unet
from cardiobench.plugins import get_component
from cardiobench.testing.backbones import BackboneContract

pytestmark = pytest.mark.usefixtures("one_thread")


class TestUNetTiny3D(BackboneContract):
    backbone = "unet"
    options = {"size": "tiny"}
    spatial_dims = 3
    depth = 4
    sizes = (16,)
    batch = 2


class TestUNetTiny3DPooledDepth(BackboneContract):
    """The deepest level also halves D: (B, C, 4, 16, 16) -> ... -> (B, C, 2, 4, 4) in the middle."""

    backbone = "unet"
    options = {"size": "tiny", "depth_downsample": 1, "channel_mults": (1, 2)}
    spatial_dims = 3
    depth = 4
    sizes = (8,)
    batch = 2


# -- 2-D is unchanged (values taken before the 3-D change) --------------------------------------------------------
def _keys_digest(model: torch.nn.Module) -> str:
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("size", "num_classes", "params", "entries", "digest"), [
    ("tiny", None, 65652, 253, "870fe4e2ac285323"),
    ("tiny", 5, 65844, 254, "fae7c07ae62586af"),
    ("small", None, 1003908, 239, "33c841c83e4c7f76"),
    ("small", 5, 1004676, 240, "8451d7d5870e95d7"),
])
def test_2d_parameters_and_state_dict_keys_are_unchanged(size, num_classes, params, entries, digest):
    model = build_unet(4, 4, size=size, num_classes=num_classes)
    assert model.spatial_dims == 2
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == entries and _keys_digest(model) == digest


def test_2d_initialisation_is_unchanged_for_a_seed():
    torch.manual_seed(0)
    state = build_unet(4, 4, size="tiny").state_dict()
    checksum = sum(float((v.double() * (i + 1)).sum()) for i, v in enumerate(state.values()))
    assert checksum == pytest.approx(151604.3663818436, rel=1e-9)


def test_2d_config_has_no_spatial_dims():
    assert build_unet(4, 4, size="tiny").config() == {
        "in_channels": 4, "out_channels": 4, "base_channels": 8, "channel_mults": [1, 2, 4], "num_classes": None,
        "init_kernel": 3, "ds_kernel": 3, "inner_kernel": 1, "convnext_mult": 2, "attn_heads": 1,
        "attn_dim_head": 8, "attn_levels": [0, 1, 2], "time_dim": 32}
    assert "spatial_dims" not in build_unet(4, 4, size="small", spatial_dims=2).config()


# -- 3-D ----------------------------------------------------------------------------------------------------------
def test_registered_for_both_dims_with_its_sizes():
    meta = get_component("backbone", "unet").metadata
    assert meta["spatial_dims"] == (2, 3)
    assert plugin.UNET_SIZES == tuple(SIZES)


@pytest.mark.parametrize("options", [{}, {"depth_downsample": 2, "num_classes": 5}])
def test_3d_config_round_trips(options):
    model = build_unet(4, 4, size="tiny", spatial_dims=3, **options)
    config = model.config()
    assert config["spatial_dims"] == 3
    assert config.get("depth_downsample", 0) == options.get("depth_downsample", 0)
    clone = UNet(**config)
    assert clone.config() == config and clone.spatial_dims == 3
    assert [tuple(p.shape) for p in clone.parameters()] == [tuple(p.shape) for p in model.parameters()]


def test_3d_layers_are_3d_with_short_kernels_along_depth():
    model = build_unet(4, 4, size="small", spatial_dims=3)
    assert model.init_conv.weight.shape[2:] == (3, 3, 3)
    assert model.downs[0].block1.ds_conv.weight.shape[2:] == (3, 7, 7)  # 7x7 in-plane, 3 slices
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _skip_shapes(model: UNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    with torch.no_grad():
        skips, mid = model.encode(x, model.embed(torch.zeros(x.shape[0])))
    return [tuple(s.shape[2:]) for s in [*skips, mid]]


def test_depth_is_never_pooled_by_default():
    model = build_unet(4, 4, size="tiny", spatial_dims=3).eval()
    x = torch.randn(1, 4, 2, 16, 16)  # D = 2 with three levels
    assert _skip_shapes(model, x) == [(2, 16, 16), (2, 8, 8), (2, 4, 4), (2, 4, 4)]
    with torch.no_grad():
        assert model(x, torch.tensor([5])).shape == x.shape
        assert model(torch.randn(1, 4, 3, 16, 16), torch.tensor([5])).shape == (1, 4, 3, 16, 16)  # any D


def test_depth_downsample_pools_the_deepest_levels():
    model = build_unet(4, 4, size="tiny", spatial_dims=3, depth_downsample=1).eval()
    assert model.depth_factor == 2
    assert _skip_shapes(model, torch.randn(1, 4, 4, 16, 16)) == [(4, 16, 16), (4, 8, 8), (2, 4, 4), (2, 4, 4)]
    model = build_unet(4, 4, size="tiny", spatial_dims=3, depth_downsample=2).eval()
    x = torch.randn(1, 4, 4, 16, 16)
    assert _skip_shapes(model, x)[-1] == (1, 4, 4)
    with torch.no_grad():
        assert model(x, torch.tensor([5])).shape == x.shape


def test_bad_depth_is_a_one_line_error_naming_the_multiple():
    model = build_unet(4, 4, size="tiny", spatial_dims=3, depth_downsample=2)
    with pytest.raises(ValueError, match=r"D must be a multiple of 4 .* H, W multiples of 4") as info:
        model(torch.zeros(1, 4, 6, 16, 16), torch.zeros(1))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"takes \(B, C, D, H, W\) input"):
        model(torch.zeros(1, 4, 16, 16), torch.zeros(1))


@pytest.mark.parametrize(("options", "message"), [
    ({"spatial_dims": 4}, "spatial_dims must be 2 or 3"),
    ({"depth_downsample": 1}, "depth_downsample needs spatial_dims=3"),
    ({"spatial_dims": 3, "depth_downsample": 3}, r"depth_downsample must be in 0\.\.2"),
])
def test_bad_3d_options_are_clear_errors(options, message):
    with pytest.raises(CardiobenchError, match=message):
        build_unet(4, 4, size="tiny", **options)


def test_3d_encode_decode_equals_forward_and_takes_a_hint():
    model = build_unet(4, 4, size="tiny", spatial_dims=3).eval()
    x, t = torch.randn(2, 4, 2, 8, 8), torch.tensor([3, 900])
    with torch.no_grad():
        emb = model.embed(t)
        skips, mid = model.encode(x, emb)
        torch.testing.assert_close(model.decode(mid, skips, emb), model(x, t))
        hint = torch.ones(2, model.dims[0], 2, 8, 8)
        assert not torch.allclose(model.encode(x, emb, hint=hint)[1], mid)
