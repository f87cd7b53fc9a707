"""Which ruler should measure FID on real data? A study of candidate rulers on a ladder of degraded masks.

A ruler (the features FID is computed from) is good when its FID rises as samples get worse. "Worse" is
made measurable with a **degradation ladder**: ``n`` real training masks (``n`` = the size of the test
split, drawn at random with ``seed``), damaged at increasing strengths, every rung compared with the real test
split (the reference of every generation result):

- ``real``: the undamaged masks (the best rung: real vs real);
- ``erode-s``, ``dilate-s``, ``holes-s`` (s = 1..5): ``cardiobench.metrics.degrade`` at strength s, every map;
- ``missing_rv-s``: the RV removed from a share s/5 of the maps (``missing_rv`` has no strength of its own);
- ``blobs-s``: a share s/5 of the maps replaced by random blob label fields (``baselines.random_blob_masks``).

The rungs share their source masks, so the damage is the only difference between them (degrading the test
masks themselves would compare every rung with its own source and favour mild damage over real masks).

For every rung, ruler-free measures of quality: ``anatomy_valid_frac`` (Painchaud et al. 2020 criteria,
``metrics.anatomy``) and ``nn_dice`` (mean Dice to the nearest real mask, ``metrics.memorisation``) against
the **validation** split (against the training split the ``real`` rung would find itself: Dice 1). For every
ruler: its validity record (``metrics.validity``: accuracy against chance where the ruler has a classifier,
and the ordering real < mismatched < damaged < blobs), the FID of every rung against the test split, and
Spearman rank correlations:

- ``rho_anatomy`` = Spearman(FID, anatomy_valid_frac) and ``rho_nn_dice`` = Spearman(FID, nn_dice) over all
  rungs. **Sign convention:** FID should fall as plausibility and nearest-real Dice rise, so a good ruler has
  rho close to **-1**; 0 = FID ignores that kind of quality; +1 = FID rewards damage.
- ``rho_strength[family]`` = Spearman(FID, s) over the rungs ``real`` (s = 0) and ``family-1..5``: **+1**
  when FID rises with every step of that damage; ``rho_strength_mean`` their mean over the five families.

Rulers: the domain evaluator with each objective (``EvaluatorConfig.objective``: ``pathology``, ``ssl``), and
torch-fidelity's Inception-v3 on colour renderings of the masks when a local weights file is given (it has no
classifier for pathology: accuracy does not apply, only the ordering is judged). ``decide`` picks the default:
among the rulers that pass their validity record, the one with the highest ``decision_score`` (the mean of
``rho_strength_mean`` and ``-rho_nn_dice``; ``rho_anatomy`` is reported, not scored: see ``decision_score``);
none when none passes. The thin script ``benchmarks/ruler_study.py`` runs it and writes
Markdown and JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the damage families of the ladder, in table order
FAMILIES: tuple[str, ...] = ("erode", "dilate", "holes", "missing_rv", "blobs")
STRENGTHS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass
class Rung:
    """One set of the ladder: ``family`` ("real" for the best rung) at ``level`` (0 for real)."""

    name: str
    family: str
    level: int
    masks: np.ndarray
    quality: dict[str, float] = field(default_factory=dict)


@dataclass
class Ruler:
    """A candidate ruler: ``features(masks) -> (N, F)``; ``logits`` for the accuracy check (``None``: no
    classifier). ``features=None``: not measured, ``note`` says why."""

    name: str
    features: Callable[[np.ndarray], np.ndarray] | None
    logits: Callable[[np.ndarray], np.ndarray] | None = None
    ident: str | None = None
    train_seconds: float | None = None
    note: str | None = None
    record: dict[str, Any] | None = None  # a validity record measured elsewhere (an evaluator's own)


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties get average ranks; scipy.stats.spearmanr); NaN when fewer than 3
    finite pairs or either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def build_ladder(source: np.ndarray, *, strengths: tuple[int, ...] = STRENGTHS, seed: int = 0) -> list[Rung]:
    """The rungs made from ``source`` (N, S, S) real masks: ``real`` then every family at every strength."""
    from cardiobench.metrics.baselines import random_blob_masks
    from cardiobench.metrics.degrade import degrade, missing_rv

    m = np.asarray(source, dtype=np.uint8)
    n, size = len(m), int(m.shape[-1])
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # the maps that lose their RV / become blobs first: a nested prefix per share
    blobs = random_blob_masks(n, size, seed=seed)
    top = max(strengths)
    rungs = [Rung("real", "real", 0, m)]
    for family in FAMILIES:
        for s in strengths:
            if family in ("erode", "dilate", "holes"):
                out = degrade(m, family, strength=s, seed=seed)
            else:
                sel = order[: int(round(n * s / top))]
                out = m.copy()
                out[sel] = missing_rv(m[sel]) if family == "missing_rv" else blobs[sel]
            rungs.append(Rung(f"{family}-{s}", family, s, out))
    return rungs


def measure_quality(rungs: list[Rung], reference: np.ndarray, *, spacing=None, unit: str = "mm") -> None:
    """Fill every rung's ``quality``: ``anatomy_valid_frac`` and ``nn_dice`` (mean nearest-``reference`` Dice)."""
    from cardiobench.metrics.anatomy import evaluate_anatomy
    from cardiobench.metrics.memorisation import nearest_dice

    for rung in rungs:
        rung.quality = {
            "anatomy_valid_frac": float(evaluate_anatomy(rung.masks, spacing, unit)["anatomy_valid_frac"]),
            "nn_dice": float(nearest_dice(rung.masks, reference).mean()),
        }


def ladder_fids(features: Callable[[np.ndarray], np.ndarray], real: np.ndarray, rungs: list[Rung]) -> list[float]:
    """FID (torch-fidelity's formula, ``fidelity.frechet_distance``) of every rung against ``real``."""
    from cardiobench.metrics.fidelity import frechet_distance

    f_real = np.asarray(features(real))
    return [frechet_distance(f_real, np.asarray(features(r.masks))) for r in rungs]


def ladder_correlations(fids: list[float], rungs: list[Rung]) -> dict[str, Any]:
    """``rho_anatomy``, ``rho_nn_dice`` (good ruler: -1), ``rho_strength`` per family and their mean (good: +1)."""
    f = np.asarray(fids, dtype=np.float64)
    out: dict[str, Any] = {
        name: spearman(f, [r.quality.get(key, float("nan")) for r in rungs])
        for name, key in (("rho_anatomy", "anatomy_valid_frac"), ("rho_nn_dice", "nn_dice"))
    }
    per: dict[str, float] = {}
    for family in dict.fromkeys(r.family for r in rungs if r.family != "real"):
        idx = [i for i, r in enumerate(rungs) if r.family in ("real", family)]
        per[family] = spearman(f[idx], [rungs[i].level for i in idx])
    out["rho_strength"] = per
    vals = [v for v in per.values() if math.isfinite(v)]
    out["rho_strength_mean"] = float(np.mean(vals)) if vals else float("nan")
    return out


def ruler_record(ruler: Ruler, splits: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """The ruler's validity record: its own (an evaluator's, measured when it was trained) or measured now.
    A ruler without a classifier is judged on the ordering alone (``accuracy`` n/a)."""
    from cardiobench.metrics.validity import ordering_failures, validity_record

    if ruler.record is not None:
        return ruler.record
    train, test = splits["train"], splits["test"]
    record = validity_record(ruler.features, test.masks, test.groups, train.masks, train.groups,
                             logits=ruler.logits, seed=seed)
    if ruler.logits is None:  # no classifier: only the ordering is judged
        failures = ordering_failures(record["ordering"])
        record.update(valid=not failures, accuracy=float("nan"),
                      flag=("ordering fails at " + ", ".join(failures)) if failures else None)
    return record


def study_ruler(ruler: Ruler, splits: dict[str, Any], rungs: list[Rung], *, seed: int = 0) -> dict[str, Any]:
    """Everything the study reports about one ruler (``{"measured": False, "note"}`` when it was not)."""
    if ruler.features is None:
        return {"name": ruler.name, "measured": False, "note": ruler.note}
    t0 = time.perf_counter()
    record = ruler_record(ruler, splits, seed=seed)
    fids = ladder_fids(ruler.features, splits["test"].masks, rungs)
    return {
        "name": ruler.name,
        "measured": True,
        "id": ruler.ident,
        "train_seconds": ruler.train_seconds,
        "note": ruler.note,
        "valid": bool(record.get("valid")),
        "flag": record.get("flag"),
        "accuracy": record.get("accuracy"),
        "chance": record.get("chance"),
        "ordering": record.get("ordering"),
        "ordering_failures": record.get("ordering_failures"),
        "damaged_per_transform": record.get("damaged_per_transform"),
        "ladder_fid": {r.name: round(float(v), 6) for r, v in zip(rungs, fids, strict=True)},
        **ladder_correlations(fids, rungs),
        "study_seconds": round(time.perf_counter() - t0, 2),
    }


def decision_score(r: dict[str, Any]) -> float:
    """How well a ruler's FID follows the ladder: the mean of ``rho_strength_mean`` (FID against the known
    damage strength, +1 best) and ``-rho_nn_dice`` (FID against nearest-real Dice, -1 best), so +1 best; NaN
    parts are skipped. ``rho_anatomy`` is reported but not scored: ``anatomy_valid_frac`` is not monotone in
    damage (a structure that is absent passes every criterion about it, so removing the RV or eroding a
    structure away makes slices *more* valid), which makes it a poor yardstick for a ruler."""
    vals = [r.get("rho_strength_mean"), None if r.get("rho_nn_dice") is None else -r["rho_nn_dice"]]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("-inf")


def decide(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The default ruler by the evidence: among measured rulers whose validity record passes, the one with
    the highest ``decision_score``; ``{"ruler": None}`` when none passes (keep the flag)."""
    passing = [r for r in results if r.get("measured") and r.get("valid")]
    if not passing:
        return {"ruler": None, "reason": "no measured ruler passes its validity record: keep the flag"}
    best = max(passing, key=decision_score)
    scores = ", ".join(f"{r['name']} {decision_score(r):.3f}" for r in passing)
    return {"ruler": best["name"], "score": decision_score(best),
            "reason": f"passes its validity record and follows the ladder best: mean of rho(FID, strength) and "
                      f"-rho(FID, nn-Dice) = {scores}"}


def evaluator_ruler(name: str, ev: Any) -> Ruler:
    """A domain evaluator (``metrics.evaluator.Evaluator``) as a ruler, with its own validity record."""
    return Ruler(name, lambda m: ev.predict(m)[0], lambda m: ev.predict(m)[1], ident=ev.id,
                 train_seconds=ev.meta.get("train_seconds"), record=ev.validity)


def inception_ruler(weights: str | None) -> Ruler:
    """torch-fidelity's Inception-v3 on colour renderings (``fidelity.ruler_features``), or "not measured"
    when no local weights file is given (nothing is downloaded)."""
    from pathlib import Path

    if weights is None or not Path(weights).expanduser().is_file():
        why = "no weights file" if weights is None else f"weights file not found: {weights}"
        return Ruler("inception", None, note=f"not measured: {why}")
    from cardiobench.metrics import fidelity

    return Ruler("inception", lambda m: fidelity.ruler_features(m, feature_extractor="inception",
                                                                inception_weights=weights),
                 ident=None, note="torch-fidelity inception-v3-compat on colour renderings; no classifier")


def run_study(
    dataset: str,
    data_options: dict[str, Any] | None = None,
    *,
    size: int = 64,
    objectives: tuple[str, ...] = ("pathology", "ssl"),
    inception_weights: str | None = None,
    threads: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the ladder of ``dataset`` at ``size``, train (or load from the cache) an evaluator per objective
    (``threads``: ``EvaluatorConfig.threads``, default the config's), measure every ruler, and decide."""
    from dataclasses import replace

    from cardiobench.metrics.api import dataset_distance_unit
    from cardiobench.metrics.evaluator import EvaluatorConfig, default_config, get_evaluator, load_splits

    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    splits = load_splits(dataset, size, data_options)
    train, test = splits["train"], splits["test"]
    n = min(len(test), len(train))
    pick = np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    rungs = build_ladder(train.masks[pick], seed=seed)
    unit = dataset_distance_unit(dataset, size, data_options)
    measure_quality(rungs, splits["val"].masks, spacing=train.spacing[pick], unit=unit)
    say(f"ladder: {len(rungs)} rungs of {n} masks; quality measured in {time.perf_counter() - t0:.1f} s")
    rulers = []
    for objective in objectives:
        cfg = EvaluatorConfig(objective=objective)
        if threads is not None:
            cfg = replace(cfg, threads=threads)
        # the data set's own default (its shipped evaluator, if any) when the configuration is that default
        ev = get_evaluator(dataset, data_options, config=None if cfg == default_config(dataset) else cfg, log=log)
        rulers.append(evaluator_ruler(objective, ev))
    rulers.append(inception_ruler(inception_weights))
    results = []
    for ruler in rulers:
        say(f"measuring the {ruler.name} ruler ...")
        results.append(study_ruler(ruler, splits, rungs, seed=seed))
    return {
        "dataset": dataset,
        "data_options": dict(data_options or {}),
        "size": size,
        "n": n,
        "seed": seed,
        "distance_unit": unit,
        "rungs": [{"name": r.name, "family": r.family, "level": r.level, **r.quality} for r in rungs],
        "rulers": results,
        "decision": decide(results),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def to_markdown(study: dict[str, Any]) -> str:
    """The study as Markdown: one summary row per ruler, then the ladder (quality and FID per rung)."""
    rulers = study["rulers"]
    measured = [r for r in rulers if r.get("measured")]
    lines = [
        f"Ruler study: {study['dataset']} at {study['size']} px, ladder of {study['n']} training masks vs the "
        f"test split (seed {study['seed']}); Spearman rho: good ruler -1 vs anatomy / nn-Dice, +1 vs strength.",
        "",
        "| ruler | id | train s | accuracy (chance) | real | mismatched | damaged | blobs | ordering | "
        "rho anatomy | rho nn-Dice | rho strength (mean) | valid |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rulers:
        if not r.get("measured"):
            lines.append(f"| {r['name']} | | | | | | | | {r.get('note')} | | | | |")
            continue
        o = r.get("ordering") or {}
        acc = "n/a" if r.get("accuracy") is None or not math.isfinite(r["accuracy"]) else \
            f"{r['accuracy']:.3f} ({r['chance']:.3f})"
        order = "pass" if not r.get("ordering_failures") else "fails " + ", ".join(r["ordering_failures"])
        lines.append(
            f"| {r['name']} | {r.get('id') or ''} | {_f(r.get('train_seconds'))} | {acc} | {_f(o.get('real'))} | "
            f"{_f(o.get('mismatched'))} | {_f(o.get('damaged'))} | {_f(o.get('blobs'))} | {order} | "
            f"{_f(r['rho_anatomy'])} | {_f(r['rho_nn_dice'])} | {_f(r['rho_strength_mean'])} | "
            f"{'yes' if r['valid'] else 'FLAGGED'} |")
    lines += ["", "| rung | anatomy valid | nn-Dice (val) | " + " | ".join(f"FID {r['name']}" for r in measured) + " |",
              "|---|---|---|" + "---|" * len(measured)]
    for rung in study["rungs"]:
        fids = " | ".join(_f(r["ladder_fid"][rung["name"]]) for r in measured)
        lines.append(f"| {rung['name']} | {rung['anatomy_valid_frac']:.3f} | {rung['nn_dice']:.3f} | {fids} |")
    if measured:
        lines += ["", "| family | " + " | ".join(f"rho strength {r['name']}" for r in measured) + " |",
                  "|---|" + "---|" * len(measured)]
        for family in FAMILIES:
            lines.append(f"| {family} | " + " | ".join(_f(r["rho_strength"].get(family)) for r in measured) + " |")
    d = study["decision"]
    lines += ["", f"Decision: {d['ruler'] or 'none'} — {d['reason']}"]
    return "\n".join(lines) + "\n"
