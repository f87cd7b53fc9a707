"""FID, KID, IS and precision/recall through torch-fidelity, with the domain evaluator as the ruler.

torch-fidelity 0.4 is called with in-memory datasets that return one bare ``uint8`` CHW tensor per item,
``cuda`` set from the engine's device, ``cache=False``, ``save_cpu_ram=True`` and ``verbose=False``, so it
never downloads or writes anything. Two rulers:

- ``domain`` (default): ``DomainFeatureExtractor``, registered with torch-fidelity as
  ``cardiobench-domain``. Items are (1, H, W) label maps; the extractor loads the evaluator file passed as
  ``feature_extractor_weights_path`` and returns its 128-d penultimate ``features`` (FID, KID, PR) and
  ``logits`` (IS).
- ``inception``: torch-fidelity's ``inception-v3-compat`` network (registered as ``cardiobench-inception-v3``,
  ``SafeInceptionV3``), whose weights cardiobench reads from the user's file weights-only and hands over as a
  plain state dict (torch-fidelity's own loader would unpickle the file with ``weights_only=False``); masks are
  colour-coded to RGB with ``cardiobench.viz.colorize``.

Set sizes adapt with a ``FidelityWarning`` instead of failing: ``kid_subset_size`` (default 1000) is at
most half the smaller set (at most the smaller set when given explicitly), IS uses fewer splits below
100 samples, precision/recall (3-NN manifolds) need at least 4 masks per set.

Relative FID (Woodland et al., "Feature extraction for generative medical imaging evaluation: new evidence
against an evolving trend", MICCAI 2024): FID divided by the FID between two random halves of the real set,
the real-vs-real distance of the same ruler at (half) the same set size (``real_vs_real_halves``, the median
over ``N_HALVES`` random halvings; ``relative_fid``). It makes FIDs of different rulers readable on one scale:
1 means "as far from the real data as real data is from itself".
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from cardiobench.errors import CardiobenchError, warn
from cardiobench.metrics.evaluator import PathologyCNN, load_evaluator_file, to_input
from cardiobench.metrics.segmentation import as_label_maps
from cardiobench.safeload import check_state_dict, read_torch_file

DOMAIN_EXTRACTOR = "cardiobench-domain"
#: torch-fidelity's ``inception-v3-compat`` network, with cardiobench's weights-only loader (SafeInceptionV3)
INCEPTION_EXTRACTOR = "cardiobench-inception-v3"
FEATURE_EXTRACTORS = ("domain", "inception")
KID_SUBSET_SIZE = 1000  # torch-fidelity's default, used whenever both sets are that large
ISC_SPLITS = 10
PRC_NEIGHBOURHOOD = 3
#: random halvings of the real set behind the relative-FID reference (median and min/max over them)
N_HALVES = 5

#: where torch-fidelity's own Inception weights come from (its download URL, not reachable offline)
try:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
except ImportError:  # pragma: no cover - other torch-fidelity versions
    URL_INCEPTION_V3 = "https://github.com/toshas/torch-fidelity/releases"


class FidelityWarning(UserWarning):
    """A set was too small for a metric's default settings; the setting was adapted (or the metric skipped)."""


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor over cardiobench label maps: the domain evaluator's features/logits."""

    PROVIDED = ("features", "logits")

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise CardiobenchError("the domain feature extractor needs feature_extractor_weights_path (an evaluator)")
        ev = load_evaluator_file(feature_extractor_weights_path)
        self.size = ev.config.size
        self.net: PathologyCNN = ev.model
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list():
        return DomainFeatureExtractor.PROVIDED

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 64, 64, dtype=torch.uint8)

    def forward(self, x):
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W) uint8 label maps, got {tuple(x.shape)} {x.dtype}")
        feats, logits = self.net(to_input(x[:, 0], self.size))
        out = {"features": feats, "logits": logits}
        return tuple(out[name] for name in self.features_list)


def register_domain_extractor() -> None:
    """Register cardiobench's feature extractors with torch-fidelity (idempotent)."""
    if DOMAIN_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(DOMAIN_EXTRACTOR, DomainFeatureExtractor)
    if INCEPTION_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(INCEPTION_EXTRACTOR, SafeInceptionV3)


class LabelMapDataset(Dataset):
    """(N, H, W) label maps -> items (1, H, W) uint8 (what torch-fidelity accepts: a bare tensor)."""

    def __init__(self, masks: np.ndarray):
        self.masks = torch.from_numpy(np.ascontiguousarray(as_label_maps(masks)))

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.masks[i][None]


class ColourMaskDataset(Dataset):
    """(N, H, W) label maps -> items (3, H, W) uint8 RGB, colour-coded (for Inception)."""

    def __init__(self, masks: np.ndarray):
        from cardiobench.viz import colorize

        rgb = colorize(as_label_maps(masks))  # (N, H, W, 3)
        self.images = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _inception_hint() -> str:
    name = os.path.basename(URL_INCEPTION_V3)
    return f"download torch-fidelity's {name} from {URL_INCEPTION_V3} and pass its path"


def check_inception_weights(path: str | os.PathLike | None) -> Path:
    """The Inception weights file, or a one-line error saying where to get it (existence only)."""
    name = os.path.basename(URL_INCEPTION_V3)
    if path is None:
        raise CardiobenchError(
            "--feature-extractor inception needs --inception-weights FILE",
            f"download torch-fidelity's {name} from {URL_INCEPTION_V3} (no download happens here)",
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise CardiobenchError(f"Inception weights not found: {p}", _inception_hint())
    return p


def read_inception_weights(path: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    """The Inception state dict in ``path``, read weights-only (a file that would run code is refused).

    torch-fidelity's own loader unpickles the file with ``weights_only=False``; cardiobench never hands it a
    user's path, only this checked state dict (see ``SafeInceptionV3``).
    """
    p = check_inception_weights(path)
    what, hint = "Inception weights", _inception_hint()
    state = check_state_dict(read_torch_file(p, what=what, hint=hint), p, what=what, hint=hint)
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (1008, 2048):
        raise CardiobenchError(f"{what} {p} are not torch-fidelity's InceptionV3 weights (no fc.weight of shape "
                               "1008x2048)", hint)
    published = re.search(r"-([0-9a-f]{8,})\.pth$", URL_INCEPTION_V3)
    if published and not hashlib.sha256(p.read_bytes()).hexdigest().startswith(published.group(1)):
        warn(f"{p} is not torch-fidelity's published Inception file (its sha256 does not start with "
             f"{published.group(1)}): FID/KID/IS are not comparable with published values", FidelityWarning)
    return state


class SafeInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's ``inception-v3-compat`` whose weights file is read weights-only by cardiobench.

    The user's file is loaded with ``read_inception_weights``; torch-fidelity then receives an in-memory copy
    of that plain state dict (tensors only, re-serialised here), never the user's file.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        state = read_inception_weights(feature_extractor_weights_path)
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        try:
            super().__init__(name, features_list, feature_extractor_weights_path=buf, **kwargs)
        except RuntimeError as exc:  # load_state_dict: missing or misshapen tensors
            raise CardiobenchError(
                f"Inception weights {feature_extractor_weights_path} do not fit torch-fidelity's InceptionV3: "
                f"{' '.join(str(exc).split())[:160]}", _inception_hint()) from None


def _adapt(n1: int, n2: int, kid_subset_size: int | None, isc_splits: int | None):
    """Settings that fit the set sizes, and the warnings saying what was adapted."""
    notes: list[str] = []
    kid = kid_subset_size or KID_SUBSET_SIZE
    # half the smaller set at most, so the 100 KID subsets differ and its std means something
    fit = min(n1, n2) if kid_subset_size else max(2, min(n1, n2) // 2)
    if kid > fit:
        # the same words whichever set comes first: the samples' and the reference row's notes are one warning
        small, large = sorted((n1, n2))
        notes.append(f"KID subset size lowered from {kid} to {fit} (sets of {small} and {large})")
        kid = fit
    splits = isc_splits or ISC_SPLITS
    if n1 < 10 * splits:
        new = max(1, min(splits, n1 // 10))
        if new != splits:
            notes.append(f"IS splits lowered from {splits} to {new} ({n1} samples)")
        splits = new
    prc = min(n1, n2) > PRC_NEIGHBOURHOOD
    if not prc:
        notes.append(f"precision/recall skipped: need more than {PRC_NEIGHBOURHOOD} masks per set")
    return kid, splits, prc, notes


def _extractor(feature_extractor: str, evaluator_path, inception_weights) -> tuple[str, str, type]:
    """``(torch-fidelity extractor name, weights path, dataset class)`` of a ruler, checked, extractors registered."""
    if feature_extractor not in FEATURE_EXTRACTORS:
        raise CardiobenchError(
            f"unknown feature extractor {feature_extractor!r}", f"use one of: {', '.join(FEATURE_EXTRACTORS)}"
        )
    register_domain_extractor()
    if feature_extractor == "domain":
        if evaluator_path is None:
            raise CardiobenchError("the domain ruler needs an evaluator file (evaluator_path)")
        return DOMAIN_EXTRACTOR, str(evaluator_path), LabelMapDataset
    return INCEPTION_EXTRACTOR, str(check_inception_weights(inception_weights)), ColourMaskDataset


def fidelity_metrics(
    samples,
    real,
    *,
    evaluator_path: str | os.PathLike | None = None,
    feature_extractor: str = "domain",
    inception_weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    kid_subset_size: int | None = None,
    isc_splits: int | None = None,
    batch_size: int = 128,
    seed: int = 2020,
) -> dict:
    """FID, KID (mean, std), IS (mean, std) of ``samples`` and precision/recall/F against ``real``.

    Both are (N, H, W) label maps of the same size. Returns ``fid, kid, kid_std, is, is_std, precision,
    recall, f_score`` and ``_settings`` (the KID subset size, IS splits and notes actually used).
    """
    s, r = as_label_maps(samples, "samples"), as_label_maps(real, "real")
    if len(s) < 2 or len(r) < 2:
        raise CardiobenchError(f"FID needs at least 2 masks per set, got {len(s)} samples and {len(r)} real masks")
    if s.shape[1:] != r.shape[1:]:
        raise CardiobenchError(f"samples are {s.shape[1]}x{s.shape[2]} but the real masks {r.shape[1]}x{r.shape[2]}")
    extractor, weights, make = _extractor(feature_extractor, evaluator_path, inception_weights)
    kid, splits, prc, notes = _adapt(len(s), len(r), kid_subset_size, isc_splits)
    for note in notes:
        warn(note, FidelityWarning)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    ctx = torch.cuda.device(dev) if cuda and dev.index is not None else contextlib.nullcontext()
    with ctx:
        out = torch_fidelity.calculate_metrics(
            input1=make(s),
            input2=make(r),
            cuda=cuda,
            batch_size=batch_size,
            isc=True,
            fid=True,
            kid=True,
            prc=prc,
            feature_extractor=extractor,
            feature_extractor_weights_path=weights,
            kid_subset_size=kid,
            isc_splits=splits,
            cache=False,
            save_cpu_ram=True,
            verbose=False,
            rng_seed=seed,
        )
    nan = float("nan")
    return {
        "fid": float(out["frechet_inception_distance"]),
        "kid": float(out["kernel_inception_distance_mean"]),
        "kid_std": float(out["kernel_inception_distance_std"]),
        "is": float(out["inception_score_mean"]),
        "is_std": float(out["inception_score_std"]),
        "precision": float(out.get("precision", nan)),
        "recall": float(out.get("recall", nan)),
        "f_score": float(out.get("f_score", nan)),
        "_settings": {
            "kid_subset_size": kid,
            "isc_splits": splits,
            "feature_extractor": feature_extractor,
            "notes": notes,
        },
    }


# -- FID from features, the real-vs-real reference and relative FID -----------------------------------------
def frechet_distance(features1, features2) -> float:
    """FID between Gaussians fitted to two feature sets (Heusel et al. 2017):
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), by torch-fidelity's own implementation, so the value is
    the one ``fidelity_metrics`` reports for the same features. NaN when a set has fewer than 2 rows."""
    f1 = torch.as_tensor(np.ascontiguousarray(features1, dtype=np.float32))
    f2 = torch.as_tensor(np.ascontiguousarray(features2, dtype=np.float32))
    if f1.ndim != 2 or f2.ndim != 2 or len(f1) < 2 or len(f2) < 2:
        return float("nan")
    stats1, stats2 = fid_features_to_statistics(f1), fid_features_to_statistics(f2)
    return float(fid_statistics_to_metric(stats1, stats2, verbose=False)[KEY_METRIC_FID])


def ruler_features(
    masks,
    *,
    evaluator_path: str | os.PathLike | None = None,
    feature_extractor: str = "domain",
    inception_weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
) -> np.ndarray:
    """(N, F) float32 FID features of label maps, extracted by torch-fidelity with the same extractor, layer
    and data path as ``fidelity_metrics`` (so FIDs computed from them equal its FIDs)."""
    m = as_label_maps(masks)
    name, weights, make = _extractor(feature_extractor, evaluator_path, inception_weights)
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    ctx = torch.cuda.device(dev) if cuda and dev.index is not None else contextlib.nullcontext()
    with ctx:
        extractor = create_feature_extractor(name, [layer], cuda=cuda, feature_extractor_weights_path=weights,
                                             verbose=False)
        feats = get_featuresdict_from_dataset(make(m), extractor, batch_size, cuda, True, False)[layer]
    return feats.numpy().astype(np.float32, copy=False)


def real_vs_real_halves(features, *, n_splits: int = N_HALVES, seed: int = 0) -> dict | None:
    """The relative-FID reference (Woodland et al. 2024): FID between two random halves of the real set's
    features, ``n_splits`` times with a seeded permutation each. Returns ``median``, ``min``, ``max`` (the
    spread reported), ``values``, ``n_half`` and ``n_splits``; ``None`` when a half would hold fewer than
    2 masks."""
    f = np.asarray(features, dtype=np.float32)
    half = len(f) // 2
    if half < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        perm = rng.permutation(len(f))
        values.append(frechet_distance(f[perm[:half]], f[perm[half : 2 * half]]))
    v = np.asarray(values, dtype=np.float64)
    return {
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "values": [float(x) for x in v],
        "n_half": int(half),
        "n_splits": int(n_splits),
    }


def real_reference(real, *, seed: int = 0, **ruler) -> dict | None:
    """``real_vs_real_halves`` of the real label maps ``real`` under the ruler given as ``ruler_features``
    keywords (``evaluator_path``, ``feature_extractor``, ``inception_weights``, ``device``)."""
    return real_vs_real_halves(ruler_features(real, **ruler), seed=seed)


def relative_fid(fid: float, reference: dict | None) -> float:
    """FID / the median real-vs-real FID of random halves (Woodland et al. 2024); NaN when that median is
    not positive (a collapsed ruler, whose real halves are at distance 0) or unknown."""
    med = None if reference is None else reference.get("median")
    if med is None or not np.isfinite(med) or med <= 0 or not np.isfinite(fid):
        return float("nan")
    return float(fid / med)
