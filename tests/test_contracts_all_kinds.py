"""Every built-in component of every plugin kind passes its kind's contract suite (``cardiobench.testing``).

Parametrised over the registries at collection time (built-ins only: origin ``cardiobench``), one test per
component and check. A kind without a suite in ``cardiobench.testing.CONTRACTS`` fails
``test_every_kind_has_a_contract_suite`` and every check of its components, so a kind cannot be added without
one. A new built-in is checked with its suite's defaults unless ``SUITES`` below gives it small options (the
same ones the per-module contract tests use).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from cardiobench import plugins
from cardiobench.registry import KINDS
from cardiobench.testing import CONTRACTS, contract_checks, contract_suite

DATA_TESTS = Path(__file__).parent / "data"  # the fake data trees' builders live there


def _builtins() -> list[tuple[str, str]]:
    """(kind, name) of every built-in, from a plugin manager that loads the built-ins only."""
    pm = plugins.PluginManager()
    pm.load_builtins()
    regs = pm.registries()
    return [(kind, comp.name) for kind in KINDS for comp in regs[kind] if comp.origin == "cardiobench"]


BUILTINS = _builtins()


# -- per-component suite attributes (small and fast; the per-module contract tests use the same) -------------------
def _fake_tree_source(factory: str, **options: Any):
    def make_source(self):
        from cardiobench.plugins import get_component

        return get_component("dataset", factory).create(size=32, cache=False, data_root=self.fake_roots[factory],
                                                         **options)

    return make_source


def _classifier_guidance_with_a_classifier(self):
    """Classifier guidance ready to sample: a tiny, perturbed noisy classifier (tests/conditioning)."""
    from cardiobench.conditioning.classifier import build_classifier
    from cardiobench.conditioning.classifier_guidance import ClassifierGuidance

    clf = build_classifier("tiny", seed=0)
    g = torch.Generator().manual_seed(0)
    for p in clf.parameters():
        p.data.add_(0.1 * torch.randn(p.shape, generator=g))
    return ClassifierGuidance(**self.options, classifier=clf.eval().requires_grad_(False))


_DATA = {"expect_size": 32, "check_centred": True, "require_nonempty": ("train", "val", "test")}

SUITES: dict[tuple[str, str], dict[str, Any]] = {
    ("dataset", "phantom"): {**_DATA, "dataset_options": {"size": 32, "train_patients": 3, "test_patients": 1,
                                                          "cache": False}},
    ("dataset", "acdc"): {**_DATA, "make_source": _fake_tree_source("acdc")},
    ("dataset", "acdc-h5"): {**_DATA, "make_source": _fake_tree_source("acdc-h5")},
    # the fake folder's masks are in the M&Ms order (1 LV, 2 MYO, 3 RV); its CSV gives groups and frames
    ("dataset", "nifti-pairs"): {**_DATA, "make_source": _fake_tree_source(
        "nifti-pairs", labels={"1": "LV", "2": "MYO", "3": "RV"}, csv="info.csv")},
    # generated pairs: a folder written by write_pairs from phantom slices (see fake_roots)
    ("dataset", "pairs"): {**_DATA, "make_source": lambda self: plugins.get_component("dataset", "pairs").create(
        size=32, data_root=self.fake_roots["pairs"])},
    ("noise", "gaussian"): {"process_options": {"num_timesteps": 100}},
    ("noise", "blurring"): {"process_options": {"num_timesteps": 100, "image_size": 8}},
    ("noise", "d3pm"): {"process_options": {"num_timesteps": 50}, "shape": (3, 4, 8, 8)},
    ("sampler", "d3pm"): {"sampler_options": {"num_inference_steps": 10}, "shape": (4, 4, 8, 8),
                          "processes": (("d3pm", {"num_timesteps": 50}),
                                        ("d3pm", {"num_timesteps": 50, "transition": "absorbing"}))},
    ("sampler", "ddpm"): {"sampler_options": {"num_inference_steps": 20}},
    ("sampler", "ddim"): {"sampler_options": {"num_inference_steps": 10, "eta": 0.3, "timestep_spacing": "trailing"}},
    ("backbone", "unet"): {"options": {"size": "tiny"}},
    ("conditioning", "classifier-guidance"): {"options": {"classifier_size": "tiny", "classifier_steps": 10},
                                              "sampling_method": _classifier_guidance_with_a_classifier},
    ("metric", "fidelity"): {"needs_evaluator": True},
    ("metric", "conditional"): {"needs_evaluator": True, "needs_labels": True},
    ("autoencoder", "vae"): {"autoencoder_options": {"size": "tiny"}},
    ("autoencoder", "image-vae"): {"autoencoder_options": {"size": "tiny"}},
}

#: built-ins checked by a refinement of their kind's suite: a representation backed by a trained autoencoder is
#: lossy and downsamples (its suite trains a tiny autoencoder once per process)
SUITE_BASES: dict[tuple[str, str], str] = {("representation", "latent"): "LatentRepresentationContract"}


_suites: dict[tuple[str, str], type] = {}


def suite(kind: str, name: str) -> type:
    """The contract suite of one built-in, built once (a data set's loaded splits are cached on its class)."""
    if (kind, name) not in _suites:
        if (kind, name) in SUITE_BASES:
            from cardiobench.testing import autoencoders

            base = getattr(autoencoders, SUITE_BASES[(kind, name)])
            _suites[(kind, name)] = type(f"{base.__name__}Builtin", (base,), {**SUITES.get((kind, name), {})})
        else:
            _suites[(kind, name)] = contract_suite(kind, name, **SUITES.get((kind, name), {}))
    return _suites[(kind, name)]


def _cases() -> list:
    cases = []
    for kind, name in BUILTINS:
        if kind not in CONTRACTS:
            cases.append(pytest.param(kind, name, None, id=f"{kind}-{name}-NO-SUITE"))
            continue
        cases += [pytest.param(kind, name, check, id=f"{kind}-{name}-{check.removeprefix('test_')}")
                  for check in contract_checks(suite(kind, name))]
    return cases


@pytest.fixture(scope="session")
def fake_roots(tmp_path_factory):
    """Fake ACDC trees (NIfTI and HDF5 layouts) and a fake nifti-pairs folder, built on first use, shared by the
    session."""

    class Roots(dict):
        def __missing__(self, name: str) -> Path:
            if str(DATA_TESTS) not in sys.path:
                sys.path.insert(0, str(DATA_TESTS))
            base = tmp_path_factory.mktemp(f"contract-{name}")
            if name == "acdc":
                from fake_acdc import build_fake_acdc

                self[name] = build_fake_acdc(base)
            elif name == "pairs":
                from cardiobench.data import open_dataset
                from cardiobench.data.pairs_npz import write_pairs

                slices = open_dataset("phantom", size=32, train_patients=3, test_patients=1, cache=False).load("train")
                self[name] = write_pairs(base, slices.images, slices.masks, slices.groups)
            elif name == "nifti-pairs":
                from fake_nifti_pairs import build_fake_pairs

                self[name] = build_fake_pairs(base)
            else:
                from fake_acdc_h5 import build_fake_h5

                self[name] = build_fake_h5(base)
            return self[name]

    return Roots()


@pytest.fixture
def torch_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and steadier on a shared machine
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_a_contract_suite(kind):
    assert kind in CONTRACTS, (f"plugin kind {kind!r} has no contract suite: write one in cardiobench/testing/ and "
                               "list it in cardiobench.testing.CONTRACTS")
    assert any(k == kind for k, _ in BUILTINS), f"no built-in {kind} exercises the {kind} contract suite"


def test_suite_settings_name_existing_builtins():
    assert set(SUITES) | set(SUITE_BASES) <= set(BUILTINS), (
        f"stale entries: {sorted((set(SUITES) | set(SUITE_BASES)) - set(BUILTINS))}")


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize(("kind", "name", "check"), _cases())
def test_builtin_passes_its_contract(kind, name, check, fake_roots):
    assert check is not None, f"plugin kind {kind!r} has no contract suite for its built-in {name!r}"
    cls = suite(kind, name)
    cls.fake_roots = fake_roots
    getattr(cls(), check)()
