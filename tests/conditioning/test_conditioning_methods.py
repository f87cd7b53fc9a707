"""Built-in conditioning methods: the contract suite, and each method's defining property."""

from __future__ import annotations

import pytest
import torch

from cardiobench.conditioning.base import Condition, drop_labels
from cardiobench.conditioning.classifier_free import ClassifierFreeGuidance
from cardiobench.conditioning.controlnet import ControlNet, ControlNetModel
from cardiobench.errors import CardiobenchError
from cardiobench.models.unet import build_unet
from cardiobench.testing.conditioning import ConditioningContract


class TestClassifierFreeContract(ConditioningContract):
    method = "classifier-free"


class TestConcatContract(ConditioningContract):
    method = "concat"


class TestControlNetContract(ConditioningContract):
    method = "controlnet"


class TestClassifierFreeVolumesContract(ConditioningContract):
    method = "classifier-free"
    depth = 2
    size = 8


class TestConcatVolumesContract(ConditioningContract):
    method = "concat"
    depth = 2
    size = 8


class TestControlNetVolumesContract(ConditioningContract):
    method = "controlnet"
    depth = 2
    size = 8


def tiny_unet(cin=4, cout=4, **extra):
    torch.manual_seed(0)
    return build_unet(cin, cout, size="tiny", channel_mults=[1, 2], **extra)


def perturbed(net):
    g = torch.Generator().manual_seed(1)
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


def inputs(b=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 4, size, size, generator=g), torch.randint(0, 1000, (b,), generator=g),
            torch.randint(0, 5, (b,), generator=g), torch.rand(b, 1, size, size, generator=g) * 2 - 1)


# -- classifier-free guidance ------------------------------------------------------------------------
def test_cfg_scale_one_is_the_conditional_model_bit_for_bit():
    method = ClassifierFreeGuidance()
    net = perturbed(method.build_network(tiny_unet, 4, 4))
    x, t, y, _ = inputs()
    with torch.no_grad():
        out = method.model_fn(net, Condition(labels=y), guidance_scale=1.0)(x, t)
        assert torch.equal(out, net(x, t, class_labels=y))


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_cfg_mixes_conditional_and_unconditional_in_one_batched_forward(scale):
    method = ClassifierFreeGuidance()
    net = perturbed(method.build_network(tiny_unet, 4, 4))
    x, t, y, _ = inputs()
    calls = []
    net.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        cond = net(x, t, class_labels=y)
        uncond = net(x, t, class_labels=torch.full_like(y, net.null_class))
        calls.clear()
        fn = method.model_fn(net, Condition(labels=y), guidance_scale=scale)
        # the general path, also at s = 1 (the model_fn short-cuts s = 1 itself)
        guided = fn(x, t) if scale != 1.0 else torch.lerp(uncond, cond, 1.0)
    expected = uncond + scale * (cond - uncond)
    torch.testing.assert_close(guided, expected, rtol=1e-5, atol=1e-5)
    if scale != 1.0:
        assert calls == [2 * len(x)], "conditional and unconditional halves must share one forward"
    if scale == 1.0:
        torch.testing.assert_close(guided, cond, rtol=1e-6, atol=1e-6)


def test_label_dropout_rate_and_null_token():
    labels = torch.randint(0, 5, (20_000,), generator=torch.Generator().manual_seed(0))
    dropped = drop_labels(labels, 5, 0.1, torch.Generator().manual_seed(1))
    frac = (dropped == 5).float().mean().item()
    assert abs(frac - 0.1) < 0.01
    kept = dropped != 5
    assert torch.equal(dropped[kept], labels[kept])
    assert torch.equal(drop_labels(labels, 5, 0.0, torch.Generator().manual_seed(1)), labels)


def test_cfg_rejects_bad_options_and_needs_labels():
    with pytest.raises(CardiobenchError, match="p_uncond"):
        ClassifierFreeGuidance(p_uncond=1.5)
    method = ClassifierFreeGuidance()
    net = method.build_network(tiny_unet, 4, 4)
    with pytest.raises(CardiobenchError, match="class labels"):
        method.model_fn(net, Condition(), guidance_scale=2.0)


# -- ControlNet ----------------------------------------------------------------------------------------
def controlnet_from_trained_base():
    base = perturbed(tiny_unet())  # stands in for a trained base
    method = ControlNet()
    net = method.build_network(tiny_unet, 4, 4)
    net.load_base(base.state_dict())
    return method, net.eval(), base


def test_controlnet_at_initialisation_equals_the_frozen_base_exactly():
    _, net, base = controlnet_from_trained_base()
    x, t, _, images = inputs()
    with torch.no_grad():
        assert torch.equal(net(x, t, images), base(x, t))


def test_controlnet_copy_starts_from_the_base_encoder():
    _, net, base = controlnet_from_trained_base()
    base_state = base.state_dict()
    copied = net.control.state_dict()
    assert set(copied) < set(base_state)
    assert not any(k.startswith(("ups.", "final_")) for k in copied)
    for k, v in copied.items():
        assert torch.equal(v, base_state[k]), k


def test_controlnet_scale_zero_is_the_base_and_scale_changes_the_output():
    method, net, base = controlnet_from_trained_base()
    for module in (net.hint, net.zero_skips, net.zero_mid):  # as after some training
        for p in module.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    x, t, _, images = inputs()
    with torch.no_grad():
        at0 = method.model_fn(net, Condition(images=images), guidance_scale=0.0)(x, t)
        at1 = method.model_fn(net, Condition(images=images), guidance_scale=1.0)(x, t)
        other = method.model_fn(net, Condition(images=-images), guidance_scale=1.0)(x, t)
    assert torch.equal(at0, base(x, t))
    assert not torch.allclose(at1, at0) and not torch.allclose(at1, other)


def test_controlnet_base_weights_do_not_change_in_training():
    method, net, base = controlnet_from_trained_base()
    net.train()
    before = {k: v.clone() for k, v in net.base.state_dict().items()}
    control_before = {k: v.clone() for k, v in net.control.state_dict().items()}
    opt = torch.optim.Adam(method.trainable_parameters(net), lr=1e-2)
    for seed in range(3):
        x, t, _, images = inputs(seed=seed)
        loss = method.forward_train(net, x, t, Condition(images=images)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, before[k]) for k, v in net.base.state_dict().items())
    assert any(not torch.equal(v, control_before[k]) for k, v in net.control.state_dict().items())
    assert not net.base.training  # the frozen base stays in eval mode


def test_controlnet_needs_a_backbone_with_separable_parts():
    class Plain(torch.nn.Module):
        def forward(self, x, t):
            return x

    with pytest.raises(CardiobenchError, match="cannot take a ControlNet"):
        ControlNetModel(Plain())


def test_controlnet_base_spec_is_the_unconditional_model():
    from cardiobench.specs import TrainSpec

    spec = TrainSpec(steps=10, conditioning="controlnet", conditioning_options={"base_steps": 7})
    base = ControlNet(base_steps=7).base_spec(spec)
    assert base.conditioning is None and base.conditioning_options == {} and base.steps == 7
    assert ControlNet().base_spec(spec).steps == 10


def test_controlnet_base_can_keep_its_own_data_options():
    """A ControlNet trained on a small split on top of a base trained on the full one (base_dataset_options)."""
    from cardiobench.specs import TrainSpec

    spec = TrainSpec(steps=10, dataset_options={"val_fraction": 0.95}, conditioning="controlnet")
    assert ControlNet().base_spec(spec).dataset_options == {"val_fraction": 0.95}
    method = ControlNet(base_dataset_options={})
    assert method.base_spec(spec).dataset_options == {} and method.config()["base_dataset_options"] == {}
    assert "base_dataset_options" not in ControlNet().config()  # unchanged hashes for the default
    with pytest.raises(CardiobenchError, match="base_dataset_options"):
        ControlNet(base_dataset_options=[1])


def test_concat_adds_one_input_channel():
    from cardiobench.conditioning.concat import Concat

    net = Concat().build_network(tiny_unet, 4, 4)
    assert net.init_conv.in_channels == 5
    with pytest.raises(CardiobenchError, match="guidance scale"):
        Concat().model_fn(net, Condition(images=torch.zeros(1, 1, 16, 16)), guidance_scale=2.0)
