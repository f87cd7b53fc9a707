"""Contract suites for noise processes and samplers, plus an exactly solvable test problem.

Every built-in noise process and sampler passes these suites (``tests/diffusion/test_diffusion_contracts.py``);
a third-party plugin subclasses them in its own tests::

    from cardiobench.testing.diffusion import NoiseProcessContract, SamplerContract

    class TestMyProcess(NoiseProcessContract):
        process_name = "my-process"            # as registered
        process_options = {"num_timesteps": 100}

    class TestMySampler(SamplerContract):
        sampler_name = "my-sampler"

The classes are not collected by pytest themselves (no ``Test`` prefix); each test method creates its
components through the plugin registry, so the suites also check that the component is registered.

``GaussianData`` is the solvable problem behind the statistical checks: data whose DCT coefficients are
independent Gaussians, for which ``E[x_0 | x_t]`` is closed form for every linear Gaussian process (Gaussian
DDPM is diagonal in any orthonormal basis, blurring diffusion is diagonal in the DCT basis), so a sampler
driven by this exact denoiser must return the data distribution.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import torch

from cardiobench.diffusion import dct
from cardiobench.diffusion.base import PREDICTION_TYPES, NoiseProcess, Sampler, SampleStep
from cardiobench.errors import CardiobenchError
from cardiobench.plugins import get_component


class GaussianData:
    """``x_0 = IDCT(u_0)`` with ``u_0 ~ N(mean, diag(std^2))`` per DCT coefficient, shape (C, H, W).

    Image-like: the standard deviation decays with spatial frequency (from ``std_max`` to ``std_min``), the
    mean is a smooth random pattern. Much smaller standard deviations make coarse samplers visibly inexact
    (their discretisation error grows as the data's noise scale shrinks), which is not what these checks are for.
    """

    def __init__(self, channels: int = 1, size: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64,
                 std_min: float = 0.3, std_max: float = 0.8):
        g = torch.Generator().manual_seed(seed)
        lam = dct.frequencies(size, size, dtype=torch.float64)
        std = std_min + (std_max - std_min) * torch.exp(-0.6 * lam)
        self.std = std.expand(channels, size, size).clone().to(dtype)
        mean = 0.4 * torch.randn((channels, size, size), generator=g, dtype=torch.float64) * torch.exp(-0.3 * lam)
        self.mean = mean.to(dtype)
        self.shape = (channels, size, size)
        self.dtype = dtype

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, C, H, W) pixel-space samples."""
        z = torch.randn((n, *self.shape), generator=generator, dtype=self.dtype)
        return dct.idct2(self.mean + self.std * z)

    def posterior_mean(self, process: NoiseProcess, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Exact ``E[x_0 | x_t]`` (pixel space).

        Per DCT coefficient: ``m + s^2 a (u_t - a m) / (a^2 s^2 + sigma^2)``.
        """
        a = process.alpha(t, dtype=x_t.dtype)
        s = process.sigma(t, dtype=x_t.dtype)
        u_t = dct.dct2(x_t)
        var = self.std * self.std
        u0 = self.mean + var * a * (u_t - a * self.mean) / (a * a * var + s * s)
        return dct.idct2(u0)

    def model_fn(self, process: NoiseProcess):
        """The optimal network for ``process`` (in its ``prediction_type``) on this data."""

        def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if bool((t == t[0]).all()):  # one timestep for the whole batch (sampling): broadcast it
                t = t[:1]
            return process.model_output_from(self.posterior_mean(process, x_t, t), x_t, t)

        return fn

    def errors(self, samples: torch.Tensor) -> dict[str, float]:
        """How far ``samples`` (n, C, H, W) are from the data distribution, per DCT coefficient.

        ``mean_z``: largest |sample mean - mean| in standard errors (each ~N(0, 1) for an exact sampler, so
        the largest of 64 is below 4 but for one run in 10^3); ``var_ratio_max`` / ``var_ratio_mean``: largest
        and average |sample variance / variance - 1| (sampling noise ~ sqrt(2 / n) each).
        """
        u = dct.dct2(samples.to(self.dtype))
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


class NoiseProcessContract:
    """What every noise process of the ``linear-gaussian`` family must satisfy."""

    #: registered name of the process under test
    process_name: ClassVar[str] = ""
    #: small, fast options (e.g. fewer timesteps); merged under the per-test overrides
    process_options: ClassVar[dict[str, Any]] = {}
    #: (B, C, H, W) used by the checks
    shape: ClassVar[tuple[int, int, int, int]] = (3, 2, 8, 8)
    #: prediction types the process supports
    prediction_types: ClassVar[tuple[str, ...]] = PREDICTION_TYPES
    atol: ClassVar[float] = 1e-9

    # -- helpers ------------------------------------------------------------------------------------------
    def component(self):
        assert self.process_name, "set process_name in your NoiseProcessContract subclass"
        return get_component("noise", self.process_name)

    def make_process(self, **overrides: Any) -> NoiseProcess:
        return self.component().create(**{**self.process_options, **overrides})

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
        assert isinstance(process, NoiseProcess)
        assert comp.metadata.get("family") == process.family == "linear-gaussian"
        assert comp.summary, "give the factory a docstring or a summary"
        assert process.num_timesteps >= 1
        assert process.prediction_type in PREDICTION_TYPES

    def test_config_is_json_and_rebuilds_the_process(self):
        process = self.make_process()
        cfg = process.config()
        assert cfg, "config() must list the process's explicit options"
        assert json.loads(json.dumps(cfg)) == cfg
        rebuilt = self.component().create(**cfg)
        assert rebuilt.config() == cfg
        t = torch.arange(-1, process.num_timesteps)
        _close(rebuilt.alpha(t, dtype=torch.float64), process.alpha(t, dtype=torch.float64), atol=0, rtol=0)

    def test_basis_is_orthonormal(self):
        process = self.make_process()
        x, y = self.data()
        u = process.to_basis(x)
        assert u.shape == x.shape
        _close(process.from_basis(u), x, atol=self.atol)
        _close(u.pow(2).sum((-2, -1)), x.pow(2).sum((-2, -1)), atol=self.atol)  # V is orthonormal
        _close(process.to_basis(2 * x - y), 2 * u - process.to_basis(y), atol=self.atol)  # and linear
        if process.identity_basis:
            assert torch.equal(u, x)

    def test_alpha_sigma_values(self):
        process = self.make_process()
        t = torch.arange(-1, process.num_timesteps)
        a = process.alpha(t, dtype=torch.float64)
        s = process.sigma(t, dtype=torch.float64)
        shape = (len(t), *self.shape[1:])
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
        process = self.make_process()
        t = torch.arange(0, process.num_timesteps)
        a = process.alpha(t, dtype=torch.float64).expand(len(t), *self.shape[1:])
        s = process.sigma(t, dtype=torch.float64).expand(len(t), *self.shape[1:])
        log_snr = 2 * (a.log() - s.log())
        # non-increasing SNR per coefficient keeps sigma2_ts = sigma_t^2 - alpha_ts^2 sigma_s^2 >= 0
        assert (log_snr[1:] <= log_snr[:-1] + 1e-9).all()
        # samplers start from N(0, I): the last timestep must be (almost) pure noise
        assert float(a[-1].max()) < 0.05 and float((s[-1] - 1).abs().max()) < 0.05

    def test_q_sample_is_the_linear_gaussian_forward(self):
        process = self.make_process()
        x0, noise = self.data()
        t = self.timesteps(process)
        x_t = process.q_sample(x0, t, noise)
        assert x_t.shape == x0.shape and x_t.dtype == torch.float64
        a = process.alpha(t, dtype=torch.float64)
        s = process.sigma(t, dtype=torch.float64)
        expected = process.from_basis(a * process.to_basis(x0) + s * process.to_basis(noise))
        _close(x_t, expected, atol=self.atol)
        assert process.q_sample(x0.float(), t, noise.float()).dtype == torch.float32

    def test_training_target_inverts_for_every_prediction_type(self):
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
        try:
            self.make_process(prediction_type="not-a-type")
        except CardiobenchError as exc:
            assert "not-a-type" in str(exc)
        else:
            raise AssertionError("an unknown prediction_type must raise CardiobenchError")

    def test_sample_timesteps(self):
        process = self.make_process()
        g = torch.Generator().manual_seed(0)
        t = process.sample_timesteps(500, generator=g)
        assert t.dtype == torch.long and t.shape == (500,)
        assert int(t.min()) >= 0 and int(t.max()) < process.num_timesteps
        assert torch.equal(t, process.sample_timesteps(500, generator=torch.Generator().manual_seed(0)))


class SamplerContract:
    """What every sampler of the ``linear-gaussian`` family must satisfy, with every registered process."""

    #: registered name of the sampler under test
    sampler_name: ClassVar[str] = ""
    #: options for the sampler factory
    sampler_options: ClassVar[dict[str, Any]] = {}
    #: (name, options) of the processes to run it with (small T keeps the suite fast)
    processes: ClassVar[tuple[tuple[str, dict[str, Any]], ...]] = (
        ("gaussian", {"num_timesteps": 200}),
        ("blurring", {"num_timesteps": 200, "image_size": 8}),
    )
    shape: ClassVar[tuple[int, int, int, int]] = (4, 2, 8, 8)
    #: statistical check: sample count and tolerances (see ``GaussianData.errors``). It runs every timestep
    #: of a T = 200 process; at that resolution DDPM and DDIM (eta = 1) have a discretisation error of up to
    #: 7 % in variance (4 % for DDIM, eta = 0), computed exactly in tests/diffusion/test_diffusion_statistics.py
    n_statistical: ClassVar[int] = 3000
    statistical_size: ClassVar[int] = 4
    max_mean_z: ClassVar[float] = 5.0
    max_var_ratio: ClassVar[float] = 0.2
    max_mean_var_ratio: ClassVar[float] = 0.1
    #: sampler options that turn off x0 clipping (the Gaussian test data is not bounded)
    unclipped_options: ClassVar[dict[str, Any]] = {"clip_x0": False}

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
        return [self.make_process(name, **overrides) for name, _ in self.processes]

    @staticmethod
    def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.tanh(x) + 0.001 * t.to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))

    # -- the contract -------------------------------------------------------------------------------------------
    def test_registered_with_families(self):
        comp = self.component()
        fams = tuple(comp.metadata.get("families", ()))
        assert "linear-gaussian" in fams
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
            x_T = torch.randn(self.shape, generator=torch.Generator().manual_seed(1))
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
            x = torch.randn(self.shape, generator=g)
            for i, t in enumerate(sampler.timesteps.tolist()):
                x = sampler.step(self.toy_model(x, torch.full((self.shape[0],), t)), i, x, generator=g).x_t
                torch.testing.assert_close(x, ref[i], atol=1e-5, rtol=1e-5)

    def test_output_is_an_ordinary_tensor(self):
        process = self.all_processes()[0]
        out = self.make_sampler(process).sample(self.toy_model, self.shape)
        assert not out.requires_grad and not out.is_inference()
        out.add_(1.0)  # callers may modify the result in place

    #: (process, prediction type) pairs of the statistical check
    statistical_cases: ClassVar[tuple[tuple[str, str], ...]] = (("gaussian", "epsilon"), ("blurring", "v"))

    def test_recovers_gaussian_data_with_the_exact_denoiser(self):
        """Statistical check: with the optimal network for Gaussian data, samples follow the data law.

        Fails for a sampler whose step is wrong (e.g. the wrong posterior coefficient or noise level), not
        only for one that crashes: see the negative controls in tests/diffusion/test_diffusion_statistics.py.
        """
        data = GaussianData(channels=1, size=self.statistical_size)
        for name, ptype in self.statistical_cases:
            overrides = {"image_size": self.statistical_size} if "image_size" in dict(self.processes)[name] else {}
            process = self.make_process(name, prediction_type=ptype, **overrides)
            sampler = self.make_sampler(process, **self.unclipped_options)
            sampler.set_timesteps(process.num_timesteps)
            out = sampler.sample(data.model_fn(process), (self.n_statistical, *data.shape), dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(11))
            err = data.errors(out)
            where = f"{self.sampler_name} x {name} ({ptype}): {err}"
            assert err["mean_z"] < self.max_mean_z, where
            assert err["var_ratio_max"] < self.max_var_ratio, where
            assert err["var_ratio_mean"] < self.max_mean_var_ratio, where
