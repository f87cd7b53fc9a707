"""The orthonormal 2-D DCT-II over the last two axes, in matrix form (exact, differentiable, any device).

``C[k, n] = sqrt(2/N) c_k cos(pi (2n + 1) k / (2N))`` with ``c_0 = 1/sqrt(2)``, ``c_k = 1`` otherwise, so
``C C^T = I``. The 2-D transform of an ``(..., H, W)`` array is ``U = C_H X C_W^T`` and its inverse
``X = C_H^T U C_W``; this equals ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))`` (tested).
Matrices are cached per (size, device, dtype); at the image sizes used here (<= 128) two small matmuls
are faster than an FFT-based DCT and exact to rounding.
"""

from __future__ import annotations

import math

import torch

_CACHE: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def dct_matrix(n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(n, n)`` orthonormal DCT-II matrix ``C`` (rows = frequencies)."""
    key = (n, str(torch.device(device)), dtype)
    mat = _CACHE.get(key)
    if mat is None:
        k = torch.arange(n, dtype=torch.float64)[:, None]
        i = torch.arange(n, dtype=torch.float64)[None, :]
        mat = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
        mat[0] /= math.sqrt(2.0)
        mat = mat.to(device=device, dtype=dtype)
        _CACHE[key] = mat
    return mat


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes: ``C_H x C_W^T``."""
    ch = dct_matrix(x.shape[-2], x.device, x.dtype)
    cw = ch if x.shape[-1] == x.shape[-2] else dct_matrix(x.shape[-1], x.device, x.dtype)
    return torch.matmul(torch.matmul(ch, x), cw.T)


def idct2(u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (DCT-III, orthonormal): ``C_H^T u C_W``."""
    ch = dct_matrix(u.shape[-2], u.device, u.dtype)
    cw = ch if u.shape[-1] == u.shape[-2] else dct_matrix(u.shape[-1], u.device, u.dtype)
    return torch.matmul(torch.matmul(ch.T, u), cw)


def frequencies(height: int, width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``lambda_ij = pi^2 (i^2 / H^2 + j^2 / W^2)``, ``(H, W)``: the heat-equation eigenvalue of DCT basis (i, j).

    Blurring with a Gaussian kernel of standard deviation ``sigma`` pixels multiplies DCT coefficient (i, j)
    by ``exp(-lambda_ij sigma^2 / 2)`` (Rissanen et al. 2023; Hoogeboom & Salimans 2023, sec. 3).
    """
    fi = math.pi * torch.arange(height, dtype=torch.float64) / height
    fj = math.pi * torch.arange(width, dtype=torch.float64) / width
    return (fi[:, None] ** 2 + fj[None, :] ** 2).to(dtype)
