"""cardiobench: benchmark diffusion models on cardiac segmentation masks (ACDC)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cardiobench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
