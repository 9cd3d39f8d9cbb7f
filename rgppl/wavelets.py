"""Periodic orthogonal 2D wavelet transforms in JAX, built from PyWavelets' filter taps.

One level along an axis of length ``N`` (even), with the decomposition filters ``h`` (low pass) and
``g`` (high pass) of length ``F``, exactly as ``pywt`` with ``mode="periodization"``:

    a[n] = sum_k h[k] x[(2n + F/2 - k) mod N],   d[n] = sum_k g[k] x[(2n + F/2 - k) mod N].

The map ``x -> (a, d)`` is orthogonal (``G G^T = I``, ``G Gbar^T = 0``, ``G^T G + Gbar^T Gbar = I``), so
the inverse is the adjoint.  Both are written with rolls of the even and odd samples (no gather or
scatter, which are slow on CPU).  In 2D the low/high passes along axis -2 and
then -1 give the coarse field and three detail channels, in pywt's order ``(H, V, D)`` = (high-low,
low-high, high-high).  :func:`pyramid` gives every level: the coarse fields ``phi_j`` and the details ``d_j`` of
shape ``(..., 3, L/2^j, L/2^j)`` and ``j = 1`` the finest scale (Marchand, Ozawa, Biroli & Mallat's
``phi_j`` and ``phibar_j``).

Everything is differentiable and batched over leading axes.
"""

from functools import cache

import jax.numpy as jnp
import numpy as np
import pywt

from rgppl.errors import require
from rgppl.lattice import Lattice

WAVELETS = ("haar", "db2", "db4")


@cache
def filters(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decomposition filters ``(h, g)`` of the orthogonal wavelet ``name`` (pywt's ``dec_lo``, ``dec_hi``)."""
    require(name in pywt.wavelist(kind="discrete"), "wavelet", name, f"a discrete pywt wavelet, e.g. {WAVELETS}")
    wavelet = pywt.Wavelet(name)
    require(wavelet.orthogonal, "wavelet", name, "an orthogonal wavelet (haar, dbN, symN, coifN)")
    return np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi)


def _taps(taps: int):
    """For each tap ``k``, the sample it meets at output ``i``, ``2 i + taps/2 - k = 2 (i + q) + parity``: ``(k,
    parity, q)``."""
    for k in range(taps):
        offset = taps // 2 - k
        yield k, offset % 2, offset // 2


def _analysis(x, axis: int, name: str):
    """``(a, d)`` along ``axis``: each tap's samples are the even or odd half of ``x`` rolled by ``q``
    (rolls and a reshape, no gather)."""
    h, g = (tuple(map(float, f)) for f in filters(name))  # Python floats keep the input's dtype
    x = jnp.moveaxis(x, axis, -1)
    n = x.shape[-1]
    require(n % 2 == 0, "field.shape", x.shape, "each wavelet level halves the lattice: sizes must be even")
    halves = x.reshape(*x.shape[:-1], n // 2, 2)
    low = high = 0
    for k, parity, q in _taps(len(h)):
        samples = jnp.roll(halves[..., parity], -q, axis=-1)
        low, high = low + h[k] * samples, high + g[k] * samples
    return jnp.moveaxis(low, -1, axis), jnp.moveaxis(high, -1, axis)


def _synthesis(low, high, axis: int, name: str):
    """The adjoint of :func:`_analysis`: every tap's contribution rolled back onto its half, then interleaved."""
    h, g = (tuple(map(float, f)) for f in filters(name))
    low, high = jnp.moveaxis(low, axis, -1), jnp.moveaxis(high, axis, -1)
    halves = [0, 0]
    for k, parity, q in _taps(len(h)):
        halves[parity] = halves[parity] + jnp.roll(h[k] * low + g[k] * high, q, axis=-1)
    x = jnp.stack(halves, axis=-1).reshape(*low.shape[:-1], 2 * low.shape[-1])
    return jnp.moveaxis(x, -1, axis)


def dwt2(x, wavelet: str = "db4"):
    """One level: ``x[..., L, L] -> (coarse[..., L/2, L/2], details[..., 3, L/2, L/2])``."""
    low, high = _analysis(x, -2, wavelet)
    coarse, vertical = _analysis(low, -1, wavelet)
    horizontal, diagonal = _analysis(high, -1, wavelet)
    return coarse, jnp.stack([horizontal, vertical, diagonal], axis=-3)


def idwt2(coarse, details, wavelet: str = "db4"):
    """Inverse of :func:`dwt2` (its adjoint: the transform is orthogonal)."""
    horizontal, vertical, diagonal = details[..., 0, :, :], details[..., 1, :, :], details[..., 2, :, :]
    low = _synthesis(coarse, vertical, -1, wavelet)
    high = _synthesis(horizontal, diagonal, -1, wavelet)
    return _synthesis(low, high, -2, wavelet)


def pyramid(fields, wavelet: str = "haar", levels: int | None = None) -> tuple:
    """``(coarse_fields, details)`` of ``fields[..., L, L]`` (``L`` a power of two): ``coarse_fields[j]`` is ``phi_j``
    (``j = 0`` the fields themselves) and ``details[j - 1]`` is ``phibar_j``, for ``j = 1 .. levels`` (``None``: down
    to ``1 x 1``).  ``coarse_fields[-1]`` and ``details[::-1]`` are pywt's ``wavedec2`` list in periodization mode."""
    top = int(np.log2(Lattice(tuple(np.shape(fields)[-2:])).require_power_of_two("the wavelet pyramid")))
    levels = top if levels is None else levels
    require(isinstance(levels, int) and 1 <= levels <= top, "levels", levels, f"an integer in 1..{top}")
    coarse, details = [jnp.asarray(fields)], []
    for _ in range(levels):
        low, high = dwt2(coarse[-1], wavelet)
        coarse.append(low)
        details.append(high)
    return coarse, details
