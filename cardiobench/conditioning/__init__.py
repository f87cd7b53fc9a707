"""Conditioning methods: classifier-free guidance, classifier guidance, ControlNet and concatenation.

``base.py`` holds the contract (``ConditioningMethod``, ``Condition``); each method lives in its own module and
registers through ``plugin.py`` exactly like a third-party plugin would.
"""

from cardiobench.conditioning.base import Condition, ConditioningMethod

__all__ = ["Condition", "ConditioningMethod"]
