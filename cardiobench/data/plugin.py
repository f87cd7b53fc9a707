"""Built-in data sets, registered through ``register_datasets`` like any third-party plugin."""

from __future__ import annotations

import os
from typing import Any

from cardiobench.hookspecs import hookimpl


def phantom(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """Synthetic ACDC-like slices, seeded and offline: the default data set."""
    from cardiobench.data.phantom import PhantomSource
    from cardiobench.data.source import check_options

    check_options(PhantomSource, "phantom", options)
    return PhantomSource(size=size, seed=seed, **options)  # data_root: nothing to read


def acdc(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """The ACDC challenge data (NIfTI release layout) from --data-root or CARDIOBENCH_ACDC_ROOT."""
    from cardiobench.data.acdc import ACDCSource
    from cardiobench.data.source import check_options

    check_options(ACDCSource, "acdc", options)
    return ACDCSource(size=size, seed=seed, data_root=data_root, **options)


@hookimpl
def register_datasets(register):
    register("phantom", phantom, needs_data=False, default=True)
    register("acdc", acdc, needs_data=True, root_env="CARDIOBENCH_ACDC_ROOT")
