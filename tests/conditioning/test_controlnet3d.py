"""ControlNet on a 3-D U-Net: 3-D hint encoder and zero convolutions, exact equality with the base at init."""

import pytest
import torch

from cardiobench.conditioning.controlnet import ControlNetModel
from cardiobench.models.unet import build_unet

pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(net: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(1)
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


def controlnet3d() -> tuple[ControlNetModel, torch.nn.Module]:
    torch.manual_seed(0)
    base = perturbed(build_unet(4, 4, size="tiny", spatial_dims=3, depth_downsample=1))  # a "trained" base
    net = ControlNetModel(base, image_channels=1)
    return net.eval(), base


def inputs(b: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, 4, 2, 16, 16, generator=g), torch.randint(0, 1000, (b,), generator=g),
            torch.rand(b, 1, 2, 16, 16, generator=g))


def test_controlnet_builds_3d_convolutions():
    net, _ = controlnet3d()
    convs = [m for m in [*net.hint.modules(), *net.zero_skips.modules(), *net.zero_mid.modules()]
             if isinstance(m, torch.nn.Conv3d | torch.nn.Conv2d)]
    assert convs and all(isinstance(m, torch.nn.Conv3d) for m in convs)


def test_residuals_match_the_base_skips_and_the_output_keeps_the_shape():
    net, base = controlnet3d()
    x, t, images = inputs()
    with torch.no_grad():
        skips, mid = base.encode(x, base.embed(t))
        res, res_mid = net.residuals(x, t, images)
        assert [r.shape for r in res] == [s.shape for s in skips] and res_mid.shape == mid.shape
        assert net(x, t, images).shape == x.shape


def test_zero_initialised_control_changes_nothing_at_initialisation():
    net, base = controlnet3d()
    x, t, images = inputs()
    with torch.no_grad():
        assert torch.equal(net(x, t, images), base(x, t))
    for z in [*net.zero_skips, net.zero_mid]:  # and training moves it: the control branch gets gradients
        z.weight.data.normal_(0, 0.1)
    net(x, t, images).square().mean().backward()
    assert all(p.grad is not None for p in net.control_parameters())
    assert all(p.grad is None for p in net.base.parameters())
