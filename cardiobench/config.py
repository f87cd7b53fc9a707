"""Presets and config files: TOML, layered as command line > ``--config FILE.toml`` > preset > defaults.

A configuration is a nested dict ``{section: {key: value}}`` (JSON-serialisable, so it can go into a
run's spec as is). Every key is declared once in ``SCHEMA`` with its type, default and help text;
anything else is a one-line error with a did-you-mean.

Presets are TOML files shipped inside the package (``cardiobench/configs/NAME.toml``, declared as
package data) so an installed wheel has them too; ``load_preset`` also takes a path to any TOML file.
Each section may hold an ``options`` table, passed as is to the plugin it configures (backbone,
noise process, sampler, conditioning), which validates it itself: third-party plugins have options
this schema cannot know.

Typical use by a command::

    cfg = resolve_config(preset="quick", config_file=path_or_none,
                         overrides={"train.steps": steps, "sample.sampler": sampler},  # None = unset
                         sets=["train.lr=3e-4"])                                       # --set KEY=VALUE
"""

from __future__ import annotations

import copy
import difflib
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cardiobench.errors import CardiobenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: the preset a command uses when none is given
DEFAULT_PRESET = "quick"

#: largest seed: seeds go to torch (64-bit) and derived generators multiply them by about 1e6, so 32 bits
MAX_SEED = 2**32 - 1

#: largest slice side, in pixels (ACDC's native slices are at most 512 px wide; a 100000 px phantom alone
#: would need 37 GiB per slice)
MAX_RESOLUTION = 512
#: the most slices a volume may be resampled to (``data.depth``)
MAX_DEPTH = 128
#: ``--dims 3`` without a depth from the preset or ``--depth``: the CPU volume shape's (32 x 32 x 8)
DEFAULT_DEPTH = 8


class ConfigError(CardiobenchError):
    """A bad preset, config file or override: unknown key, wrong type, out of range."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default (``None`` = unset) and what it means."""

    type: str  # "int" | "float" | "str" | "bool" | "list[int]" | "list[str]" | "table"
    default: Any
    help: str
    min: float | None = None  # inclusive lower bound for numbers
    max: float | None = None  # inclusive upper bound for numbers


_OPTIONS = Key("table", None, "plugin-specific options, passed as is to the plugin's factory")

#: every section and key a preset, config file or override may set
SCHEMA: dict[str, dict[str, Key]] = {
    "preset": {
        "description": Key("str", "", "one line shown when listing presets"),
    },
    "run": {
        "task": Key("str", "generation", "generation, segmentation, synthesis (mask-to-image) or utility "
                                          "(downstream segmentation gain of generated pairs)"),
        "device": Key("str", "auto", "auto, cpu, cuda or cuda:N"),
    },
    "data": {
        "dataset": Key("str", "phantom", "data set plugin name"),
        "data_root": Key("str", None, "folder of the real data (e.g. ACDC); unset for the embedded phantom"),
        "resolution": Key("int", 32, "side length of the square slices, in pixels", min=8, max=MAX_RESOLUTION),
        "seed": Key("int", 0, "seed of the data set (phantom generation, splits)", min=0, max=MAX_SEED),
        "depth": Key("int", None, "slices per volume: set for 3-D volumes (--dims 3), unset or 0 for 2-D slices",
                     min=0, max=MAX_DEPTH),
        "options": _OPTIONS,
    },
    "model": {
        "backbone": Key("str", "unet", "denoising network plugin name"),
        "size": Key("str", None, "named size of the backbone, if it has any (e.g. small, base)"),
        "base_channels": Key("int", 32, "channels of the first level", min=1),
        "channel_mults": Key("list[int]", [1, 2, 4], "channel multiplier per resolution level"),
        "options": _OPTIONS,
    },
    "diffusion": {
        "noise": Key("str", "gaussian", "noise process plugin name"),
        "num_timesteps": Key("int", 1000, "T, the number of training time steps", min=1),
        "beta_schedule": Key("str", "cosine", "noise schedule (e.g. cosine, linear)"),
        "prediction_type": Key("str", "epsilon", "what the network predicts (e.g. epsilon, sample, v)"),
        "options": _OPTIONS,
        "representation": Key("str", "onehot", "representation plugin: what a label map becomes as the diffused "
                                               "tensor (onehot: one-hot in [-1, 1])"),
        "representation_options": Key("table", None, "options passed as is to the representation's factory"),
    },
    "conditioning": {
        "method": Key("str", None, "conditioning plugin name; unset for unconditional generation"),
        "guidance_scale": Key("float", 1.0, "guidance strength (classifier / classifier-free guidance)", min=0),
        "options": _OPTIONS,
    },
    "train": {
        "steps": Key("int", None, "optimizer steps (set this or epochs)", min=1),
        "epochs": Key("int", None, "passes over the training split (set this or steps)", min=1),
        "batch_size": Key("int", 32, "images per optimizer step", min=1),
        "lr": Key("float", 1e-4, "learning rate", min=0),
        "warmup_steps": Key("int", 0, "linear learning-rate warm-up steps (Adam)", min=0),
        "loss": Key("str", "smooth_l1", "smooth_l1 or mse"),
        "precision": Key("str", "fp32", "fp32, or bf16 autocast"),
        "ema_decay": Key("float", 0.0, "EMA of the weights; 0 turns it off", min=0),
        "grad_clip": Key("float", 1.0, "gradient norm clip; 0 turns it off", min=0),
        "seed": Key("int", 0, "seed of initialisation, batches and time steps", min=0, max=MAX_SEED),
    },
    "sample": {
        "sampler": Key("str", "ddpm", "sampler plugin name"),
        "steps": Key("int", None, "inference steps; unset = every training time step", min=1),
        "num_samples": Key("int", 16, "samples drawn for the grid and the reverse-process GIF", min=1),
        "batch_size": Key("int", 64, "samples per network call", min=1),
        "eta": Key("float", 0.0, "DDIM stochasticity (0 = deterministic)", min=0),
        "seed": Key("int", 0, "seed of the initial noise", min=0, max=MAX_SEED),
        "options": _OPTIONS,
    },
    "eval": {
        "num_samples": Key("int", 256, "generated samples scored by the metrics (segmentation: test images "
                                       "segmented; synthesis: test masks drawn for)", min=1),
        "metrics": Key("list[str]", [], "metric plugin names; empty = the default metrics (the built-in ones "
                                        "registered with default=True) that apply to the task; an installed "
                                        "plugin's metric is computed only when named"),
        "split": Key("str", "test", "real split the samples are compared with (segmentation: the split segmented)"),
        "ensemble_k": Key("int", 5, "segmentation: samples per image, combined by a per-pixel majority vote", min=1),
    },
    "bench": {
        "batch_size": Key("int", 64, "batch size of throughput measurements", min=1),
        "sample_steps": Key("int", 50, "sampler steps timed by the sampling benchmark", min=1),
        "warmup": Key("int", 2, "untimed warm-up repeats", min=0),
        "repeats": Key("int", 5, "timed repeats (median and spread reported)", min=1),
        "dtype": Key("str", "fp32", "fp32, bf16 or fp16"),
        "compile": Key("bool", False, "torch.compile the backbone"),
        "channels_last": Key("bool", False, "channels_last memory format"),
    },
    # last: a bare key such as ``lr`` is suggested from an earlier section (train.lr) first
    "autoencoder": {
        "name": Key("str", None, "latent diffusion: an autoencoder plugin (e.g. vae), trained first if needed, or a "
                                 "trained autoencoder file (.pt); unset: diffuse the label maps themselves"),
        "steps": Key("int", 2000, "autoencoder optimizer steps", min=1),
        "batch_size": Key("int", 32, "label maps per autoencoder step", min=1),
        "lr": Key("float", 1e-3, "autoencoder learning rate", min=0),
        "seed": Key("int", 0, "seed of the autoencoder's initialisation, batches and noise", min=0, max=MAX_SEED),
        "options": _OPTIONS,
    },
    "utility": {
        "synthesis": Key("str", "concat", "utility: the map-conditioning method of the mask-to-image model that "
                                          "draws an image for each generated mask (the synthesis preset's recipe)"),
        "synthesis_steps": Key("int", None, "utility: training steps of that model; unset: the synthesis preset's",
                               min=1),
        "few_patients": Key("int", 3, "utility: patients in the small real training set (the first ids)", min=1),
        "eval_dataset": Key("str", None, "utility: the data set whose test split scores the segmenters "
                                         "(cross-data-set evaluation); unset: the run's"),
        "eval_data_root": Key("str", None, "utility: folder of eval_dataset"),
        "eval_options": Key("table", None, "utility: options of eval_dataset (as data.options)"),
        "segmenter": Key("table", None, "utility: fields of the segmenter's fixed recipe to replace (e.g. "
                                        "{ steps = 200 }): quick checks only, the row records it"),
    },
}

#: pairs of keys of which only one may be set; a higher layer setting one clears the other below it
#: keys that existed once and were removed because nothing read them: what to do instead
RETIRED: dict[str, str] = {
    "eval.batch_size": "nothing read it (the evaluator's batch is fixed); delete the line",
}
EXCLUSIVE: tuple[tuple[str, str], ...] = (("train.steps", "train.epochs"),)

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "list[int]": "a list of integers",
    "list[str]": "a list of strings",
    "table": "a table",
}


# -- schema helpers ---------------------------------------------------------------------------
def volume_depth(cfg: Mapping[str, Mapping[str, Any]]) -> int | None:
    """Slices per volume of a volumetric configuration (``data.depth``, or the data set option ``depth``), ``None``
    for 2-D slices (unset or 0)."""
    options = cfg["data"].get("options") or {}
    if options.get("as_slices"):  # the slices of volumes: a 2-D run
        return None
    depth = cfg["data"].get("depth") or options.get("depth")
    if depth is not None and depth == 1:
        raise CardiobenchError("data.depth 1 is a slice, not a volume", "use --depth 8 (or more), or --dims 2")
    return int(depth) if depth else None


def defaults() -> dict[str, dict[str, Any]]:
    """The complete configuration with every key at its default (unset keys are ``None``)."""
    return {sec: {name: copy.deepcopy(key.default) for name, key in keys.items()} for sec, keys in SCHEMA.items()}


def all_keys() -> list[str]:
    """Every dotted key, e.g. ``train.lr``."""
    return [f"{sec}.{name}" for sec, keys in SCHEMA.items() for name in keys]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _suggest_key(section: str | None, name: str) -> str:
    """A did-you-mean for key ``name`` (in ``section`` first, then in any section), or ``""``."""
    if section in SCHEMA:
        close = difflib.get_close_matches(name, list(SCHEMA[section]), n=1, cutoff=0.6)
        if close:
            return f"did you mean '{section}.{close[0]}'?"
    by_name = {}
    for dotted in all_keys():
        by_name.setdefault(dotted.split(".", 1)[1], dotted)
    close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
    return f"did you mean {by_name[close[0]]!r}?" if close else ""


def _where(source: str | None) -> str:
    if not source:
        return ""
    return f" {source}" if source.startswith(("in ", "on ")) else f" in {source}"


def _type_error(dotted: str, key: Key, value: Any, source: str | None) -> ConfigError:
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    got = "a table" if isinstance(value, dict) else f"{type(value).__name__} {shown}"
    return ConfigError(f"{dotted}{_where(source)} must be {_TYPE_NAMES[key.type]}, got {got}")


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity in ``value`` (a number, or a list or table of them, at any depth), else ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        bad = _non_finite(item)
        if bad is not None:
            return bad
    return None


def _bound(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _check_value(dotted: str, key: Key, value: Any, source: str | None) -> Any:
    """``value`` checked against ``key`` (ints are accepted for floats; numbers must be finite and within the
    key's bounds); returns the value to store."""
    t = key.type
    if value is None:
        return None
    if t == "bool":
        ok = isinstance(value, bool)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif t == "str":
        ok = isinstance(value, str)
    elif t in ("list[int]", "list[str]"):
        inner = int if t == "list[int]" else str
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, inner) and not isinstance(v, bool) for v in value
        )
        if ok:
            value = list(value)
    elif t == "table":
        ok = isinstance(value, dict)
    else:  # pragma: no cover - a schema bug
        raise AssertionError(f"unknown key type {t!r}")
    if not ok:
        raise _type_error(dotted, key, value, source)
    bad = _non_finite(value)  # TOML and typer both accept nan and inf; no key (or plugin option) means them
    if bad is not None:
        what = "a finite number" if t == "float" else "finite numbers only"
        raise ConfigError(f"{dotted}{_where(source)} must be {what}, got {bad}")
    if key.min is not None and isinstance(value, (int, float)) and value < key.min:
        raise ConfigError(f"{dotted}{_where(source)} must be >= {_bound(key.min)}, got {value}")
    if key.max is not None and isinstance(value, (int, float)) and value > key.max:
        raise ConfigError(f"{dotted}{_where(source)} must be <= {_bound(key.max)}, got {value}")
    return value


def check_option(flag: str, dotted: str, value: Any) -> Any:
    """A command-line option ``flag`` (e.g. ``--seed``) checked like the config key ``dotted`` it stands for
    (type, finite, bounds), so a bad value stops the command before any work; ``None`` (not given) passes."""
    sec, name = dotted.split(".", 1)
    return _check_value(flag, SCHEMA[sec][name], value, None)


def validate(partial: Mapping[str, Any], source: str | None = None) -> dict[str, dict[str, Any]]:
    """Check a (partial) nested config: known sections and keys, right types. Returns a checked copy."""
    if not isinstance(partial, Mapping):
        raise ConfigError(f"config{_where(source)} must be a table of sections")
    out: dict[str, dict[str, Any]] = {}
    for sec, table in partial.items():
        if sec not in SCHEMA:
            hint = _did_you_mean(sec, SCHEMA)
            raise ConfigError(
                f"unknown config section [{sec}]{_where(source)}",
                hint or f"sections: {', '.join(SCHEMA)}",
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{sec}]{_where(source)} must be a table of keys, got {type(table).__name__}")
        keys = SCHEMA[sec]
        checked: dict[str, Any] = {}
        for name, value in table.items():
            dotted = f"{sec}.{name}"
            if name not in keys:
                raise ConfigError(
                    f"unknown config key {dotted!r}{_where(source)}",
                    RETIRED.get(dotted) or _suggest_key(sec, name) or f"keys of [{sec}]: {', '.join(keys)}",
                )
            checked[name] = copy.deepcopy(_check_value(dotted, keys[name], value, source))
        out[sec] = checked
    for a, b in EXCLUSIVE:
        (sa, ka), (sb, kb) = a.split("."), b.split(".")
        if out.get(sa, {}).get(ka) is not None and out.get(sb, {}).get(kb) is not None:
            raise ConfigError(f"{a} and {b} are both set{_where(source)}", "set only one of them")
    return out


# -- files and presets ------------------------------------------------------------------------
def presets_dir() -> Path:
    """The folder of the shipped presets (inside the installed package)."""
    return Path(str(resources.files("cardiobench") / "configs"))


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    folder = presets_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def preset_path(name_or_path: str | Path) -> Path:
    """The TOML file of a shipped preset name, or the given path to a TOML file."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {text} does not exist")
        return path
    path = presets_dir() / f"{text}.toml"
    if not path.is_file():
        names = preset_names()
        hint = _did_you_mean(text, names)
        raise ConfigError(f"unknown preset {text!r}", hint or f"presets: {', '.join(names) or 'none'}")
    return path


def load_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """A TOML config file, validated but not merged: only the keys it sets."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start})", "save it as UTF-8, as TOML requires") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return validate(raw, source=str(path))


def preset_description(name_or_path: str | Path) -> str:
    return load_toml(preset_path(name_or_path)).get("preset", {}).get("description", "")


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Later layers win, key by key; ``None`` values never override. ``options`` tables merge key-wise.

    Setting one key of an ``EXCLUSIVE`` pair in a layer clears the other key set by earlier layers,
    so ``--steps`` on the command line replaces a preset's ``epochs``.
    """
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for sec, table in layer.items():
            dest = out.setdefault(sec, {})
            for name, value in table.items():
                if value is None:
                    continue
                if isinstance(value, dict) and isinstance(dest.get(name), dict):
                    dest[name] = {**dest[name], **copy.deepcopy(value)}
                else:
                    dest[name] = copy.deepcopy(value)
                dotted = f"{sec}.{name}"
                for a, b in EXCLUSIVE:
                    other = b if dotted == a else a if dotted == b else None
                    if other is not None:
                        osec, oname = other.split(".")
                        out.get(osec, {}).pop(oname, None)
    return out


def _complete(cfg: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    full = defaults()
    for sec, table in cfg.items():
        full[sec].update(copy.deepcopy(dict(table)))
    # exclusive pairs: keep at most one
    for a, b in EXCLUSIVE:
        (sa, ka), (sb, kb) = a.split("."), b.split(".")
        if full[sa].get(ka) is not None and full[sb].get(kb) is not None:
            raise ConfigError(f"{a} and {b} are both set", "set only one of them")
    if full["train"]["steps"] is None and full["train"]["epochs"] is None:
        raise ConfigError("neither train.steps nor train.epochs is set", "set one of them")
    return full


def load_preset(name_or_path: str | Path) -> dict[str, dict[str, Any]]:
    """A complete configuration: the defaults overlaid with a shipped preset (by name) or a TOML file."""
    return _complete(merge(load_toml(preset_path(name_or_path))))


def parse_set(item: str) -> tuple[str, Any]:
    """``"train.lr=3e-4"`` -> ``("train.lr", 0.0003)``, the value parsed as TOML (bare words as strings)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} is not KEY=VALUE", "e.g. --set train.lr=3e-4")
    dotted, text = (part.strip() for part in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word such as cosine or cuda:0
    return dotted, value


def overrides_to_layer(overrides: Mapping[str, Any], source: str = "on the command line") -> dict[str, dict[str, Any]]:
    """Dotted overrides (``{"train.lr": 1e-3}``; ``None`` = not given) as a validated nested layer."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        if "." not in dotted:
            raise ConfigError(
                f"config key {dotted!r} needs its section, e.g. train.lr", _suggest_key(None, dotted) or None
            )
        sec, name = dotted.split(".", 1)
        if isinstance(value, tuple):
            value = list(value)
        name, _, sub = name.partition(".")
        if sub and SCHEMA.get(sec, {}).get(name, _OPTIONS).type == "table":  # model.options.kernel_size=5
            table = nested.setdefault(sec, {}).setdefault(name, {})
            *parents, leaf = sub.split(".")
            for part in parents:
                table = table.setdefault(part, {})
            table[leaf] = value
            continue
        if sub:
            name = f"{name}.{sub}"
        nested.setdefault(sec, {})[name] = value
    return validate(nested, source=source)


def resolve_config(
    preset: str | Path | None = DEFAULT_PRESET,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """The configuration a command runs with: defaults < preset < config file < ``sets`` < ``overrides``.

    ``overrides`` are the typed command-line options (dotted keys, ``None`` = not given); ``sets`` are
    generic ``--set KEY=VALUE`` strings. The result is complete: every schema key is present.

    A data root alone selects its data set, as ``--data-root`` does everywhere (``docs/data.md``): when
    ``data.data_root`` is set but neither the config file, ``--set`` nor the command line names
    ``data.dataset``, the preset's data set (a default, e.g. the phantom; kept only if the preset sets a root
    of its own beside it) gives way to the one ``cardiobench.data.resolve_dataset_name`` picks for a root.
    A layer's ``data.options`` apply only to the data set that layer names (see ``_own_options``).
    """
    preset_layer = load_toml(preset_path(preset)) if preset is not None else {}
    user = []
    if config_file is not None:
        user.append(load_toml(config_file))
    if sets:
        user.append(overrides_to_layer(dict(parse_set(s) for s in sets), source="--set"))
    if overrides:
        user.append(overrides_to_layer(overrides))
    layers = [preset_layer, *user, _dataset_of_root(preset_layer, user)]
    dataset = _complete(merge(*layers))["data"]["dataset"]
    return _complete(merge(*(_own_options(layer, dataset) for layer in layers)))


def _own_options(layer: Mapping[str, Any], dataset: str) -> Mapping[str, Any]:
    """``layer`` without its ``data.options`` when it names another data set than ``dataset``.

    Data set options are written for one data set (the tiny preset's ``train_patients`` mean something to
    the phantom only), so a layer's options apply to the data set that layer names; options from a layer
    that names none (``--set data.options.KEY=...``) apply to whichever data set is chosen.
    """
    data = layer.get("data") or {}
    if data.get("options") is None or data.get("dataset") in (None, dataset):
        return layer
    return {**layer, "data": {k: v for k, v in data.items() if k != "options"}}


def _dataset_of_root(preset_layer: Mapping[str, Any], user: list[dict[str, dict[str, Any]]]
                     ) -> dict[str, dict[str, Any]]:
    """The layer that lets a data root select its data set (see ``resolve_config``), or ``{}``."""
    def set_in(layer: Mapping[str, Any], key: str) -> Any:
        return (layer.get("data") or {}).get(key)

    roots = [set_in(layer, "data_root") for layer in (preset_layer, *user) if set_in(layer, "data_root") is not None]
    if not roots or any(set_in(layer, "dataset") is not None for layer in user):
        return {}  # no root, or the user named the data set: it stands (and is checked later)
    if set_in(preset_layer, "data_root") is not None and set_in(preset_layer, "dataset") is not None:
        return {}  # a preset written for a data set on disk names it beside its root: that is a choice too
    from cardiobench.data import resolve_dataset_name

    return {"data": {"dataset": resolve_dataset_name(None, roots[-1])}}


def get(cfg: Mapping[str, Mapping[str, Any]], dotted: str) -> Any:
    """``get(cfg, "train.lr")``."""
    sec, name = dotted.split(".", 1)
    return cfg[sec][name]


# (the Typer options --preset, --config and --set are in cardiobench.cli.options: the library imports no typer)


# -- documentation ---------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None or value == {}:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def markdown_table(presets: Iterable[str] = ("quick", "segmentation", "synthesis", "heart-cpu", "volume-cpu",
                                             "seed-report", "gpu", "volume-gpu", "tiny")
                   ) -> str:
    """Every config key with its type, default, each preset's value and meaning (docs/leaderboard.md)."""
    presets = list(presets)
    loaded = {name: load_preset(name) for name in presets}
    base = defaults()
    lines = ["| key | type | default | " + " | ".join(presets) + " | meaning |",
             "|" + "---|" * (len(presets) + 4)]
    for section, keys in SCHEMA.items():
        if section == "preset":
            continue
        for name, key in keys.items():
            values = [_cell(loaded[p][section].get(name)) for p in presets]
            lines.append(f"| `{section}.{name}` | {key.type} | {_cell(base[section][name])} | "
                         + " | ".join(values) + f" | {key.help} |")
    return "\n".join(lines) + "\n"
