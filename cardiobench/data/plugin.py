"""Built-in data sets, registered through ``register_datasets`` like any third-party plugin."""

from __future__ import annotations

import os
from typing import Any

from cardiobench.data.acdc import ACDCSource
from cardiobench.data.acdc_h5 import ACDCH5Source
from cardiobench.data.nifti_pairs import ROOT_ENV as NIFTI_PAIRS_ROOT_ENV
from cardiobench.data.nifti_pairs import NiftiPairsSource
from cardiobench.data.pairs_npz import ROOT_ENV as PAIRS_ROOT_ENV
from cardiobench.data.pairs_npz import PairsSource
from cardiobench.data.phantom import PhantomSource
from cardiobench.data.source import check_options
from cardiobench.hookspecs import hookimpl


def phantom(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """Synthetic ACDC-like slices, seeded and offline: the default data set."""
    check_options(PhantomSource, "phantom", options)
    return PhantomSource(size=size, seed=seed, **options)  # data_root: nothing to read


def acdc(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """The ACDC challenge data (NIfTI release layout) from --data-root or CARDIOBENCH_ACDC_ROOT."""
    check_options(ACDCSource, "acdc", options)
    return ACDCSource(size=size, seed=seed, data_root=data_root, **options)


def acdc_h5(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """ACDC's training patients as HDF5 volumes (SSL4MIS layout) from --data-root or CARDIOBENCH_ACDC_H5_ROOT.

    The files store no spacing: distances are in pixels unless ``spacing_mm`` is given.
    """
    check_options(ACDCH5Source, "acdc-h5", options)
    return ACDCH5Source(size=size, seed=seed, data_root=data_root, **options)


def nifti_pairs(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """Any folder of image / mask NIfTI pairs (M&Ms, your own data): name patterns, label mapping, optional CSV.

    Options: image_pattern ("*"), mask_pattern ("*_gt"), labels (ACDC's {1: RV, 2: MYO, 3: LV}), csv
    (patient, group, ED, ES), groups, default_group (NOR), test_fraction; see docs/data.md.
    """
    check_options(NiftiPairsSource, "nifti-pairs", options)
    return NiftiPairsSource(size=size, seed=seed, data_root=data_root, **options)


def pairs(size: int = 64, data_root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """Generated (image, mask) pairs written by a utility run (pairs.npz): train on synthetic data."""
    check_options(PairsSource, "pairs", options)
    return PairsSource(size=size, seed=seed, data_root=data_root, **options)


@hookimpl
def register_datasets(register):
    register("phantom", phantom, needs_data=False, default=True)
    # root_markers: what --data-root alone looks for to pick the data set (cardiobench.data.resolve_dataset_name)
    # evaluator_objective: the FID ruler a data set gets by default (cardiobench.metrics.evaluator.default_config;
    # "pathology" when absent). Real ACDC gets the SSL evaluator: the ruler study in docs/metrics.md ("Choosing
    # the ruler for real data"); the phantom keeps its shipped pathology evaluator.
    register("acdc", acdc, needs_data=True, root_env="CARDIOBENCH_ACDC_ROOT",
             root_markers=("training", "testing", "database/training", "database/testing"),
             evaluator_objective="ssl")
    register("acdc-h5", acdc_h5, needs_data=True, root_env="CARDIOBENCH_ACDC_H5_ROOT",
             root_markers=("patient*_frame*.h5", "volumes/patient*_frame*.h5",
                           "ACDC_training_volumes/patient*_frame*.h5"),
             evaluator_objective="ssl")
    # nifti-pairs: no root_markers. A folder of *.nii.gz pairs is also what an ACDC patient folder holds, so
    # --data-root alone never picks it (and acdc, registered first, stays the fallback that says what a folder
    # lacks); name it with --dataset nifti-pairs. Real scans, often without pathology groups: the SSL ruler.
    register("nifti-pairs", nifti_pairs, needs_data=True, root_env=NIFTI_PAIRS_ROOT_ENV, evaluator_objective="ssl")
    # pairs: generated pairs written by a utility run (cardiobench.data.pairs_npz); the mask ruler of the data set
    # they were generated from is not theirs to borrow, so they get the default one
    register("pairs", pairs, needs_data=True, root_env=PAIRS_ROOT_ENV, root_markers=("pairs.npz",))
