"""The DCT used by blurring diffusion: the scipy reference, orthonormality, round trip (issue item 8)."""

import math

import einops
import numpy as np
import pytest
import scipy.fft
import torch

from cardiobench.diffusion import dct


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 6, 10), (4, 32, 32), (5, 1)])
def test_dct2_equals_scipy_dctn_ortho(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    ref = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct.dct2(torch.from_numpy(x)).numpy(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(dct.idct2(torch.from_numpy(ref)).numpy(), x, atol=1e-12, rtol=0)
    np.testing.assert_allclose(scipy.fft.idctn(ref, type=2, norm="ortho", axes=(-2, -1)), x, atol=1e-12)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_round_trip_is_identity_and_norm_preserving(dtype, atol):
    x = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(0), dtype=dtype)
    u = dct.dct2(x)
    torch.testing.assert_close(dct.idct2(u), x, atol=atol, rtol=0)
    torch.testing.assert_close(u.pow(2).sum(), x.pow(2).sum(), atol=atol * 1e3, rtol=1e-6)
    c = dct.dct_matrix(16, dtype=torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(16, dtype=torch.float64), atol=1e-13, rtol=0)


def test_constant_image_lives_in_the_dc_coefficient():
    u = dct.dct2(torch.ones(1, 1, 8, 8, dtype=torch.float64))
    assert math.isclose(float(u[0, 0, 0, 0]), 8.0, rel_tol=1e-12)
    assert float(u.abs().flatten()[1:].max()) < 1e-12


def test_frequencies_are_heat_equation_eigenvalues():
    """A Gaussian blur of std s pixels scales DCT coefficient (i, j) by exp(-lambda_ij s^2 / 2)."""
    lam = dct.frequencies(6, 10)
    i = torch.arange(6, dtype=torch.float64)[:, None]
    j = torch.arange(10, dtype=torch.float64)[None, :]
    torch.testing.assert_close(lam, math.pi**2 * (i**2 / 36 + j**2 / 100), atol=1e-12, rtol=0)
    # the discrete Laplacian with Neumann boundaries (the heat equation on the image) is diagonal in the
    # DCT basis, with eigenvalues 4 sin^2(pi i / 2H) ~ (pi i / H)^2 for low frequencies
    x = torch.zeros(1, 1, 64, 1, dtype=torch.float64)
    x[0, 0, :, 0] = torch.cos(math.pi * 3 * (torch.arange(64, dtype=torch.float64) + 0.5) / 64)
    padded = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    lap = padded[:, :, :-2] + padded[:, :, 2:] - 2 * x
    eig = -(lap / x)[0, 0, 10, 0]
    assert math.isclose(float(eig), 4 * math.sin(math.pi * 3 / 128) ** 2, rel_tol=1e-9)
    assert math.isclose(float(eig), float(dct.frequencies(64, 1)[3, 0]), rel_tol=2e-3)


# -- the N-D transform (volumes) and physical spacing ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 8, 8), (1, 1, 5, 6, 7), (8, 4, 4), (3, 1, 2)])
def test_dctn_3d_equals_scipy_dctn_ortho(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    axes = (-3, -2, -1)
    ref = scipy.fft.dctn(x, type=2, norm="ortho", axes=axes)
    np.testing.assert_allclose(dct.dctn(torch.from_numpy(x), dims=3).numpy(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(dct.idctn(torch.from_numpy(ref), dims=3).numpy(), x, atol=1e-12, rtol=0)


def test_dctn_2d_is_dct2_bit_for_bit_and_dims_are_checked():
    x = torch.randn(2, 3, 6, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dct.dctn(x, dims=2), dct.dct2(x))
    assert torch.equal(dct.idctn(x, dims=2), dct.idct2(x))
    # a volume's 3-D transform is not the per-slice 2-D one
    assert not torch.allclose(dct.dctn(x, dims=3), dct.dct2(x))
    with pytest.raises(ValueError, match="dims=4"):
        dct.dctn(x, dims=4)
    with pytest.raises(ValueError, match="at least 3 axes"):
        dct.idctn(torch.zeros(4, 4), dims=3)


def test_dctn_3d_round_trip_in_float32_and_norm():
    x = torch.randn(2, 2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    u = dct.dctn(x, dims=3)
    torch.testing.assert_close(dct.idctn(u, dims=3), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(u.pow(2).sum(), x.pow(2).sum(), rtol=1e-5, atol=0)


def test_frequencies_with_spacing_follow_the_formula():
    """lambda_k = pi^2 sum_a (k_a / (N_a s_a))^2; the 2-D default is the earlier formula exactly."""
    lam = dct.frequencies(4, 6, 10, spacing=(2.5, 1.0, 0.5))
    k = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (4, 6, 10)), indexing="ij")
    expected = math.pi**2 * ((k[0] / (4 * 2.5)) ** 2 + (k[1] / 6) ** 2 + (k[2] / (10 * 0.5)) ** 2)
    torch.testing.assert_close(lam, expected, atol=1e-12, rtol=0)
    fi = math.pi * torch.arange(6, dtype=torch.float64) / 6
    fj = math.pi * torch.arange(10, dtype=torch.float64) / 10
    assert torch.equal(dct.frequencies(6, 10), fi[:, None] ** 2 + fj[None, :] ** 2)
    assert torch.equal(dct.frequencies(6, 10, spacing=(1, 1)), dct.frequencies(6, 10))
    for bad in ((1.0, 1.0), (0.0, 1.0, 1.0), (-1.0, 1.0, 1.0), (float("inf"), 1.0, 1.0)):
        with pytest.raises(ValueError, match="spacing"):
            dct.frequencies(4, 6, 10, spacing=bad)


def test_frequencies_are_the_eigenvalues_of_the_anisotropic_laplacian():
    """The heat equation in physical space: the discrete Laplacian with Neumann boundaries on a grid whose axis a has
    spacing s_a, sum_a (x[n+1] + x[n-1] - 2 x[n]) / s_a^2, is diagonal in the 3-D DCT basis with eigenvalues
    sum_a 4 sin^2(pi k_a / 2 N_a) / s_a^2 ~ lambda_k for low frequencies."""
    sizes, spacing, k = (32, 64, 48), (4.0, 1.0, 1.0), (1, 3, 1)
    # x = prod_a cos(pi k_a (n_a + 1/2) / N_a): DCT basis function k of the (D, H, W) grid
    grids = [torch.cos(math.pi * kk * (torch.arange(n, dtype=torch.float64) + 0.5) / n)
             for kk, n in zip(k, sizes, strict=True)]
    x = einops.einsum(*grids, "d, h, w -> d h w")
    lap = torch.zeros_like(x)
    for axis, s in enumerate(spacing):
        padded = torch.cat([x.narrow(axis, 0, 1), x, x.narrow(axis, x.shape[axis] - 1, 1)], dim=axis)
        n = x.shape[axis]
        lap += (padded.narrow(axis, 0, n) + padded.narrow(axis, 2, n) - 2 * x) / s**2
    eig = -(lap / x)
    exact = sum(4 * math.sin(math.pi * kk / (2 * n)) ** 2 / s**2 for kk, n, s in zip(k, sizes, spacing, strict=True))
    torch.testing.assert_close(eig, torch.full_like(eig, exact), rtol=1e-9, atol=0)
    lam = float(dct.frequencies(*sizes, spacing=spacing)[k])
    assert math.isclose(exact, lam, rel_tol=2e-3)
    # spacing on the wrong axis gives another eigenvalue, far outside that tolerance
    assert not math.isclose(float(dct.frequencies(*sizes, spacing=(1.0, 4.0, 1.0))[k]), lam, rel_tol=0.1)
