"""Built-in conditioning methods, registered through ``register_conditioning`` like a third-party plugin's."""

from __future__ import annotations

from cardiobench.hookspecs import hookimpl


def _classifier_guidance(**options):
    """Classifier guidance (Dhariwal & Nichol 2021): a noisy-x_t classifier's gradient steers an unconditional model."""
    from cardiobench.conditioning.classifier_guidance import ClassifierGuidance

    return ClassifierGuidance(**options)


@hookimpl
def register_conditioning(register):
    from cardiobench.conditioning.classifier_free import ClassifierFreeGuidance
    from cardiobench.conditioning.concat import Concat
    from cardiobench.conditioning.controlnet import ControlNet

    for cls in (ClassifierFreeGuidance, Concat, ControlNet):
        register(cls.name, cls, summary=(cls.__doc__ or "").strip().splitlines()[0], condition=cls.condition,
                 tasks=cls.tasks, families=cls.families, trains_network=cls.trains_network,
                 has_scale=cls.has_scale, spatial_dims=(2, 3))
    register("classifier-guidance", _classifier_guidance, summary=_classifier_guidance.__doc__,
             condition="label", tasks=("generation",), families=("linear-gaussian",), trains_network=False,
             auxiliary="classifier")  # its noisy classifier is 2-D: no spatial_dims=(2, 3)
