"""Build every component from its registered name and options, with one-line errors: the only place that does.

A factory that rejects an option or its value (``TypeError``/``ValueError`` from the call) becomes
``CardiobenchError`` "bad option for <kind> <name>: ..." with the command that lists the kind's components; an
unknown name is the registry's did-you-mean error. The engine, the pipeline, the bench and the CLI all build
through here.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from cardiobench.data.pairs import map_channels
from cardiobench.distributed import env_world_size
from cardiobench.errors import CardiobenchError, IncompatibleError
from cardiobench.plugins import get_component, registry
from cardiobench.specs import TrainSpec

__all__ = [
    "accepted_options", "unbounded_sampler_options",
    "build_conditioning", "build_model", "build_process", "build_representation", "build_sampler",
    "build_variable", "check_spatial_dims", "create", "map_downsampling", "model_channels", "resolve_device",
    "resolve_spec",
]

#: the page that documents each kind's options
_DOCS = {"noise": "docs/diffusion.md", "sampler": "docs/diffusion.md", "representation": "docs/diffusion.md",
         "conditioning": "docs/conditioning.md", "backbone": "docs/plugins.md", "dataset": "docs/data.md",
         "metric": "docs/metrics.md"}
_NOUN = {"noise": "noise process"}


def create(kind: str, name: str, *args: Any, **options: Any) -> Any:
    """``get_component(kind, name).create(*args, **options)``; an option the factory does not take is one line."""
    comp = get_component(kind, name)
    try:
        return comp.create(*args, **options)
    except (TypeError, ValueError) as exc:  # an option the factory does not take, or a value it refuses
        raise CardiobenchError(f"bad option for {_NOUN.get(kind, kind)} {name!r}: {exc}",
                               f"see `cardiobench plugins --kind {kind}` and {_DOCS.get(kind, 'docs/plugins.md')}"
                               ) from None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for a CUDA device that is not there."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CardiobenchError(f"unknown device {device!r}", "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CardiobenchError(f"device {device!r} requested but CUDA is not available", "use --device cpu")
    return dev


def build_process(spec: TrainSpec) -> Any:
    """The spec's noise process."""
    return create("noise", spec.noise, **spec.noise_options)


def build_representation(spec: TrainSpec) -> Any:
    """The spec's representation (what a label map becomes as the diffused tensor)."""
    return create("representation", spec.representation, **spec.representation_options)


def build_variable(spec: TrainSpec, process: Any = None) -> Any:
    """The spec's ``DiffusedVariable``: representation + noise process at the spec's resolution."""
    from cardiobench.diffusion.representation import DiffusedVariable

    shape = spec.spatial_shape if spec.spatial_dims == 3 else spec.resolution
    return DiffusedVariable(build_representation(spec), process if process is not None else build_process(spec),
                            shape)


def model_channels(spec: TrainSpec) -> tuple[int, int]:
    """(in, out) channels of the denoised variable (the representation's, input doubled under self-conditioning;
    a conditioning method may add input channels, e.g. the MRI image for an image-concatenating method)."""
    rep = build_representation(spec)
    c = rep.channels
    return c * (2 if rep.self_condition else 1), c


def build_conditioning(spec: TrainSpec) -> Any:
    """The spec's conditioning method (``None`` for an unconditional model), built from its options. An
    image-conditioning method gets the channel count of the map paired with the diffused item
    (``cardiobench.data.pairs``: 1 for the MRI slice, ``NUM_CLASSES`` for a synthesis model's label map)."""
    if not spec.conditioning:
        return None
    method = create("conditioning", spec.conditioning, **spec.conditioning_options)
    if getattr(method, "condition", None) == "image":  # the paired map: the MRI slice, or a synthesis model's mask
        rep = build_representation(spec)
        method.image_channels = map_channels(rep)
        method.map_downsampling = map_downsampling(rep, spec)
        method.spatial_dims = spec.spatial_dims
    return method


def map_downsampling(representation: Any, spec: TrainSpec) -> int:
    """How many times larger per side the paired map (at the label map's size) is than the diffused grid: 1 in
    pixel space, an autoencoder's ``f`` in its latent. An ``IncompatibleError`` when the sides do not share one
    integer factor (a map could not be brought to the grid)."""
    size = spec.spatial_shape if spec.spatial_dims == 3 else spec.resolution
    grid = tuple(representation.shape(size)[1:])
    full = tuple(representation.mask_shape(size))
    factors = {m // g for m, g in zip(full, grid, strict=True)}
    if len(factors) != 1 or any(m % g for m, g in zip(full, grid, strict=True)):
        raise IncompatibleError(f"representation {spec.representation!r} diffuses a {'x'.join(map(str, grid))} grid "
                                f"for {'x'.join(map(str, full))} maps: the condition cannot be brought to it",
                                "use a representation whose grid divides the maps' size on every axis")
    return factors.pop()


def build_model(spec: TrainSpec) -> torch.nn.Module:
    """The network of ``spec`` (the backbone, shaped by its conditioning method), initialised from ``spec.seed``
    without touching the caller's global RNG."""
    cin, cout = model_channels(spec)
    dims = check_spatial_dims("backbone", spec.backbone, spec.spatial_dims)
    geometry = {"spatial_dims": dims} if dims != 2 else {}  # 2-D backbones are called as they always were

    def make_backbone(in_channels: int, out_channels: int, **extra: Any) -> torch.nn.Module:
        return create("backbone", spec.backbone, in_channels, out_channels,
                      **{**spec.backbone_options, **geometry, **extra})

    method = build_conditioning(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = make_backbone(cin, cout) if method is None else method.build_network(make_backbone, cin, cout)
    if not isinstance(model, torch.nn.Module):
        raise CardiobenchError(f"backbone {spec.backbone!r} did not return a torch.nn.Module")
    return model


def check_spatial_dims(kind: str, name: str, dims: int) -> int:
    """``dims`` if component ``name`` of ``kind`` registered it in its ``spatial_dims`` metadata (absent: 2-D only);
    else an ``IncompatibleError`` naming the component and what it supports."""
    supported = tuple(get_component(kind, name).metadata.get("spatial_dims", (2,)))
    if dims not in supported:
        others = [c.name for c in registry(kind) if dims in tuple(c.metadata.get("spatial_dims", (2,)))]
        raise IncompatibleError(f"{_NOUN.get(kind, kind)} {name!r} works on {' and '.join(f'{d}-D' for d in supported)}"
                                f" data, not {dims}-D",
                                f"use one that does ({', '.join(others) or 'none installed'})" if others else
                                "use 2-D data (drop --dims 3)")
    return dims


def build_sampler(name: str, process: Any, options: dict[str, Any] | None = None, steps: int | None = None) -> Any:
    """The sampler ``name`` on ``process`` with ``options``, its timesteps set (``steps`` None: its default)."""
    sampler = create("sampler", name, process, **dict(options or {}))
    sampler.set_timesteps(steps)
    return sampler


def resolve_spec(spec: TrainSpec, process: Any = None, model: torch.nn.Module | None = None) -> TrainSpec:
    """``spec`` with every default made explicit (the process's, the backbone's and the conditioning's ``config()``).

    Two specs that train the same thing (``{"size": "small"}`` vs the same values spelled out) then
    share one hash; resolving twice changes nothing. Settings a conditioning method imposes on the backbone
    (channels, class count) are not backbone options, so a ControlNet's base spec resolves like the
    unconditional model it is. Representation options stay as given (their defaults are not spelled out,
    so the hashes of models trained before representations were a plugin kind hold). Under torchrun a spec of one
    shard gets one shard per process (``shards`` = the world size): the global batch is ``batch_size * shards``.
    """
    process = process if process is not None else build_process(spec)
    noise_options = {**spec.noise_options, **(process.config() if hasattr(process, "config") else {})}
    backbone_options = dict(spec.backbone_options)
    model = model if model is not None else build_model(spec)
    inner = getattr(model, "base", model)  # a ControlNet's backbone is its frozen base
    if callable(getattr(inner, "config", None)):
        cfg = dict(inner.config())
        for key in ("in_channels", "out_channels"):
            cfg.pop(key, None)
        if spec.conditioning and cfg.get("num_classes") is not None:  # set by the method, not a backbone option
            cfg.pop("num_classes")
        backbone_options.update(cfg)
    method = build_conditioning(spec)
    conditioning_options = {**spec.conditioning_options, **(method.config() if method is not None else {})}
    shards = spec.shards if spec.shards != 1 else env_world_size()
    return spec.replace(noise_options=noise_options, backbone_options=backbone_options,
                        conditioning_options=conditioning_options, shards=shards)


def accepted_options(factory: Any, candidates: dict[str, Any], *, named_only: bool = False) -> dict[str, Any]:
    """The subset of ``candidates`` (generic settings such as ``diffusion.num_timesteps``) the plugin factory takes
    as keyword arguments. ``named_only``: a factory must name the parameter; one that only takes ``**kwargs``
    gets none of them (sampler settings: ``sample.eta`` goes to the samplers that declare ``eta``, never to every
    sampler that would swallow it). Otherwise ``**kwargs`` takes them all (a backbone's channel widths)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if not named_only and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(candidates)
    named = {k for k, p in params.items() if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                        inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in candidates.items() if k in named}


def unbounded_sampler_options(sampler: str, representation: Any, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` of sampler ``sampler`` for ``representation``: an unbounded one (an autoencoder's latent,
    ``bounded = False``) gets ``clip_x0=False`` where the sampler takes it, unless the options set it."""
    options = dict(options or {})
    if getattr(representation, "bounded", True):
        return options
    return {**accepted_options(get_component("sampler", sampler).factory, {"clip_x0": False}, named_only=True),
            **options}
