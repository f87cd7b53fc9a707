"""cardiobench: benchmark diffusion models on cardiac segmentation masks (ACDC).

The Python API (``docs/python-api.md``)::

    import cardiobench as cb
    outcome = cb.run(noise="gaussian", sampler="ddim", preset="tiny")
    cb.train(...), cb.load_model(...), cb.sample(...), cb.evaluate(...)
    cb.metrics.dice(pred, target), cb.metrics.hd95(pred, target, spacing=...)

Names load on first use, so ``import cardiobench`` (and ``cardiobench --version``) does not import torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cardiobench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: public name -> the module that defines it (functions) or that it is (sub-packages)
_LAZY: dict[str, str] = {
    "run": "cardiobench.api", "train": "cardiobench.api", "load_model": "cardiobench.api",
    "sample": "cardiobench.api", "evaluate": "cardiobench.api",
    "metrics": "cardiobench.metrics", "CardiobenchError": "cardiobench.errors",
    "train_autoencoder": "cardiobench.autoencoders.api", "autoencoder_info": "cardiobench.autoencoders.api",
}

__all__ = ["CardiobenchError", "__version__", "autoencoder_info", "evaluate", "load_model", "metrics", "run", "sample",
           "train", "train_autoencoder"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cardiobench' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
