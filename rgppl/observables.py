"""Observables of lattice fields, batched over leading axes and jit-friendly.

Per-configuration quantities act on ``phi[..., Lx, Ly]`` and return arrays of the leading shape;
ensemble quantities (susceptibility, Binder cumulant) act on a sample of per-configuration values.
Magnetisation ``m = (1/N) sum_x phi_x``.  Fourier conventions as in :mod:`rgppl.lattice`.

For the continuous Ising dual the spins can be summed out analytically: given ``x`` the spins are
independent with ``E[s_i | x] = t_i = tanh x_i``, so the conditional moments of ``S = sum_i s_i`` are
exact functions of ``x`` (improved, "tanh" estimators with smaller variance than any spin sample):
``E[S^2 | x] = (sum t)^2 - sum t^2 + N`` and ``E[S^4 | x]`` from the summed cumulants of ``±1``
variables, ``k2 = 1 - t^2``, ``k3 = -2 t k2``, ``k4 = -2 k2 (1 - 3 t^2)``.
"""

import jax.numpy as jnp
import numpy as np

from rgppl.lattice import Lattice


def magnetisation(phi):
    """``m = (1/N) sum_x phi_x``."""
    return jnp.mean(phi, axis=(-2, -1))


def susceptibility(m, n_sites: int, connected: bool = True):
    """``chi = N (<m^2> - <|m|>^2)`` (connected, the finite-volume convention), or ``N <m^2>``."""
    m = jnp.asarray(m)
    m2 = jnp.mean(m**2)
    return n_sites * (m2 - jnp.mean(jnp.abs(m)) ** 2) if connected else n_sites * m2


def binder_cumulant(m2, m4):
    """``U = 1 - <m^4> / (3 <m^2>^2)`` from samples (or exact conditional moments) of ``m^2`` and ``m^4``."""
    return 1.0 - jnp.mean(m4) / (3.0 * jnp.mean(m2) ** 2)


def two_point(phi):
    """``G(r) = (1/N) sum_x phi_x phi_{x+r}`` on the grid of separations ``r`` (by FFT), per configuration."""
    spectrum = jnp.abs(jnp.fft.fft2(phi)) ** 2
    return jnp.real(jnp.fft.ifft2(spectrum)) / (phi.shape[-2] * phi.shape[-1])


def momentum_power(phi):
    """``|phi_k|^2`` with the unitary transform, per configuration (``<.>`` is the propagator)."""
    return jnp.abs(jnp.fft.fft2(phi, norm="ortho")) ** 2


def radial_bins(lattice: Lattice, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every momentum by ``|k|`` (zero mode excluded: index -1) and the bin centres."""
    k = lattice.momentum_norm
    n_bins = n_bins or max(lattice.shape) // 2
    edges = np.linspace(0.0, k.max() * (1 + 1e-9), n_bins + 1)
    index = np.digitize(k, edges) - 1
    index[k == 0] = -1
    return index, 0.5 * (edges[1:] + edges[:-1])


def radial_average(values, index: np.ndarray, n_bins: int):
    """Average ``values[..., Lx, Ly]`` over the bins of ``index`` (entries < 0 ignored)."""
    flat = values.reshape(*values.shape[:-2], -1)
    one_hot = (index.reshape(-1)[:, None] == np.arange(n_bins)[None, :]).astype(np.float64)
    counts = one_hot.sum(axis=0)
    return (flat @ jnp.asarray(one_hot, dtype=flat.dtype)) / jnp.asarray(np.maximum(counts, 1), dtype=flat.dtype)


def power_spectrum(phi, n_bins: int | None = None):
    """Radially averaged power spectrum ``P(|k|) = <|phi_k|^2>_{|k| in bin}``; returns ``(k, P[..., bins])``."""
    lattice = Lattice(phi.shape[-2:])
    index, centres = radial_bins(lattice, n_bins)
    return centres, radial_average(momentum_power(phi), index, len(centres))


def field_histogram(phi, bins: int = 60, value_range: tuple[float, float] | None = None):
    """Normalised histogram (density) of all field values: ``(edges, density)``."""
    values = np.asarray(phi).reshape(-1)
    value_range = value_range or (float(values.min()), float(values.max()))
    density, edges = np.histogram(values, bins=bins, range=value_range, density=True)
    return edges, density


def tail_statistics(phi, std: float, thresholds=(2, 4, 6, 8)) -> dict:
    """Per-field measures of a long-tailed field ``phi[n, Lx, Ly]``: the fraction of pixels more than ``t``
    standard deviations ``std`` above the field's mean for every threshold ``t``, and the pixel skewness
    ``<d^3>`` and kurtosis ``<d^4>`` of ``d = (phi - mean) / std``; each an array of ``n`` values."""
    phi = np.asarray(phi, np.float64)
    centred = (phi - phi.mean(axis=(-2, -1), keepdims=True)) / std
    values = {f"P(phi > {t} std)": np.mean(centred > t, axis=(-2, -1)) for t in thresholds}
    values["pixel skewness"] = np.mean(centred**3, axis=(-2, -1))
    values["pixel kurtosis"] = np.mean(centred**4, axis=(-2, -1))
    return values


def ising_dual_spin_moments(x):
    """Exact ``E[m^2 | x]`` and ``E[m^4 | x]`` of the Ising spins behind a dual field ``x[..., Lx, Ly]``."""
    N = float(x.shape[-2] * x.shape[-1])  # a Python int N**4 overflows int32 from L = 16 on
    t = jnp.tanh(x)
    k2 = 1.0 - t**2
    K1 = jnp.sum(t, axis=(-2, -1))
    K2 = jnp.sum(k2, axis=(-2, -1))
    K3 = jnp.sum(-2.0 * t * k2, axis=(-2, -1))
    K4 = jnp.sum(-2.0 * k2 * (1.0 - 3.0 * t**2), axis=(-2, -1))
    s2 = K2 + K1**2
    s4 = K4 + 4 * K3 * K1 + 3 * K2**2 + 6 * K2 * K1**2 + K1**4
    return s2 / N**2, s4 / N**4


def scalar_observables(hamiltonian, phi) -> dict:
    """The per-configuration observables rgppl records for every sample of ``hamiltonian``.

    ``m``, ``abs_m``, ``m2``, ``m4`` and the energy density ``e = E/N``; for the Ising dual also the
    improved spin moments ``spin_m2``, ``spin_m4`` (see :func:`ising_dual_spin_moments`).  With
    ``hamiltonian=None`` (fields without a known energy, such as a user's maps) only the moments of ``m``.
    """
    m = magnetisation(phi)
    values = {"m": m, "abs_m": jnp.abs(m), "m2": m**2, "m4": m**4}
    if hamiltonian is None:
        return values
    values["e"] = hamiltonian.energy(phi) / hamiltonian.n_sites
    if hamiltonian.term("ising_dual") is not None:
        values["spin_m2"], values["spin_m4"] = ising_dual_spin_moments(phi)
    return values
