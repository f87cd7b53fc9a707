"""Image conditioning on a coarser diffused grid (an autoencoder's latent): space-to-depth for ``concat``, a strided
hint encoder for ``controlnet``, the factor the engine derives from the representation."""

import pytest
import torch
import torch.nn.functional as F

from cardiobench.conditioning.base import Condition, maps_to_grid
from cardiobench.conditioning.controlnet import ControlNetModel, HintEncoder
from cardiobench.errors import IncompatibleError
from cardiobench.factories import build_conditioning, build_model, map_downsampling
from cardiobench.models.unet import build_unet
from cardiobench.specs import TrainSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def test_maps_to_grid_is_pixel_unshuffle_and_loses_nothing():
    maps = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    grid = maps_to_grid(maps, 4)
    assert grid.shape == (2, 64, 4, 4)
    assert torch.equal(grid, F.pixel_unshuffle(maps, 4))  # torch's own space-to-depth, channel order included
    assert torch.equal(F.pixel_shuffle(grid, 4), maps)  # and its inverse gives the map back exactly
    assert maps_to_grid(maps, 1) is maps


def test_maps_to_grid_in_3d_keeps_each_block_in_one_cell():
    vol = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 1, 2, 4, 4)
    grid = maps_to_grid(vol, 2)
    assert grid.shape == (1, 8, 1, 2, 2)
    # cell (0, 0, 0) holds exactly the 2x2x2 block at the origin
    assert sorted(grid[0, :, 0, 0, 0].tolist()) == sorted(vol[0, 0, :2, :2, :2].flatten().tolist())


def test_the_hint_encoder_comes_down_to_the_latent_grid_and_starts_at_zero():
    hint = HintEncoder(1, 24, (16, 32), downsampling=4)
    out = hint(torch.rand(3, 1, 32, 32))
    assert out.shape == (3, 24, 8, 8) and torch.equal(out, torch.zeros_like(out))
    strided = [m for m in hint.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 2  # log2 4 halvings
    pixel = HintEncoder(1, 24, (16, 32))
    assert len(pixel) == 5 and all(m.stride == (1, 1) for m in pixel.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(IncompatibleError, match="power of 2, not 3"):
        HintEncoder(1, 24, downsampling=3)


def test_a_latent_controlnet_equals_its_base_at_initialisation():
    torch.manual_seed(0)
    base = build_unet(4, 4, size="tiny").eval()
    net = ControlNetModel(base, image_channels=1, map_downsampling=4).eval()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 700])
    images = torch.rand(2, 1, 32, 32)  # the MRI slice at the label map's size, 4x the latent grid
    with torch.no_grad():
        assert torch.equal(net(x, t, images), base(x, t))
    for z in [*net.zero_skips, net.zero_mid]:
        z.weight.data.normal_(0, 0.1)
    net(x, t, images).square().mean().backward()
    assert all(p.grad is not None for p in net.hint.parameters())


def _latent_spec(conditioning: str) -> TrainSpec:
    ae = {"autoencoder": "vae", "options": {"size": "tiny"}, "dataset": "phantom", "resolution": 16}
    return TrainSpec(resolution=16, steps=1, representation="latent", representation_options={"autoencoder": ae},
                     backbone_options={"size": "tiny"}, conditioning=conditioning)


def test_the_engine_gives_the_method_the_factor_and_concat_widens_by_f_squared():
    spec = _latent_spec("concat")
    method = build_conditioning(spec)
    assert (method.image_channels, method.map_downsampling, method.spatial_dims) == (1, 4, 2)
    net = build_model(spec)
    assert net.init_conv.in_channels == 4 + 1 * 16  # the latent's channels + the slice's 4x4 blocks
    x = torch.randn(2, 4, 4, 4)
    images = torch.rand(2, 1, 16, 16)
    out = method.forward_train(net, x, torch.tensor([1, 2]), Condition(images=images))
    assert out.shape == x.shape
    pixel = TrainSpec(resolution=16, steps=1, backbone_options={"size": "tiny"}, conditioning="concat")
    assert build_conditioning(pixel).map_downsampling == 1


def test_a_grid_that_does_not_divide_the_maps_is_refused():
    class Odd:
        def shape(self, size):
            return (4, 5, 4)

        def mask_shape(self, size):
            return (16, 16)

    with pytest.raises(IncompatibleError, match="5x4 grid for 16x16 maps"):
        map_downsampling(Odd(), TrainSpec(resolution=16, steps=1))


def test_sampling_computes_the_hint_once_and_gives_the_same_output():
    """``model_fn`` encodes the condition once for all steps; its outputs equal the per-step forward bit for bit."""
    from cardiobench.conditioning.controlnet import ControlNet

    torch.manual_seed(0)
    method = ControlNet()
    method.map_downsampling = 4
    net = method.build_network(lambda cin, cout: build_unet(cin, cout, size="tiny"), 4, 4).eval()
    for z in [*net.zero_skips, net.zero_mid, net.hint[-1]]:  # a "trained" control branch: nothing is zero
        z.weight.data.normal_(0, 0.1)
    images = torch.rand(2, 1, 32, 32)
    calls = []
    net.hint.register_forward_hook(lambda *args: calls.append(1))
    fn = method.model_fn(net, Condition(images=images), guidance_scale=0.7)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        for t in (999, 500, 1):
            tt = torch.full((2,), t)
            assert torch.equal(fn(x, tt), net(x, tt, images, 0.7))
    assert len(calls) == 1 + 3  # once in model_fn, then only in the reference forwards
