"""The seed's U-Net: the backbone contract for every size, plus what the conditioning work relies on."""

import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.models.unet import SIZES, UNet, build_unet
from cardiobench.plugins import get_component
from cardiobench.testing.backbones import BackboneContract

pytestmark = pytest.mark.usefixtures("one_thread")


class TestUNetTiny(BackboneContract):
    backbone = "unet"
    options = {"size": "tiny"}


class TestUNetSmallOptions(BackboneContract):
    """The quick preset's layout (attention at the lower levels only), narrowed to stay fast."""

    backbone = "unet"
    options = {"size": "small", "base_channels": 8}
    sizes = (16,)


def test_registered_with_sizes():
    comp = get_component("backbone", "unet")
    assert comp.metadata["sizes"] == ("tiny", "small", "base")


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_builds_and_round_trips_its_config(size):
    model = build_unet(4, 4, size=size)
    clone = UNet(**model.config())
    assert sum(p.numel() for p in clone.parameters()) == sum(p.numel() for p in model.parameters())
    assert clone.config() == model.config()


def test_seed_layout_three_levels_with_attention():
    model = build_unet(4, 4, size="base")
    assert len(model.downs) == 3 and len(model.ups) == 3 and model.dims == [64, 128, 256]
    assert model.downsample_factor == 4
    assert all(not isinstance(level.attn, torch.nn.Identity) for level in model.downs)


def test_null_class_is_reserved():
    model = build_unet(4, 4, size="tiny", num_classes=5)
    assert model.null_class == 5 and model.class_emb.num_embeddings == 6


def test_class_labels_without_num_classes_is_an_error():
    model = build_unet(4, 4, size="tiny")
    with pytest.raises(ValueError, match="num_classes"):
        model(torch.zeros(1, 4, 16, 16), torch.zeros(1, dtype=torch.long), class_labels=torch.zeros(1).long())


def test_encode_decode_equals_forward_and_hint_is_added_after_init_conv():
    model = build_unet(4, 4, size="tiny").eval()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([3, 900])
    with torch.no_grad():
        emb = model.embed(t)
        skips, mid = model.encode(x, emb)
        assert [s.shape[1] for s in skips] == model.skip_channels()
        torch.testing.assert_close(model.decode(mid, skips, emb), model(x, t))
        hint = torch.zeros(2, model.dims[0], 16, 16)
        torch.testing.assert_close(model.encode(x, emb, hint=hint)[1], mid)


def test_scalar_timestep_broadcasts():
    model = build_unet(4, 4, size="tiny").eval()
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 5), model(x, torch.tensor([5, 5])))


def test_bad_size_and_resolution_are_clear_errors():
    with pytest.raises(CardiobenchError, match="unknown unet size 'huge'"):
        build_unet(4, 4, size="huge")
    with pytest.raises(CardiobenchError, match="bad unet option"):
        build_unet(4, 4, size="tiny", widht=3)
    with pytest.raises(ValueError, match="multiples of 4"):
        build_unet(4, 4, size="tiny")(torch.zeros(1, 4, 18, 18), torch.zeros(1))
