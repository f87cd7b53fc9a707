"""The orthonormal DCT-II over the last 2 or 3 axes, in matrix form (exact, differentiable, any device).

``C[k, n] = sqrt(2/N) c_k cos(pi (2n + 1) k / (2N))`` with ``c_0 = 1/sqrt(2)``, ``c_k = 1`` otherwise, so
``C C^T = I``. The transform applies ``C`` along each axis: for an ``(..., H, W)`` slice ``U = C_H X C_W^T``
(:func:`dct2`), inverse ``X = C_H^T U C_W`` (:func:`idct2`); for an ``(..., D, H, W)`` volume also ``C_D`` along
the slice axis (:func:`dctn` with ``dims=3``). These equal
``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-dims, ..., -1))`` (tested). Matrices are cached per
(size, device, dtype); at the sizes used here (<= 128 per axis) one small matmul per axis is faster than an
FFT-based DCT and exact to rounding.

:func:`frequencies` gives the heat-equation eigenvalue of every DCT basis function, with a physical spacing
per axis for anisotropic volumes (cardiac short-axis stacks: slices several pixels apart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    """Orthonormal 2-D DCT-II over the last two axes: ``C_H x C_W^T``. (..., H, W) -> (..., H, W)."""
    ch = dct_matrix(x.shape[-2], x.device, x.dtype)
    cw = ch if x.shape[-1] == x.shape[-2] else dct_matrix(x.shape[-1], x.device, x.dtype)
    return torch.matmul(torch.matmul(ch, x), cw.T)


def idct2(u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (DCT-III, orthonormal): ``C_H^T u C_W``. (..., H, W) -> (..., H, W)."""
    ch = dct_matrix(u.shape[-2], u.device, u.dtype)
    cw = ch if u.shape[-1] == u.shape[-2] else dct_matrix(u.shape[-1], u.device, u.dtype)
    return torch.matmul(torch.matmul(ch.T, u), cw)


def _along(x: torch.Tensor, mat: torch.Tensor, axis: int) -> torch.Tensor:
    """``y[..., k, ...] = sum_n mat[k, n] x[..., n, ...]`` along the negative ``axis`` of ``x`` (same shape).

    The axes after ``axis`` are flattened into one, so the product is a single batched matmul:
    (..., N, M) -> ``mat @ (..., N, M)``, M the product of the trailing sizes.
    """
    if axis == -1:
        return torch.matmul(x, mat.T)
    trailing = x.shape[axis + 1:]
    flat = x.reshape(*x.shape[: x.dim() + axis], x.shape[axis], -1)  # (..., N, M)
    return torch.matmul(mat, flat).reshape(x.shape[: x.dim() + axis + 1] + trailing)


def _check_dims(x: torch.Tensor, dims: int) -> None:
    if dims not in (2, 3):
        raise ValueError(f"the DCT runs over the last 2 (slices) or 3 (volumes) axes, got dims={dims}")
    if x.dim() < dims:
        raise ValueError(f"a {dims}-D DCT needs at least {dims} axes, got shape {tuple(x.shape)}")


def dctn(x: torch.Tensor, dims: int = 2) -> torch.Tensor:
    """Orthonormal DCT-II over the last ``dims`` axes (2 or 3). (..., [D,] H, W) -> the same shape.

    ``dims=2`` is :func:`dct2` itself (bit for bit); ``dims=3`` also applies ``C_D`` along the slice axis:
    ``U[k_d, k_h, k_w] = sum_{n_d} C_D[k_d, n_d] (C_H X[n_d] C_W^T)[k_h, k_w]``.
    """
    _check_dims(x, dims)
    u = dct2(x)
    if dims == 3:
        u = _along(u, dct_matrix(x.shape[-3], x.device, x.dtype), -3)
    return u


def idctn(u: torch.Tensor, dims: int = 2) -> torch.Tensor:
    """Inverse of :func:`dctn` (orthonormal DCT-III along each of the last ``dims`` axes): ``C^T`` per axis."""
    _check_dims(u, dims)
    x = idct2(u)
    if dims == 3:
        x = _along(x, dct_matrix(u.shape[-3], u.device, u.dtype).T, -3)
    return x


def frequencies(*sizes: int, spacing: Sequence[float] | None = None,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``lambda_k = pi^2 sum_a (k_a / (N_a s_a))^2``, shape ``sizes``: the heat-equation eigenvalue of DCT basis k.

    ``sizes`` are the axis lengths ``N_a`` (``frequencies(H, W)`` for a slice, ``frequencies(D, H, W)`` for a
    volume); ``spacing`` the physical distance ``s_a`` between neighbouring samples of axis a, in the unit in
    which blur is measured (the in-plane pixel: ``s = 1`` in-plane, e.g. ``(4, 1, 1)`` when slices are 4 pixels
    apart); default 1 on every axis, which gives ``pi^2 (i^2 / H^2 + j^2 / W^2)`` in 2-D.

    Blurring with a Gaussian kernel of standard deviation ``sigma`` (physical units, i.e. ``sigma / s_a`` samples
    along axis a) under reflecting (Neumann) boundaries multiplies DCT coefficient k by
    ``exp(-lambda_k sigma^2 / 2)`` (Rissanen et al. 2023; Hoogeboom & Salimans 2023, sec. 3): the axis of length
    ``N_a`` samples spans ``N_a s_a`` physical units, whose k-th cosine has wavenumber ``pi k_a / (N_a s_a)``.
    """
    if not sizes or any(int(n) < 1 for n in sizes):
        raise ValueError(f"frequencies needs positive axis sizes, got {sizes}")
    steps = (1.0,) * len(sizes) if spacing is None else tuple(float(s) for s in spacing)
    if len(steps) != len(sizes) or not all(math.isfinite(s) and s > 0 for s in steps):
        raise ValueError(f"spacing must give one positive number per axis {tuple(sizes)}, got {spacing}")
    lam = torch.zeros((), dtype=torch.float64)
    for axis, (n, s) in enumerate(zip(sizes, steps, strict=True)):
        # wavenumber of cosine k_a along axis a: pi k_a / (N_a s_a), broadcast to axis a of the grid
        f = math.pi * torch.arange(int(n), dtype=torch.float64) / (int(n) * s if spacing is not None else int(n))
        lam = lam + (f**2).reshape(-1, *([1] * (len(sizes) - 1 - axis)))
    return lam.to(dtype)
