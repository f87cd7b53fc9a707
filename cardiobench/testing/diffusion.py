"""Contract suites for noise processes and samplers, plus an exactly solvable test problem.

Every built-in noise process and sampler passes these suites (``tests/diffusion/test_diffusion_contracts.py``);
a third-party plugin subclasses them in its own tests::

    from cardiobench.testing.diffusion import NoiseProcessContract, SamplerContract

    class TestMyProcess(NoiseProcessContract):
        process_name = "my-process"            # as registered
        process_options = {"num_timesteps": 100}

    class TestMySampler(SamplerContract):
        sampler_name = "my-sampler"

**Volumes.** The suites run on any number of spatial axes: ``shape`` is ``(B, C, *spatial)``, and a subclass that
sets it to ``(B, C, D, H, W)`` checks the component on volumes (give a process that is built for a size, such as
``blurring``, the matching ``image_size``, e.g. ``[D, H, W]``)::

    class TestMyProcess3D(NoiseProcessContract):
        process_name = "my-process"
        shape = (3, 2, 4, 8, 8)

    class TestMySampler3D(SamplerContract):
        sampler_name = "my-sampler"
        shape = (4, 2, 4, 8, 8)
        processes = (("gaussian", {"num_timesteps": 200}),
                     ("blurring", {"num_timesteps": 200, "image_size": [4, 8, 8], "spacing": [2.0, 1.0, 1.0]}))

The sampler's statistical and convergence checks then use Gaussian volumes (``statistical_size`` /
``convergence_size`` per axis) and rebuild each process that has an ``image_size`` option at that size (a list
in 3-D), keeping its other options (``spacing``). ``tests/diffusion/test_contracts_3d.py`` runs every built-in so.

The classes are not collected by pytest themselves (no ``Test`` prefix); each test method creates its
components through the plugin registry, so the suites also check that the component is registered.

**Families.** The suites were written for the ``linear-gaussian`` family; a component registered for another family
(``family`` / ``families`` metadata, e.g. the ``categorical`` D3PM) runs the family-agnostic checks (registration,
config, the seeded prior, the training loss, the sampler's loop, seeding and bookkeeping) and skips the
linear-Gaussian ones (basis, alpha/sigma, q_sample, prediction types, Gaussian statistics, ODE order). Its data are
label maps in the ``onehot`` representation (``shape[1]`` classes), and a process with ``model_output_from(x0, x_t,
t)`` (the output of a network certain of ``x0``) gets the perfect-network checks: zero loss, and a sampler that
returns the data.

``GaussianData`` is the solvable problem behind the statistical checks: data whose DCT coefficients are
independent Gaussians, for which ``E[x_0 | x_t]`` is closed form for every linear Gaussian process (Gaussian
DDPM is diagonal in any orthonormal basis, blurring diffusion is diagonal in the DCT basis), so a sampler
driven by this exact denoiser must return the data distribution. The probability-flow ODE of that problem is
solved exactly too (``GaussianData.flow``), which is what the sampler's convergence-order check measures
against: a deterministic sampler's error must shrink with the number of steps at the order it declares
(registration metadata ``order``, default 1).
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, ClassVar

import pytest
import torch

from cardiobench.diffusion import dct
from cardiobench.diffusion.base import PREDICTION_TYPES, NoiseProcess, Sampler, SampleStep, per_item
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import get_component


class GaussianData:
    """``x_0 = IDCT(u_0)`` with ``u_0 ~ N(mean, diag(std^2))`` per DCT coefficient, shape (C, *spatial).

    ``size``: an int N for N x N slices, or the spatial shape, e.g. ``(D, H, W)`` for volumes (the DCT then runs
    over the last 3 axes). Image-like: the standard deviation decays with spatial frequency (from ``std_max`` to
    ``std_min``), the mean is a smooth random pattern. Much smaller standard deviations make coarse samplers
    visibly inexact (their discretisation error grows as the data's noise scale shrinks), which is not what these
    checks are for.
    """

    def __init__(self, channels: int = 1, size: int | tuple[int, ...] = 8, seed: int = 0,
                 dtype: torch.dtype = torch.float64, std_min: float = 0.3, std_max: float = 0.8):
        g = torch.Generator().manual_seed(seed)
        spatial = (size, size) if isinstance(size, int) else tuple(int(n) for n in size)
        #: the number of spatial axes the DCT runs over
        self.dims = len(spatial)
        lam = dct.frequencies(*spatial, dtype=torch.float64)
        std = std_min + (std_max - std_min) * torch.exp(-0.6 * lam)
        self.std = std.expand(channels, *spatial).clone().to(dtype)
        mean = 0.4 * torch.randn((channels, *spatial), generator=g, dtype=torch.float64) * torch.exp(-0.3 * lam)
        self.mean = mean.to(dtype)
        self.shape = (channels, *spatial)
        self.dtype = dtype

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, C, *spatial) pixel-space samples."""
        z = torch.randn((n, *self.shape), generator=generator, dtype=self.dtype)
        return dct.idctn(self.mean + self.std * z, dims=self.dims)

    def posterior_mean(self, process: NoiseProcess, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Exact ``E[x_0 | x_t]`` (pixel space).

        Per DCT coefficient: ``m + s^2 a (u_t - a m) / (a^2 s^2 + sigma^2)``.
        """
        a = per_item(process.alpha(t, dtype=x_t.dtype), x_t)
        s = per_item(process.sigma(t, dtype=x_t.dtype), x_t)
        u_t = dct.dctn(x_t, dims=self.dims)
        var = self.std * self.std
        u0 = self.mean + var * a * (u_t - a * self.mean) / (a * a * var + s * s)
        return dct.idctn(u0, dims=self.dims)

    def flow(self, process: NoiseProcess, x: torch.Tensor, t_from: int, t_to: int) -> torch.Tensor:
        """The exact probability-flow ODE solution: ``x`` (n, C, *spatial) at timestep ``t_from`` carried to ``t_to``.

        Per DCT coefficient the marginal at t is ``N(alpha_t m, v_t)``, ``v_t = alpha_t^2 s^2 + sigma_t^2``, and the
        ODE's velocity is affine in ``u``; the flow is the increasing affine map between the two marginals,
        ``u_to = alpha_to m + sqrt(v_to / v_from) (u_from - alpha_from m)``.
        """
        a1, s1 = process.alpha_sigma(t_from)
        a2, s2 = process.alpha_sigma(t_to)
        a1, s1, a2, s2 = (c.to(self.dtype) for c in (a1, s1, a2, s2))
        var = self.std * self.std
        scale = ((a2 * a2 * var + s2 * s2) / (a1 * a1 * var + s1 * s1)).sqrt()
        u = dct.dctn(x.to(self.dtype), dims=self.dims)
        return dct.idctn(a2 * self.mean + scale * (u - a1 * self.mean), dims=self.dims)

    def model_fn(self, process: NoiseProcess):
        """The optimal network for ``process`` (in its ``prediction_type``) on this data."""

        def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if bool((t == t[0]).all()):  # one timestep for the whole batch (sampling): broadcast it
                t = t[:1]
            return process.model_output_from(self.posterior_mean(process, x_t, t), x_t, t)

        return fn

    def errors(self, samples: torch.Tensor) -> dict[str, float]:
        """How far ``samples`` (n, C, *spatial) are from the data distribution, per DCT coefficient.

        ``mean_z``: largest |sample mean - mean| in standard errors (each ~N(0, 1) for an exact sampler, so
        the largest of 64 is below 4 but for one run in 10^3); ``var_ratio_max`` / ``var_ratio_mean``: largest
        and average |sample variance / variance - 1| (sampling noise ~ sqrt(2 / n) each).
        """
        u = dct.dctn(samples.to(self.dtype), dims=self.dims)
        n = u.shape[0]
        mean_z = ((u.mean(0) - self.mean) / (self.std / math.sqrt(n))).abs()
        ratio = (u.var(0) / (self.std * self.std) - 1.0).abs()
        return {"mean_z": float(mean_z.max()), "var_ratio_max": float(ratio.max()),
                "var_ratio_mean": float(ratio.mean())}


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-9, rtol: float = 1e-9) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


class _ForeignProcess(NoiseProcess):
    """A process of another family, for the "unsupported pair is a clear error" check."""

    family = "contract-test-foreign"
    num_timesteps = 10
    prediction_type = "epsilon"

    def to_basis(self, x):
        return x

    def from_basis(self, u):
        return u

    def alpha(self, t, *, dtype=None):
        return torch.ones(len(t), 1, 1, 1, dtype=dtype or torch.float32)

    def sigma(self, t, *, dtype=None):
        return torch.ones(len(t), 1, 1, 1, dtype=dtype or torch.float32)

    def q_sample(self, x0, t, noise):
        return x0 + noise

    def training_target(self, x0, noise, t):
        return noise


LINEAR_GAUSSIAN = "linear-gaussian"


def _skip_unless_linear_gaussian(family: str | None, what: str) -> None:
    if family != LINEAR_GAUSSIAN:
        pytest.skip(f"{what}: a linear-Gaussian check (this component's family is {family!r})")


def onehot_labels(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random label maps (B, *spatial) with ``shape[1]`` classes and their one-hot encoding in [-1, 1] (float32)."""
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=torch.Generator().manual_seed(seed))
    return labels, torch.nn.functional.one_hot(labels, shape[1]).movedim(-1, 1).float() * 2 - 1


class NoiseProcessContract:
    """What every noise process must satisfy; the linear-Gaussian checks run for the ``linear-gaussian`` family."""

    #: registered name of the process under test
    process_name: ClassVar[str] = ""
    #: small, fast options (e.g. fewer timesteps); merged under the per-test overrides
    process_options: ClassVar[dict[str, Any]] = {}
    #: (B, C, *spatial) used by the checks: (B, C, H, W) slices, or (B, C, D, H, W) to check the process on volumes
    shape: ClassVar[tuple[int, ...]] = (3, 2, 8, 8)
    #: prediction types the process supports
    prediction_types: ClassVar[tuple[str, ...]] = PREDICTION_TYPES
    atol: ClassVar[float] = 1e-9

    # -- helpers ------------------------------------------------------------------------------------------
    def component(self):
        assert self.process_name, "set process_name in your NoiseProcessContract subclass"
        return get_component("noise", self.process_name)

    def make_process(self, **overrides: Any) -> NoiseProcess:
        return self.component().create(**{**self.process_options, **overrides})

    def family(self) -> str | None:
        """The family the process is registered with."""
        return self.component().metadata.get("family")

    def only_linear_gaussian(self, what: str) -> None:
        _skip_unless_linear_gaussian(self.family(), what)

    def encoded_data(self, seed: int = 0) -> torch.Tensor:
        """x0 (float32, ``shape``) for the training-loss checks: ``data``'s for the linear-Gaussian family, else
        one-hot label maps (``onehot_labels``)."""
        if self.family() == LINEAR_GAUSSIAN:
            return self.data(seed)[0].float()
        return onehot_labels(self.shape, seed)[1]

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape of the checks' tensors, ``shape[2:]``: (H, W) or (D, H, W)."""
        return tuple(self.shape[2:])

    def timesteps(self, process: NoiseProcess) -> torch.Tensor:
        t_max = process.num_timesteps - 1
        return torch.tensor([0, t_max // 3, 2 * t_max // 3][: self.shape[0] - 1] + [t_max])[: self.shape[0]]

    def data(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x0 = torch.rand(self.shape, generator=g, dtype=torch.float64) * 2 - 1
        noise = torch.randn(self.shape, generator=g, dtype=torch.float64)
        return x0, noise

    # -- the contract -------------------------------------------------------------------------------------------
    def test_registered_with_family(self):
        comp = self.component()
        process = self.make_process()
        assert comp.metadata.get("family") == process.family, "register the process with family=process.family"
        assert comp.summary, "give the factory a docstring or a summary"
        assert process.num_timesteps >= 1
        if process.family == LINEAR_GAUSSIAN:
            assert isinstance(process, NoiseProcess)
            assert process.prediction_type in PREDICTION_TYPES

    def test_config_is_json_and_rebuilds_the_process(self):
        process = self.make_process()
        cfg = process.config()
        assert cfg, "config() must list the process's explicit options"
        assert json.loads(json.dumps(cfg)) == cfg
        rebuilt = self.component().create(**cfg)
        assert rebuilt.config() == cfg
        if self.family() != LINEAR_GAUSSIAN:
            return
        t = torch.arange(-1, process.num_timesteps)
        _close(rebuilt.alpha(t, dtype=torch.float64), process.alpha(t, dtype=torch.float64), atol=0, rtol=0)

    def test_basis_is_orthonormal(self):
        self.only_linear_gaussian("test_basis_is_orthonormal")
        process = self.make_process()
        x, y = self.data()
        u = process.to_basis(x)
        assert u.shape == x.shape
        _close(process.from_basis(u), x, atol=self.atol)
        axes = tuple(range(2, len(self.shape)))  # the spatial axes
        _close(u.pow(2).sum(axes), x.pow(2).sum(axes), atol=self.atol)  # V is orthonormal
        _close(process.to_basis(2 * x - y), 2 * u - process.to_basis(y), atol=self.atol)  # and linear
        if process.identity_basis:
            assert torch.equal(u, x)

    def test_alpha_sigma_values(self):
        self.only_linear_gaussian("test_alpha_sigma_values")
        process = self.make_process()
        t = torch.arange(-1, process.num_timesteps)
        a_raw = process.alpha(t, dtype=torch.float64)
        s_raw = process.sigma(t, dtype=torch.float64)
        shape = (len(t), *self.shape[1:])
        assert a_raw.shape[0] == s_raw.shape[0] == len(t), "alpha(t), sigma(t): (B, *k), one row per timestep"
        # (B, *k) with k broadcasting against one item's trailing axes: per_item aligns it with (B, C, *spatial)
        ref = torch.empty((len(t), *self.shape[1:]), dtype=torch.float64)
        a, s = per_item(a_raw, ref), per_item(s_raw, ref)
        assert torch.broadcast_shapes(a.shape, shape) == shape and torch.broadcast_shapes(s.shape, shape) == shape
        assert a.dtype == s.dtype == torch.float64
        assert torch.isfinite(a).all() and torch.isfinite(s).all()
        assert (a[0] == 1).all() and (s[0] == 0).all(), "t = -1 must be the data: alpha 1, sigma 0"
        assert (a[1:] > 0).all() and (s[1:] > 0).all() and (s <= 1).all()
        assert process.alpha(t).dtype == torch.float32
        for tt in (-1, 0, process.num_timesteps - 1):
            a1, s1 = process.alpha_sigma(tt)
            _close(a1.expand(self.shape[1:]), a[tt + 1].expand(self.shape[1:]), atol=0, rtol=0)
            _close(s1.expand(self.shape[1:]), s[tt + 1].expand(self.shape[1:]), atol=0, rtol=0)

    def test_snr_decreases_and_ends_near_pure_noise(self):
        self.only_linear_gaussian("test_snr_decreases_and_ends_near_pure_noise")
        process = self.make_process()
        t = torch.arange(0, process.num_timesteps)
        ref = torch.empty((len(t), *self.shape[1:]), dtype=torch.float64)
        a = per_item(process.alpha(t, dtype=torch.float64), ref).expand_as(ref)
        s = per_item(process.sigma(t, dtype=torch.float64), ref).expand_as(ref)
        log_snr = 2 * (a.log() - s.log())
        # non-increasing SNR per coefficient keeps sigma2_ts = sigma_t^2 - alpha_ts^2 sigma_s^2 >= 0
        assert (log_snr[1:] <= log_snr[:-1] + 1e-9).all()
        # samplers start from N(0, I): the last timestep must be (almost) pure noise
        assert float(a[-1].max()) < 0.05 and float((s[-1] - 1).abs().max()) < 0.05

    def test_q_sample_is_the_linear_gaussian_forward(self):
        self.only_linear_gaussian("test_q_sample_is_the_linear_gaussian_forward")
        process = self.make_process()
        x0, noise = self.data()
        t = self.timesteps(process)
        x_t = process.q_sample(x0, t, noise)
        assert x_t.shape == x0.shape and x_t.dtype == torch.float64
        a = per_item(process.alpha(t, dtype=torch.float64), x0)
        s = per_item(process.sigma(t, dtype=torch.float64), x0)
        expected = process.from_basis(a * process.to_basis(x0) + s * process.to_basis(noise))
        _close(x_t, expected, atol=self.atol)
        assert process.q_sample(x0.float(), t, noise.float()).dtype == torch.float32

    def test_training_target_inverts_for_every_prediction_type(self):
        self.only_linear_gaussian("test_training_target_inverts_for_every_prediction_type")
        x0, noise = self.data(1)
        for ptype in self.prediction_types:
            process = self.make_process(prediction_type=ptype)
            assert process.prediction_type == ptype
            t = self.timesteps(process)
            x_t = process.q_sample(x0, t, noise)
            target = process.training_target(x0, noise, t)
            assert target.shape == x0.shape
            _close(process.predict_x0(target, x_t, t), x0, atol=1e-6, rtol=1e-6)
            _close(process.predict_eps(target, x_t, t), noise, atol=1e-6, rtol=1e-6)
            _close(process.model_output_from(x0, x_t, t), target, atol=1e-6, rtol=1e-6)

    def test_unknown_prediction_type_is_a_clear_error(self):
        self.only_linear_gaussian("test_unknown_prediction_type_is_a_clear_error")
        try:
            self.make_process(prediction_type="not-a-type")
        except CardiobenchError as exc:
            assert "not-a-type" in str(exc)
        else:
            raise AssertionError("an unknown prediction_type must raise CardiobenchError")

    def test_sample_timesteps(self):
        self.only_linear_gaussian("test_sample_timesteps")
        process = self.make_process()
        g = torch.Generator().manual_seed(0)
        t = process.sample_timesteps(500, generator=g)
        assert t.dtype == torch.long and t.shape == (500,)
        assert int(t.min()) >= 0 and int(t.max()) < process.num_timesteps
        assert torch.equal(t, process.sample_timesteps(500, generator=torch.Generator().manual_seed(0)))

    # -- what the engine calls: the prior draw and the training loss ------------------------------------------
    def test_prior_is_a_seeded_standard_normal(self):
        """``prior(shape, generator)``: x_T, float32 on the CPU, reproducible; N(0, I) for the linear-Gaussian
        family."""
        process = self.make_process()
        a = process.prior(self.shape, generator=torch.Generator().manual_seed(0))
        assert isinstance(a, torch.Tensor) and a.shape == self.shape
        assert a.dtype == torch.float32 and a.device.type == "cpu"
        assert torch.equal(a, process.prior(self.shape, generator=torch.Generator().manual_seed(0)))
        if process.family == LINEAR_GAUSSIAN or a.unique().numel() > 1:  # (a certain prior, e.g. all [MASK], is not)
            assert not torch.equal(a, process.prior(self.shape, generator=torch.Generator().manual_seed(1)))
        assert process.prior(self.shape).shape == self.shape  # no generator: the global RNG
        if process.family != LINEAR_GAUSSIAN:
            return
        big = process.prior((512, *self.shape[1:]), generator=torch.Generator().manual_seed(2)).double()
        # the family's samplers start from white noise: mean 0, variance 1 (standard errors ~0.004)
        assert abs(float(big.mean())) < 0.03 and abs(float(big.std()) - 1.0) < 0.03

    def _loss(self, process: NoiseProcess, model_fn, x0: torch.Tensor, seed: int = 0, **kw: Any) -> torch.Tensor:
        return process.training_loss(model_fn, x0, torch.Generator().manual_seed(seed), **kw)

    def test_training_loss_is_a_seeded_finite_scalar(self):
        process = self.make_process()
        x0 = self.encoded_data()
        calls: list[tuple[torch.Size, torch.Tensor]] = []

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            calls.append((x_t.shape, t))
            return 0.5 * torch.tanh(x_t)

        loss = self._loss(process, model_fn, x0)
        assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "training_loss must return a scalar tensor"
        assert bool(torch.isfinite(loss)) and float(loss) > 0
        assert calls, "training_loss must call the network"
        for shape, t in calls:
            assert shape == x0.shape and t.shape == (x0.shape[0],) and t.dtype == torch.long
            assert int(t.min()) >= 0 and int(t.max()) < process.num_timesteps
        assert torch.equal(loss, self._loss(process, model_fn, x0)), "the same seed must give the same loss"
        assert not torch.equal(loss, self._loss(process, model_fn, x0, seed=1))
        if process.family == LINEAR_GAUSSIAN:
            l1 = self._loss(process, model_fn, x0, loss="smooth_l1")
            assert l1.dim() == 0 and bool(torch.isfinite(l1)) and not torch.equal(l1, loss)
        with pytest.raises((ValueError, CardiobenchError)):
            self._loss(process, model_fn, x0, loss="not-a-loss")

    def test_training_loss_is_differentiable(self):
        process = self.make_process()
        scale = torch.nn.Parameter(torch.tensor(0.5))
        loss = self._loss(process, lambda x_t, t: scale * x_t, self.encoded_data())
        loss.backward()
        assert scale.grad is not None and bool(torch.isfinite(scale.grad)) and float(scale.grad) != 0.0

    def test_training_loss_is_zero_for_the_perfect_network(self):
        """A network that outputs ``training_target`` exactly (known here from x0 and x_t) has loss 0.

        Another family: a process with ``model_output_from(x0, x_t, t)`` (the output of a network certain of x0)."""
        if self.family() != LINEAR_GAUSSIAN:
            process = self.make_process()
            if not callable(getattr(process, "model_output_from", None)):
                pytest.skip("the process has no model_output_from (the output of a network certain of x0)")
            x0 = self.encoded_data(2)
            baseline = float(self._loss(process, lambda x_t, t: torch.zeros_like(x_t), x0))
            loss = float(self._loss(process, lambda x_t, t: process.model_output_from(x0, x_t, t), x0))
            assert loss <= 1e-6 * max(baseline, 1.0), f"loss {loss:.3g} for the perfect network"
            return
        x0 = self.data(2)[0].float()
        for ptype in self.prediction_types:
            process = self.make_process(prediction_type=ptype)

            def perfect(x_t: torch.Tensor, t: torch.Tensor, process=process) -> torch.Tensor:
                return process.model_output_from(x0, x_t, t)

            baseline = float(self._loss(process, lambda x_t, t: torch.zeros_like(x_t), x0))
            loss = float(self._loss(process, perfect, x0))
            assert loss <= 1e-6 * max(baseline, 1.0), f"{ptype}: loss {loss:.3g} for the perfect network"


class SamplerContract:
    """What every sampler must satisfy, with every process of ``processes`` (the linear-Gaussian checks run for
    processes of the ``linear-gaussian`` family; another family's sampler lists its own ``processes``).

    Registration metadata read by the suite: ``families`` (must contain every listed process's family) and ``order``
    (the convergence order of the sampler's deterministic mode, default 1; see
    ``test_deterministic_sampler_converges_at_its_order``).
    """

    #: registered name of the sampler under test
    sampler_name: ClassVar[str] = ""
    #: options for the sampler factory
    sampler_options: ClassVar[dict[str, Any]] = {}
    #: (name, options) of the processes to run it with (small T keeps the suite fast)
    processes: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("gaussian", {"num_timesteps": 200}),
        ("blurring", {"num_timesteps": 200, "image_size": 8}),
    )
    #: (B, C, *spatial) of the checks that run the sampler on a toy network: (B, C, H, W), or (B, C, D, H, W) to
    #: check it on volumes (with processes built for that size, e.g. blurring's ``image_size = [D, H, W]``)
    shape: ClassVar[tuple[int, ...]] = (4, 2, 8, 8)
    #: statistical check: sample count and tolerances (see ``GaussianData.errors``). It runs every timestep
    #: of a T = 200 process; at that resolution DDPM and DDIM (eta = 1) have a discretisation error of up to
    #: 7 % in variance (4 % for DDIM, eta = 0), computed exactly in tests/diffusion/test_diffusion_statistics.py
    n_statistical: ClassVar[int] = 3000
    #: spatial size of its Gaussian data: an int N (N on each of the ``len(shape) - 2`` axes) or the spatial shape
    statistical_size: ClassVar[int | tuple[int, ...]] = 4
    max_mean_z: ClassVar[float] = 5.0
    max_var_ratio: ClassVar[float] = 0.2
    max_mean_var_ratio: ClassVar[float] = 0.1
    #: sampler options that turn off x0 clipping (the Gaussian test data is not bounded)
    unclipped_options: ClassVar[dict[str, Any]] = {"clip_x0": False}
    #: convergence-order check: options that make the sampler deterministic (a probability-flow ODE solver),
    #: merged over ``sampler_options``. None: ``eta=0`` if the factory takes an ``eta`` option (DDIM's
    #: convention), else nothing. A sampler that is still stochastic is skipped by that check (its law is
    #: checked by the statistical test instead).
    ode_options: ClassVar[dict[str, Any] | None] = None
    #: step counts, processes (T large enough for the largest count; a process with an ``image_size`` option is
    #: built at ``convergence_size``), the spatial size of the Gaussian data (as ``statistical_size``) and the
    #: number of Gaussian samples of that check
    convergence_steps: ClassVar[tuple[int, ...]] = (16, 23, 32, 45, 64, 90)
    convergence_processes: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("gaussian", {"num_timesteps": 1000}),
        ("blurring", {"num_timesteps": 1000, "image_size": 4}),
    )
    convergence_size: ClassVar[int | tuple[int, ...]] = 4
    n_convergence: ClassVar[int] = 64
    #: where the error is measured: the listed timestep nearest this fraction of T. Not the final sample: the
    #: last step jumps from timestep ~0 to the data whatever the step count, so its error does not shrink
    #: (and near either end of the schedule log-SNR steps do not shrink like 1/N either)
    convergence_checkpoint: ClassVar[float] = 0.2
    #: how far below the declared order the measured one may fall. Measured (these settings, both processes, each
    #: timestep spacing): DDIM 0.99 to 1.04; DPM-Solver++(2M) (docs/plugins.md) 1.81 to 2.06; the same with its
    #: second-order correction doubled 0.90 to 0.98
    order_tolerance: ClassVar[float] = 0.4

    # -- helpers ------------------------------------------------------------------------------------------
    def component(self):
        assert self.sampler_name, "set sampler_name in your SamplerContract subclass"
        return get_component("sampler", self.sampler_name)

    def make_process(self, name: str, **overrides: Any) -> NoiseProcess:
        options = dict(self.processes)[name]
        return get_component("noise", name).create(**{**options, **overrides})

    def make_sampler(self, process: NoiseProcess, **overrides: Any) -> Sampler:
        return self.component().create(process, **{**self.sampler_options, **overrides})

    def all_processes(self, **overrides: Any) -> list[NoiseProcess]:
        """One process per entry of ``processes`` (a name may come twice, with different options)."""
        return [get_component("noise", name).create(**{**options, **overrides}) for name, options in self.processes]

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape of the toy-network checks, ``shape[2:]``: (H, W) or (D, H, W)."""
        return tuple(self.shape[2:])

    def data_spatial(self, size: int | tuple[int, ...]) -> tuple[int, ...]:
        """The spatial shape of Gaussian test data of ``size`` (``statistical_size``, ``convergence_size``): an int
        is that side on each of the ``len(shape) - 2`` axes."""
        return (size,) * len(self.spatial) if isinstance(size, int) else tuple(size)

    @staticmethod
    def sized_options(options: dict[str, Any], spatial: tuple[int, ...]) -> dict[str, Any]:
        """``options`` with ``image_size`` (if present) set to ``spatial``: an int for a square slice (as 2-D configs
        write it), else the list ``[D, H, W]`` / ``[H, W]``. Other options (e.g. ``spacing``) are kept."""
        if "image_size" not in options:
            return dict(options)
        square = len(spatial) == 2 and spatial[0] == spatial[1]
        return {**options, "image_size": spatial[0] if square else list(spatial)}

    def only_linear_gaussian(self, what: str) -> None:
        for name, _ in self.processes:
            _skip_unless_linear_gaussian(get_component("noise", name).metadata.get("family"), what)

    def declared_order(self) -> int:
        order = self.component().metadata.get("order", 1)
        assert isinstance(order, int) and not isinstance(order, bool) and order >= 1, (
            f"registration metadata 'order' must be a positive int, got {order!r}")
        return order

    def make_ode_sampler(self, process: NoiseProcess) -> Sampler:
        """The sampler in its deterministic mode, unclipped (see ``ode_options``)."""
        options = self.ode_options
        if options is None:
            try:
                params = inspect.signature(self.component().factory).parameters
            except (TypeError, ValueError):
                params = {}
            options = {"eta": 0.0} if "eta" in params else {}
        return self.make_sampler(process, **{**options, **self.unclipped_options})

    def convergence_error(self, sampler: Sampler, data: GaussianData, process: NoiseProcess, x_T: torch.Tensor,
                          steps: int) -> float:
        """RMS distance, with ``steps`` steps from ``x_T``, between the sampler's state at the checkpoint and the
        exact probability-flow solution from the first listed timestep to the checkpoint's."""
        sampler.set_timesteps(steps)
        ts = sampler.timesteps.tolist()
        assert len(ts) == steps, f"set_timesteps({steps}) gave {len(ts)} timesteps"
        target = self.convergence_checkpoint * process.num_timesteps
        # step k lands on ts[k + 1]; never the last step (to the data)
        k = min(range(len(ts) - 1), key=lambda i: abs(ts[i + 1] - target))
        for st in sampler.iter_sample(data.model_fn(process), tuple(x_T.shape), dtype=torch.float64, x_T=x_T):
            if st.index == k:
                exact = data.flow(process, x_T, ts[0], ts[k + 1])
                return float((st.x_t.to(torch.float64) - exact).pow(2).mean().sqrt())
        raise AssertionError(f"iter_sample stopped before step {k} of {steps}")

    @staticmethod
    def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.tanh(x) + 0.001 * t.to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))

    # -- the contract -------------------------------------------------------------------------------------------
    def test_registered_with_families(self):
        comp = self.component()
        fams = tuple(comp.metadata.get("families", ()))
        assert fams, "register the sampler with families=(...)"
        for name, _ in self.processes:
            assert get_component("noise", name).metadata.get("family") in fams
        assert comp.summary, "give the factory a docstring or a summary"
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            assert isinstance(sampler, Sampler)
            assert process.family in sampler.families

    def test_rejects_a_process_of_another_family(self):
        try:
            self.make_sampler(_ForeignProcess())
        except CardiobenchError as exc:
            assert "contract-test-foreign" in str(exc)
        else:
            raise AssertionError("a process of an unsupported family must raise CardiobenchError")

    def test_timesteps(self):
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            ts = sampler.timesteps
            assert ts.dtype == torch.long and ts.dim() == 1 and len(ts) >= 1
            assert (ts[1:] < ts[:-1]).all(), "timesteps must be strictly decreasing"
            assert int(ts.min()) >= 0 and int(ts.max()) < process.num_timesteps
            sampler.set_timesteps(7)
            assert len(sampler.timesteps) == 7

    def test_config_is_json(self):
        for process in self.all_processes():
            cfg = self.make_sampler(process).config()
            assert json.loads(json.dumps(cfg)) == cfg

    def test_iter_sample_yields_every_step(self):
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            steps: list[SampleStep] = []
            finals = []
            for st in sampler.iter_sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(0)):
                assert st.x_t.shape == self.shape and st.x0_pred.shape == self.shape
                assert torch.isfinite(st.x_t).all() and torch.isfinite(st.x0_pred).all()
                steps.append(st)
                finals.append(st.x_t.clone())
            assert [s.index for s in steps] == list(range(len(sampler.timesteps)))
            assert [s.timestep for s in steps] == sampler.timesteps.tolist()
            out = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(out, finals[-1], atol=0, rtol=0)

    def test_seeded_and_reproducible(self):
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            a = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(3))
            b = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(3))
            c = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(4))
            assert torch.equal(a, b)
            assert not torch.equal(a, c)

    def test_x_T_is_used_and_left_untouched(self):
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            x_T = process.prior(self.shape, generator=torch.Generator().manual_seed(1))  # linear-Gaussian: randn
            keep = x_T.clone()
            first = next(iter(sampler.iter_sample(lambda x, t: torch.zeros_like(x), self.shape, x_T=x_T)))
            assert torch.equal(x_T, keep), "the sampler must not modify x_T"
            assert torch.isfinite(first.x_t).all()

    def test_step_agrees_with_iter_sample(self):
        """``iter_sample`` is ``step`` in a loop: x_T and then each step's noise drawn from the generator."""
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            ref = [s.x_t.clone() for s in sampler.iter_sample(self.toy_model, self.shape,
                                                               generator=torch.Generator().manual_seed(5))]
            g = torch.Generator().manual_seed(5)
            x = process.prior(self.shape, generator=g)  # linear-Gaussian: torch.randn(shape, generator=g)
            for i, t in enumerate(sampler.timesteps.tolist()):
                x = sampler.step(self.toy_model(x, torch.full((self.shape[0],), t)), i, x, generator=g).x_t
                torch.testing.assert_close(x, ref[i], atol=1e-5, rtol=1e-5)

    def test_output_is_an_ordinary_tensor(self):
        process = self.all_processes()[0]
        out = self.make_sampler(process).sample(self.toy_model, self.shape)
        assert not out.requires_grad and not out.is_inference()
        out.add_(1.0)  # callers may modify the result in place

    def test_a_new_run_forgets_the_last_one(self):
        """Multistep samplers keep state across steps: a run must start afresh, even after an abandoned one."""
        for process in self.all_processes():
            sampler = self.make_sampler(process)
            a = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(3))
            it = sampler.iter_sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(4))
            next(it), next(it)  # abandoned after two steps
            it.close()
            b = sampler.sample(self.toy_model, self.shape, generator=torch.Generator().manual_seed(3))
            assert torch.equal(a, b), "the result depends on what the sampler ran before"

    def test_deterministic_sampler_converges_at_its_order(self):
        """On Gaussian data (exact denoiser, exact ODE solution), the error of the deterministic sampler must shrink
        like ``steps ** -order``: the slope of log error against log steps is at least ``order - order_tolerance``.

        Fails for a sampler with the wrong step formula even when it still converges: e.g. a second-order
        multistep sampler whose correction is doubled is only first order (tests/test_plugin_authoring.py).
        """
        self.only_linear_gaussian("test_deterministic_sampler_converges_at_its_order")
        order = self.declared_order()
        spatial = self.data_spatial(self.convergence_size)
        data = GaussianData(channels=1, size=spatial)
        x_T = torch.randn((self.n_convergence, *data.shape), generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
        steps = sorted(self.convergence_steps)
        for name, options in self.convergence_processes:
            process = get_component("noise", name).create(**self.sized_options(options, spatial))
            sampler = self.make_ode_sampler(process)
            sampler.set_timesteps(5)
            runs = [sampler.sample(data.model_fn(process), tuple(x_T[:4].shape), dtype=torch.float64, x_T=x_T[:4],
                                   generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]
            if not torch.equal(*runs):
                pytest.skip(f"{self.sampler_name} is stochastic with these options (set ode_options for its "
                            "deterministic mode): its law is checked by the statistical test")
            errors = [self.convergence_error(sampler, data, process, x_T, n) for n in steps]
            logs = [(math.log(n), math.log(max(e, 1e-300))) for n, e in zip(steps, errors, strict=True)]
            mx = sum(a for a, _ in logs) / len(logs)
            my = sum(b for _, b in logs) / len(logs)
            slope = -sum((a - mx) * (b - my) for a, b in logs) / sum((a - mx) ** 2 for a, _ in logs)
            table = ", ".join(f"{n}: {e:.2e}" for n, e in zip(steps, errors, strict=True))
            where = (f"{self.sampler_name} on {name}: error at timestep ~{self.convergence_checkpoint:g} T "
                     f"by number of steps {{{table}}}")
            assert slope >= order - self.order_tolerance, (
                f"{where} shrinks at order {slope:.2f}, but the sampler declares order {order} "
                f"(registration metadata 'order'; tolerance {self.order_tolerance})")
            assert errors[-1] < 0.05, f"{where}: not close to the exact solution"

    #: (process, prediction type) pairs of the statistical check
    statistical_cases: ClassVar[tuple[tuple[str, str], ...]] = (("gaussian", "epsilon"), ("blurring", "v"))

    def test_recovers_gaussian_data_with_the_exact_denoiser(self):
        """Statistical check: with the optimal network for Gaussian data, samples follow the data law.

        Fails for a sampler whose step is wrong (e.g. the wrong posterior coefficient or noise level), not
        only for one that crashes: see the negative controls in tests/diffusion/test_diffusion_statistics.py.
        """
        self.only_linear_gaussian("test_recovers_gaussian_data_with_the_exact_denoiser")
        spatial = self.data_spatial(self.statistical_size)
        data = GaussianData(channels=1, size=spatial)
        for name, ptype in self.statistical_cases:
            sized = self.sized_options(dict(self.processes)[name], spatial)
            process = self.make_process(name, **{**sized, "prediction_type": ptype})
            sampler = self.make_sampler(process, **self.unclipped_options)
            sampler.set_timesteps(process.num_timesteps)
            out = sampler.sample(data.model_fn(process), (self.n_statistical, *data.shape), dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(11))
            err = data.errors(out)
            where = f"{self.sampler_name} x {name} ({ptype}): {err}"
            assert err["mean_z"] < self.max_mean_z, where
            assert err["var_ratio_max"] < self.max_var_ratio, where
            assert err["var_ratio_mean"] < self.max_mean_var_ratio, where

    #: step counts of the perfect-predictor check (another family's counterpart of the statistical check)
    perfect_steps: ClassVar[tuple[int, ...]] = (1, 3, 10)

    def test_returns_the_data_with_a_perfect_predictor(self):
        """Another family (not linear-Gaussian), a process with ``model_output_from``: driven by a network certain of
        the data (one-hot label maps), the sampler returns the data, whatever its number of steps."""
        procs = [p for p in self.all_processes() if p.family != LINEAR_GAUSSIAN]
        procs = [p for p in procs if callable(getattr(p, "model_output_from", None))]
        if not procs:
            pytest.skip("linear-Gaussian processes are checked statistically; no process with model_output_from")
        labels, x0 = onehot_labels(self.shape, seed=7)
        for process in procs:
            sampler = self.make_sampler(process)
            for n in self.perfect_steps:
                sampler.set_timesteps(min(n, process.num_timesteps))
                out = sampler.sample(lambda x, t, process=process: process.model_output_from(x0, x, t), self.shape,
                                     generator=torch.Generator().manual_seed(n))
                assert torch.equal(out, x0), f"{self.sampler_name}, {n} steps: not the data"
