"""Every pluggy hook a cardiobench plugin can implement.

Each ``register_*`` hook receives a ``register`` callback. Call it once per component::

    register(name, factory, summary="...", **metadata)

``name`` is the unique, lower-case name users type (``--noise gaussian``); ``factory`` is a
callable that builds the component from keyword options; ``summary`` is one line shown by
``cardiobench plugins`` (defaults to the first line of the factory's docstring); ``metadata`` is
kind-specific (see ``docs/plugins.md``), e.g. ``family="linear-gaussian"`` for a noise process or
``families=("linear-gaussian",)`` for a sampler, used to reject incompatible combinations early.

Built-in components register through these very hooks (``cardiobench/plugins.py``).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("cardiobench")
hookimpl = pluggy.HookimplMarker("cardiobench")


@hookspec
def register_datasets(register):
    """Register data sets of paired 2-D short-axis slices (mask, image, pathology group).

    The factory takes keyword options (e.g. ``data_root``, ``size``) and returns an object with
    ``load(split) -> SliceSet`` (``cardiobench.data.base``). A data set that also takes the option ``depth``
    yields volumes ``(N, depth, S, S)`` with it (``--dims 3``, docs/volumes.md).
    """


@hookspec
def register_representations(register):
    """Register representations: what a label map becomes as the diffused tensor (e.g. ``onehot``).

    The factory takes keyword options and returns a ``cardiobench.diffusion.representation.Representation``
    (``encode``, ``decode``, ``channels``, ``spatial_dims``). Metadata: ``families``, the process families it
    fits (absent: all); ``spatial_dims``, ``(2, 3)`` when it works on volumes too (absent: 2-D only).
    """


@hookspec
def register_noise_processes(register):
    """Register forward noise processes (e.g. ``gaussian``, ``blurring``).

    The factory returns a ``cardiobench.diffusion.base.NoiseProcess``. Metadata: ``family``
    (e.g. ``"linear-gaussian"``), which samplers and conditioning methods check; ``spatial_dims`` as for
    representations.
    """


@hookspec
def register_samplers(register):
    """Register reverse-process samplers (e.g. ``ddpm``, ``ddim``).

    The factory takes ``(process, **options)`` and returns a ``cardiobench.diffusion.base.Sampler``.
    Metadata: ``families``, the tuple of process families the sampler supports; ``order`` (default 1), the
    convergence order of its deterministic mode, which the sampler contract checks; ``spatial_dims`` as for
    representations.
    """


@hookspec
def register_autoencoders(register):
    """Register autoencoders: label maps or MR slices <-> a latent grid, the first stage of latent diffusion (e.g.
    ``vae``, ``image-vae``).

    The factory takes keyword options and returns a ``cardiobench.autoencoders.base.Autoencoder`` (``encode``,
    ``decode``, ``to_items``, ``loss``, ``config``, ``latent_channels``, ``downsampling``). Metadata: ``data``, what
    it encodes (``"mask"``: label maps, for generation and segmentation; ``"image"``: 8-bit grey MR slices, for
    synthesis). Trained with ``cardiobench autoencoder train``; diffused through the ``latent`` representation.
    """


@hookspec
def register_backbones(register):
    """Register denoising networks (e.g. ``unet``).

    The factory takes ``(in_channels, out_channels, **options)`` and returns a ``torch.nn.Module``
    called as ``model(x, t, class_labels=None, residuals=None)``. Metadata ``spatial_dims=(2, 3)``: it also
    builds 3-D networks, and the engine then passes ``spatial_dims=3`` among the options (absent: 2-D only).
    """


@hookspec
def register_conditioning(register):
    """Register conditioning methods (classifier guidance, classifier-free guidance, ControlNet...).

    Metadata: ``tasks`` (``"generation"`` and/or ``"segmentation"``), ``families`` and ``spatial_dims``
    (``(2, 3)``: it conditions volumes too; absent: 2-D only).
    """


@hookspec
def register_metrics(register):
    """Register evaluation metrics.

    Metadata: ``tasks`` it applies to and ``direction`` per reported value (``"lower"``/``"higher"``);
    ``uses_evaluator`` (reads the domain evaluator's features), ``needs_labels`` (scored per requested
    class), ``needs_volumes`` (scored on volumetric runs only); ``headline``, ``sort_key``, ``order`` and
    ``counts`` (how the leaderboard shows it); ``default`` (computed by a run that names no metrics: honoured for
    built-ins only).
    """


@hookspec
def register_commands(app):
    """Add commands to the ``cardiobench`` Typer application ``app``.

    Use ``@app.command()`` or ``app.add_typer(sub_app, name=...)``.
    """
