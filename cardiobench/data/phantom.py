"""``phantom``: a seeded generator of ACDC-like short-axis slices, the offline default data set.

Every synthetic patient has a pathology group, an ED and an ES volume of 8-11 slices from base to apex,
an in-plane spacing of 1.3-1.8 mm and its own canvas, and goes through exactly the preprocessing of the
real ``acdc`` set (``cardiobench.data.source``), with the same splits and metadata.

Geometry, in polar coordinates ``(r, theta)`` about the LV centre (all lengths in mm)::

    LV cavity   r < R(theta)                              R = radius * (1 + 2nd and 3rd harmonics)
    myocardium  R(theta) <= r < R(theta) + T(theta)        T > 0 everywhere: a closed ring
    RV cavity   R + T <= r < R + T + h(theta)              only inside a sector about the RV direction

Each structure is star-shaped about the LV centre, so none has holes; the RV cavity lies on the
epicardium, touching the myocardium along the septum and never the LV cavity. The groups differ the
way they do in the clinic (ACDC criteria, Bernard et al. 2018):

    NOR   normal LV and RV, LV ejection fraction 55-70 %
    MINF  mildly dilated LV, EF 22-40 %, a regional wall thinning (infarct) that does not thicken in systole
    DCM   dilated LV (radius ~ +35 %), thin wall, EF 10-30 %
    HCM   small cavity, thick wall (thicker at the septum), EF 65-80 %
    RV    dilated RV (deeper and wider crescent), low RV ejection fraction, LV near normal

ES is derived from ED: the cavity shrinks with the ejection fraction and the wall thickens so that the
myocardial area is conserved. Toward the apex the LV narrows and the RV vanishes. The images are MRI-like
(cine SSFP look): bright blood, dark myocardium with papillary muscles, epicardial fat, dark lung, a thin
RV free wall (labelled background, as in ACDC), a smooth bias field, Gaussian blur (partial volume) and
Rician noise.

So that masks stay anatomically valid after resizing to 32x32 (nearest neighbour, default margin), the
wall is never thinner than 10 % of the heart's extent (about 2.7 px at 32 px), the cavity radius at least
6.5 %, the RV crescent ends bluntly, and the RV is left out of a slice where its depth would be under 11 %
(about 3 px). The price: a DCM wall is thin relative to its cavity (wall / cavity radius about 0.3 against
0.45 for NOR), not always in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from cardiobench.data.base import GROUPS
from cardiobench.data.source import Patient, Volume, VolumeSource
from cardiobench.errors import CardiobenchError

#: bump whenever the generator's output changes (invalidates cached phantom sets)
GENERATOR_VERSION = 1
#: per group: patients in the training pool (split into train/val) and in the test pool
DEFAULT_TRAIN_PATIENTS = 40
DEFAULT_TEST_PATIENTS = 6
DEFAULT_VAL_FRACTION = 0.15

# anatomical safety floors, as fractions of the heart's extent (see the module docstring)
WALL_FLOOR = 0.1
CAVITY_FLOOR = 0.065
RV_MIN_DEPTH = 0.11
RV_WALL_MM = 2.5


@dataclass(frozen=True)
class GroupProfile:
    """ED geometry at the base slice (mm), ejection fractions and the group's signature."""

    lv_radius: tuple[float, float]  # mean, sd
    wall: tuple[float, float]  # mean, sd
    ef: tuple[float, float]  # uniform range, LV
    rv_depth: tuple[float, float]  # mean, sd (thickest point of the crescent)
    rv_halfwidth_deg: tuple[float, float]  # uniform range of the crescent's half angle
    rv_ef: tuple[float, float]  # uniform range
    septal: tuple[float, float] = (1.0, 1.0)  # septal wall / free wall (HCM asymmetric hypertrophy)
    infarct: bool = False


PROFILES: dict[str, GroupProfile] = {
    "NOR": GroupProfile((24.0, 2.0), (10.5, 0.8), (0.55, 0.70), (21.0, 3.0), (58.0, 75.0), (0.45, 0.60)),
    "MINF": GroupProfile((28.0, 2.5), (12.5, 0.9), (0.22, 0.40), (21.0, 3.0), (58.0, 75.0), (0.40, 0.55), infarct=True),
    "DCM": GroupProfile((36.0, 2.5), (7.0, 0.7), (0.10, 0.30), (22.0, 3.0), (58.0, 75.0), (0.30, 0.50)),
    "HCM": GroupProfile((20.0, 1.8), (15.5, 1.5), (0.65, 0.80), (18.0, 3.0), (55.0, 70.0), (0.50, 0.65), (1.2, 1.5)),
    "RV": GroupProfile((23.0, 2.0), (8.5, 0.8), (0.50, 0.65), (36.0, 4.0), (80.0, 100.0), (0.20, 0.38)),
}


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi]."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def _radii(p: dict[str, Any], theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LV radius R, wall T and RV depth h at angles ``theta``.

    ``theta`` has shape ``(1, ...)`` (one set of angles for every slice); in ``p`` the per-slice values
    (``R``, ``T``, ``h``, floors) are ``(B,)`` arrays and the shape parameters shared by a volume's slices
    are scalars, so the angular profiles are computed once and only scaled per slice.
    """
    extra = (1,) * (theta.ndim - 1)

    def v(name: str) -> Any:
        val = p[name]
        return val.reshape(-1, *extra).astype(np.float32) if np.ndim(val) else np.float32(val)

    f_r = 1.0 + v("e2") * np.cos(2.0 * (theta - v("psi2"))) + v("e3") * np.cos(3.0 * (theta - v("psi3")))
    d_rv = _wrap(theta - v("theta_rv"))
    f_t = 1.0 + v("et") * np.cos(theta - v("psit"))
    f_t = f_t * (1.0 + (v("septal") - 1.0) * np.exp(-0.5 * (d_rv / 0.7) ** 2))
    f_t = f_t * (1.0 - v("inf_depth") * np.exp(-0.5 * (_wrap(theta - v("inf_theta")) / v("inf_width")) ** 2))
    f_h = np.clip(1.0 - (np.abs(d_rv) / v("rv_w")) ** 6, 0.0, None) ** 0.25
    R = np.maximum(v("R") * f_r, v("R_floor"))
    T = np.maximum(v("T") * f_t, v("T_floor"))
    return R, T, v("h") * f_h


_PROBE = np.linspace(-np.pi, np.pi, 96, endpoint=False)


def _extent(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice: the heart's extent (larger side of its bounding box) and the box centre (x, y) about the LV."""
    theta = _PROBE[None]
    R, T, h = _radii(p, theta)
    rho = R + T + h
    x, y = rho * np.cos(theta), rho * np.sin(theta)
    w = x.max(1) - x.min(1)
    hgt = y.max(1) - y.min(1)
    return np.maximum(w, hgt), (x.max(1) + x.min(1)) / 2, (y.max(1) + y.min(1)) / 2


def _apply_floors(p: dict[str, np.ndarray]) -> None:
    """Wall and cavity floors relative to the extent; drop RV crescents too thin to survive resizing."""
    ext, _, _ = _extent(p)
    p["h"] = np.where(p["h"] < RV_MIN_DEPTH * ext, 0.0, p["h"])
    for _ in range(2):  # raising the floors grows the heart a little: twice is enough
        ext, _, _ = _extent(p)
        p["T_floor"] = np.maximum(p["T_floor"], WALL_FLOOR * ext)
        p["R_floor"] = np.maximum(p["R_floor"], CAVITY_FLOOR * ext)


class PhantomSource(VolumeSource):
    """Synthetic ACDC-like short-axis slices (seeded, offline): the default data set."""

    name = "phantom"
    version = GENERATOR_VERSION

    def __init__(
        self,
        *,
        train_patients: int = DEFAULT_TRAIN_PATIENTS,
        test_patients: int = DEFAULT_TEST_PATIENTS,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        **kwargs: Any,
    ):
        super().__init__(val_fraction=val_fraction, **kwargs)
        for label, n in (("train_patients", train_patients), ("test_patients", test_patients)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise CardiobenchError(f"{label} (patients per group) must be a non-negative integer, got {n!r}")
        if train_patients < 1:
            raise CardiobenchError("train_patients (patients per group) must be at least 1")
        self.train_patients = int(train_patients)
        self.test_patients = int(test_patients)

    def fingerprint(self) -> Any:
        return {"generator": GENERATOR_VERSION, "train": self.train_patients, "test": self.test_patients}

    def source_info(self) -> dict[str, Any]:
        return {
            "source": f"synthetic (seed {self.seed}, {self.train_patients}+{self.test_patients} patients per group)"
        }

    def patients(self, problems: list[dict[str, str]]) -> list[Patient]:
        out = []
        per_group = self.train_patients + self.test_patients
        for g in range(len(GROUPS)):
            for k in range(per_group):
                pool = "training" if k < self.train_patients else "testing"
                out.append(Patient(f"phantom{g * per_group + k + 1:04d}", g, pool))
        return out

    def read_patient(self, patient: Patient) -> list[Volume]:
        number = int(patient.id[len("phantom") :])
        return render_patient(self.seed, number, GROUPS[patient.group])


def _patient_params(rng: np.random.Generator, group: str) -> dict[str, Any]:
    prof = PROFILES[group]
    n = int(rng.integers(8, 12))
    z = np.linspace(0.0, rng.uniform(0.85, 0.95), n) + rng.normal(0.0, 0.015, n)
    z = np.clip(z, 0.0, 0.97)
    z[0] = 0.0
    par = {
        "z": z,
        "spacing": float(rng.uniform(1.3, 1.8)),
        "thickness": float(rng.choice([5.0, 6.5, 8.0, 10.0])),
        "R": max(rng.normal(*prof.lv_radius), 10.0),
        "T": max(rng.normal(*prof.wall), 4.0),
        "ef": rng.uniform(*prof.ef),
        "h": max(rng.normal(*prof.rv_depth), 8.0),
        "rv_w": np.deg2rad(rng.uniform(*prof.rv_halfwidth_deg)),
        "rv_ef": rng.uniform(*prof.rv_ef),
        "rv_end": rng.uniform(0.70, 0.88),  # the RV disappears beyond this depth toward the apex
        "septal": rng.uniform(*prof.septal),
        "theta_rv": np.pi + 0.35 + rng.normal(0.0, 0.3),  # the RV sits to the left, slightly up
        "e2": rng.uniform(0.0, 0.07),
        "psi2": rng.uniform(0, np.pi),
        "e3": rng.uniform(0.0, 0.03),
        "psi3": rng.uniform(0, 2 * np.pi),
        "et": rng.uniform(0.0, 0.10),
        "psit": rng.uniform(0, 2 * np.pi),
        "inf_theta": rng.uniform(0, 2 * np.pi),
        "inf_width": rng.uniform(0.4, 0.65),
        "inf_depth": rng.uniform(0.5, 0.65) if prof.infarct else 0.0,
        "twist": rng.normal(0.0, 0.05),
        # image appearance
        "blood": rng.uniform(0.78, 0.95),
        "myo": rng.uniform(0.20, 0.30),
        "tissue": rng.uniform(0.30, 0.42),
        "fat": rng.uniform(0.65, 0.85),
        "lung": rng.uniform(0.02, 0.07),
        "fat_dir": rng.uniform(0, 2 * np.pi),
        "fat_w": rng.uniform(2.5, 5.0),
        "lung_gap": rng.uniform(8.0, 16.0),
        "lung_dir": rng.normal(0.0, 0.35),
        "bias": rng.normal(0.0, 0.12, 3),
        "noise": rng.uniform(0.02, 0.05),
        "blur": rng.uniform(0.5, 0.9),
        "texture": rng.uniform(0, 2 * np.pi, (3, 3)),
        "jitter": rng.uniform(-4.0, 4.0, 2),
    }
    return par


def _slice_params(par: dict[str, Any], phase: str) -> dict[str, np.ndarray]:
    """Per-slice geometry (arrays of length n) for one phase."""
    z = par["z"]
    n = len(z)
    R, T, h = par["R"], par["T"], par["h"]
    inf_depth = par["inf_depth"]
    if phase == "ES":
        R_es = R * (1.0 - par["ef"]) ** 0.45
        area = (R + T) ** 2 - R**2  # myocardial area conserved
        T_es = np.sqrt(R_es**2 + area) - R_es
        if inf_depth:  # the infarcted segment keeps its diastolic thickness (akinetic)
            inf_depth = 1.0 - (1.0 - inf_depth) * T / T_es
        R, T = R_es, T_es
        h = h * (1.0 - par["rv_ef"]) ** 0.6
    taper = np.sqrt(np.clip(1.0 - (z / 1.1) ** 2, 0.0, None))
    rv_taper = np.sqrt(np.clip(1.0 - (z / par["rv_end"]) ** 2, 0.0, None))
    twist = par["twist"] if phase == "ES" else 0.0
    p: dict[str, Any] = {
        # per slice
        "R": R * taper,
        "T": T * (1.0 - 0.25 * z),
        "h": h * rv_taper,
        "T_floor": np.zeros(n),
        "R_floor": np.zeros(n),
        # shared by the volume's slices
        "rv_w": par["rv_w"],
        "theta_rv": par["theta_rv"] + twist,
        "septal": par["septal"],
        "e2": par["e2"],
        "psi2": par["psi2"] + twist,
        "e3": par["e3"],
        "psi3": par["psi3"] + twist,
        "et": par["et"],
        "psit": par["psit"],
        "inf_theta": par["inf_theta"] + twist,
        "inf_width": par["inf_width"],
        "inf_depth": inf_depth,
    }
    _apply_floors(p)
    return p


def render_patient(seed: int, number: int, group: str) -> list[Volume]:
    """The ED and ES volumes of synthetic patient ``number`` (deterministic in ``seed`` and ``number``)."""
    rng = np.random.default_rng([int(seed), int(number), GROUPS.index(group)])
    par = _patient_params(rng, group)
    phases = {ph: _slice_params(par, ph) for ph in ("ED", "ES")}
    s = par["spacing"]
    # one canvas per patient, large enough for every slice's heart plus its surroundings
    exts, cxs, cys = zip(*(_extent(p) for p in phases.values()), strict=True)
    ext_max = float(max(e.max() for e in exts))
    centre = np.array([np.mean(cxs[0][:3]), np.mean(cys[0][:3])])  # bbox centre about the LV, base slices
    theta = np.linspace(-np.pi, np.pi, 96, endpoint=False)
    reach_x, reach_y = 0.0, 0.0
    for p in phases.values():
        Rr, Tt, hh = _radii(p, theta[None])
        rho = Rr + Tt + hh + RV_WALL_MM
        reach_x = max(reach_x, float(np.abs(rho * np.cos(theta) - centre[0]).max()))
        reach_y = max(reach_y, float(np.abs(rho * np.sin(theta) - centre[1]).max()))
    pad = 0.2 * ext_max + 8.0
    W = int(np.ceil(2 * (reach_x + pad) / s))
    H = int(np.ceil(2 * (reach_y + pad) / s))
    lv_centre = -centre + par["jitter"]  # LV centre in mm from the canvas centre
    volumes = []
    for pi, (phase, p) in enumerate(phases.items()):
        image, mask = _render(p, par, H, W, s, lv_centre)
        _add_noise(image, par, seed, number, pi)
        volumes.append(Volume(phase, np.moveaxis(image, 0, -1), np.moveaxis(mask, 0, -1), (s, s), par["thickness"]))
    return volumes


def _render(
    p: dict[str, Any], par: dict[str, Any], H: int, W: int, s: float, lv_centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W) clean image and mask for one phase (angular profiles once per volume, scaled per slice)."""
    n = len(p["R"])
    f32 = np.float32
    y = ((np.arange(H, dtype=f32) - (H - 1) / 2) * f32(s) - f32(lv_centre[1])).reshape(1, H, 1)
    x = ((np.arange(W, dtype=f32) - (W - 1) / 2) * f32(s) - f32(lv_centre[0])).reshape(1, 1, W)
    x, y = np.broadcast_arrays(x, y)
    r = np.hypot(x, y)
    theta = np.arctan2(y, x)
    R, T, h = _radii(p, theta)
    epi = R + T
    lv = r < R
    myo = ~lv & (r < epi)
    rv_out = epi + h
    rv = (r >= epi) & (r < rv_out)
    mask = np.zeros((n, H, W), np.uint8)
    mask[rv] = 1
    mask[myo] = 2
    mask[lv] = 3

    # --- image: tissue texture, lung, fat, RV free wall, blood pools, papillary muscles ------------
    tex = par["texture"]
    base = par["tissue"] + 0.05 * (
        np.cos(x / 23.0 + tex[0, 0]) * np.cos(y / 31.0 + tex[0, 1])
        + 0.6 * np.cos((x + y) / 13.0 + tex[1, 0])
        + 0.4 * np.cos((x - 0.5 * y) / 7.0 + tex[1, 1])
    )
    d_lung = _wrap(theta - f32(p["theta_rv"] + np.pi + par["lung_dir"]))
    fat_w = par["fat_w"] * np.clip(np.cos(theta - par["fat_dir"]), 0.0, None) ** 2
    base = base.astype(f32)
    lung_edge = epi + f32(par["lung_gap"]) + 4.0 * np.cos(3.0 * theta + tex[2, 0]).astype(f32)
    img = np.where((np.abs(d_lung) < 1.25) & (r > lung_edge), f32(par["lung"]), base)
    has_rv = (h > 0) & (r >= rv_out)
    rv_fat = has_rv & (r >= rv_out + RV_WALL_MM) & (r < rv_out + RV_WALL_MM + fat_w)
    fat = ((r >= epi) & (r < epi + fat_w) & ~rv) | rv_fat
    img[fat] = par["fat"]
    img[myo | (has_rv & (r < rv_out + RV_WALL_MM))] = par["myo"]  # myocardium and the RV free wall
    img[rv] = 0.92 * par["blood"]
    img[lv] = par["blood"]
    # papillary muscles: two dark blobs inside the LV cavity (labelled LV, as in ACDC)
    Rs = p["R"].reshape(-1, 1, 1).astype(f32)
    for k, side in enumerate((-0.9, 0.9)):
        ang = p["theta_rv"] + np.pi + side
        rad = 0.16 * Rs * (1.0 + 0.15 * k)
        pap = lv & ((x - 0.62 * Rs * np.cos(ang)) ** 2 + (y - 0.62 * Rs * np.sin(ang)) ** 2 < rad**2) & (Rs > 9.0)
        img[pap] = 0.4 * (par["myo"] + par["blood"])
    # smooth multiplicative bias field
    b = par["bias"]
    field = 1.0 + b[0] * x / 100.0 + b[1] * y / 100.0 + b[2] * (x**2 + y**2) / 100.0**2
    img *= field.astype(f32)
    return img, mask


def _add_noise(image: np.ndarray, par: dict[str, Any], seed: int, number: int, phase: int) -> None:
    """In place, on an (n, H, W) volume: in-plane Gaussian blur (partial volume), then Rician noise; seeded."""
    rng = np.random.default_rng([int(seed), int(number), 1000 + phase])
    blurred = gaussian_filter(image, (0.0, par["blur"], par["blur"]), mode="nearest")
    noise = rng.standard_normal((2, *image.shape), dtype=np.float32) * np.float32(par["noise"])
    np.sqrt((blurred + noise[0]) ** 2 + noise[1] ** 2, out=image)
