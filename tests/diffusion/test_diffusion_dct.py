"""The DCT used by blurring diffusion: the scipy reference, orthonormality, round trip (issue item 8)."""

import math

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
