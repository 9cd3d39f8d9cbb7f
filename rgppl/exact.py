"""Exact results: the oracles every sampler and every fitter is checked against.

* 2D Ising on an ``L x M`` torus, ``Z = sum_s exp(beta sum_<ij> s_i s_j)``:
  Kaufman's (1949) closed form (:func:`ising_logz`), brute-force enumeration for ``N <= 20``
  (:func:`ising_enumerate`) and the row transfer matrix (:func:`ising_magnetisation_pmf`), which gives
  the exact distribution of the magnetisation and hence ``<m^2>``, ``<m^4>`` and the Binder cumulant
  for widths up to 10.
* The continuous Ising dual of Li & Wang: ``ln Z_c`` from the Ising ``ln Z`` (:func:`ising_dual_logz`).
* Gaussian fields ``E = 1/2 phi^T M phi`` with circulant ``M``: ``ln Z``, the momentum-space
  propagator ``<|phi_k|^2> = 1/M_k`` and the real-space two-point function.

All in float64 NumPy: these are references, not hot paths.
"""

import itertools

import numpy as np
from scipy.special import logsumexp

from rgppl.errors import require
from rgppl.lattice import Lattice

MAX_ENUMERATION_SITES = 20
MAX_TRANSFER_WIDTH = 10  # cost ~ 2^(3L) N: 0.4 s at L = 8, ~20 s at L = 10


def _signed_logsumexp(logs, signs):
    """``ln|sum_i s_i e^{l_i}|`` and its sign."""
    return logsumexp(np.asarray(logs), b=np.asarray(signs, dtype=float), return_sign=True)


def ising_logz(L: int, beta: float, M: int | None = None) -> float:
    """``ln Z`` of the 2D Ising model on an ``L x M`` torus (Kaufman 1949), ``J = 1``.

    ``Z = 1/2 (2 sinh 2K)^{LM/2} (Z1 + Z2 + Z3 + Z4)`` with
    ``Z1,2 = prod_r 2 cosh|sinh(M g_{2r+1} / 2)``, ``Z3,4 = prod_r 2 cosh|sinh(M g_{2r} / 2)``,
    ``cosh g_k = cosh 2K coth 2K - cos(pi k / L)`` for ``k >= 1`` and the *signed*
    ``g_0 = 2K + ln tanh K`` (negative above T_c; taking ``arccosh`` there is the classic error).
    The four terms are combined with a signed log-sum-exp (``Z4`` is negative above T_c).
    """
    M = L if M is None else M
    require(L >= 2 and M >= 2, "L", (L, M), "both sides of the torus must be >= 2")
    require(beta > 0, "beta", beta, "Kaufman's formula here is for the ferromagnet, beta > 0")
    K = float(beta)
    k = np.arange(2 * L)
    argument = np.cosh(2 * K) / np.tanh(2 * K) - np.cos(np.pi * k / L)
    gamma = np.arccosh(np.maximum(argument, 1.0))
    gamma[0] = 2 * K + np.log(np.tanh(K))
    odd, even = gamma[1::2], gamma[0::2]

    def log_prod_2cosh(g):
        x = np.abs(M * g / 2)
        return np.sum(x + np.log1p(np.exp(-2 * x)))  # ln prod 2 cosh

    def log_prod_2sinh(g):
        x = M * g / 2
        if np.any(x == 0):
            return -np.inf, 0.0
        ax = np.abs(x)
        return np.sum(ax + np.log(-np.expm1(-2 * ax))), np.prod(np.sign(x))

    z2, s2 = log_prod_2sinh(odd)
    z4, s4 = log_prod_2sinh(even)
    log_sum, sign = _signed_logsumexp([log_prod_2cosh(odd), z2, log_prod_2cosh(even), z4], [1.0, s2, 1.0, s4])
    assert sign > 0, "Kaufman sum must be positive"
    return float(-np.log(2) + 0.5 * L * M * np.log(2 * np.sinh(2 * K)) + log_sum)


def _ising_bond_energy(spins, shape):
    """``sum_<ij> s_i s_j`` (forward links, periodic) for ``spins[..., Lx, Ly]``."""
    return np.sum(spins * (np.roll(spins, -1, -2) + np.roll(spins, -1, -1)), axis=(-2, -1))


def ising_enumerate(shape, beta: float) -> dict:
    """Brute-force enumeration of all ``2^N`` states (``N <= 20``).

    Returns ``ln Z``, ``<m^2>``, ``<m^4>``, ``<|m|>`` and ``<E>/N`` (``m = sum_i s_i / N``,
    ``E = -sum_<ij> s_i s_j``).
    """
    lattice = Lattice(shape)
    N = lattice.n_sites
    require(N <= MAX_ENUMERATION_SITES, "shape", lattice.shape, f"enumeration needs N <= {MAX_ENUMERATION_SITES} sites")
    states = np.array(list(itertools.product((-1.0, 1.0), repeat=N))).reshape(-1, *lattice.shape)
    bonds = _ising_bond_energy(states, lattice.shape)
    m = states.mean(axis=(-2, -1))
    log_w = beta * bonds
    log_z = logsumexp(log_w)
    p = np.exp(log_w - log_z)
    return {
        "ln_z": float(log_z),
        "m2": float(p @ m**2),
        "m4": float(p @ m**4),
        "abs_m": float(p @ np.abs(m)),
        "energy_density": float(-(p @ bonds) / N),
    }


def ising_magnetisation_pmf(L: int, beta: float, M: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact distribution of the magnetisation on an ``L x M`` torus by the row transfer matrix.

    With ``T_{s s'} = exp(beta [h(s') + s.s'])`` (``h`` the in-row bonds) and the fugacity
    ``D_theta = diag(exp(i theta n_up(s')))``, ``Z(theta) = Tr (T D_theta)^M`` is the generating function
    of the number ``j`` of up spins; a discrete Fourier transform over ``N + 1`` values of ``theta``
    gives ``P(j)`` exactly (up to float64 round-off), and ``S = 2 j - N``.
    Returns ``(m_values, pmf, ln Z)`` with ``m = S / N``.
    """
    M = L if M is None else M
    require(
        2 <= L <= MAX_TRANSFER_WIDTH, "L", L, f"the transfer matrix needs a row width 2 <= L <= {MAX_TRANSFER_WIDTH}"
    )
    rows = np.array(list(itertools.product((-1.0, 1.0), repeat=L)))
    in_row = np.sum(rows * np.roll(rows, -1, axis=1), axis=1)
    between = rows @ rows.T
    log_t = beta * (between + in_row[None, :])
    shift = log_t.max()
    transfer = np.exp(log_t - shift)
    N = L * M
    row_m = rows.sum(axis=1)
    thetas = 2 * np.pi * np.arange(N + 1) / (N + 1)
    z = np.empty(N + 1, dtype=complex)
    for q in range((N + 1) // 2 + 1):  # T is real, so Z(-theta) = conj Z(theta): half the DFT suffices
        step = transfer * np.exp(1j * thetas[q] * (row_m + L) / 2)[None, :]
        z[q] = np.trace(np.linalg.matrix_power(step, M))
        z[(N + 1 - q) % (N + 1)] = np.conj(z[q])
    j = np.arange(N + 1)
    # Z(theta) = sum_j W_j exp(i theta j); invert the DFT over theta_q = 2 pi q / (N + 1).
    weights = np.real(np.exp(-1j * np.outer(j, thetas)) @ z) / (N + 1)
    weights = np.clip(weights, 0.0, None)
    total = weights.sum()
    return (2 * j - N) / N, weights / total, float(np.log(total) + M * shift)


def ising_moments(L: int, beta: float, M: int | None = None) -> dict:
    """Exact ``<m^2>``, ``<m^4>``, ``<|m|>``, the Binder cumulant ``U = 1 - <m^4>/(3 <m^2>^2)`` and ``ln Z``."""
    m, p, log_z = ising_magnetisation_pmf(L, beta, M)
    m2, m4 = float(p @ m**2), float(p @ m**4)
    return {"ln_z": log_z, "m2": m2, "m4": m4, "abs_m": float(p @ np.abs(m)), "binder": 1 - m4 / (3 * m2**2)}


def ising_dual_logz(shape, beta: float, alpha: float) -> float:
    """``ln Z_c = ln int dx exp(-E(x))`` of the continuous Ising dual (:class:`rgppl.hamiltonians.IsingDual`).

    ``ln Z_Ising = ln Z_c + (N/2)(ln 4 - alpha - ln 2 pi) - 1/2 ln det A`` (Li & Wang 2018).
    """
    lattice = Lattice(shape)
    N = lattice.n_sites
    a_eig = alpha + beta * lattice.adjacency_eigenvalues
    require(a_eig.min() > 0, "alpha", alpha, "A = K + alpha I must be positive definite")
    Lx, Ly = lattice.shape
    log_z_ising = ising_logz(Ly, beta, Lx)
    return float(log_z_ising - 0.5 * N * (np.log(4) - alpha - np.log(2 * np.pi)) + 0.5 * np.sum(np.log(a_eig)))


def gaussian_logz(spectrum: np.ndarray) -> float:
    """``ln int dphi exp(-1/2 phi^T M phi) = (N/2) ln 2 pi - 1/2 sum_k ln M_k`` for Fourier eigenvalues ``M_k``."""
    spectrum = np.asarray(spectrum, dtype=float)
    require(spectrum.min() > 0, "spectrum", float(spectrum.min()), "the quadratic form must be positive definite")
    return float(0.5 * spectrum.size * np.log(2 * np.pi) - 0.5 * np.sum(np.log(spectrum)))


def free_field_spectrum(shape, m2: float) -> np.ndarray:
    """``lambda_k = m2 + sum_mu 4 sin^2(k_mu / 2)``, the free-field eigenvalues."""
    require(m2 > 0, "m2", m2, "the free-field mass m2 must be > 0")
    return m2 + Lattice(shape).laplacian_eigenvalues


def free_field_logz(shape, m2: float) -> float:
    """``ln Z`` of ``E = 1/2 sum (nabla phi)^2 + m2/2 sum phi^2`` on the torus."""
    return gaussian_logz(free_field_spectrum(shape, m2))


def free_field_propagator(shape, m2: float) -> np.ndarray:
    """``<|phi_k|^2> = 1 / lambda_k`` with the unitary Fourier convention of :mod:`rgppl.lattice`."""
    return 1.0 / free_field_spectrum(shape, m2)


def gaussian_two_point(spectrum: np.ndarray) -> np.ndarray:
    """``G(r) = <phi_x phi_{x+r}> = (1/N) sum_k e^{i k r} / M_k`` on the lattice grid of ``r``."""
    return np.real(np.fft.ifft2(1.0 / np.asarray(spectrum)))


def sample_gaussian_field(key, spectrum: np.ndarray, shape: tuple[int, ...]):
    """Exact independent draws of ``p(phi) ∝ exp(-1/2 phi^T M phi)`` (``M`` circulant, eigenvalues ``spectrum``).

    ``phi = IFFT[FFT[w] / sqrt(M_k)]`` with white noise ``w`` (unitary transforms), so
    ``<phi phi^T> = M^{-1}``.  Returns ``phi[*shape, Lx, Ly]`` in float32.
    """
    import jax
    import jax.numpy as jnp

    spectrum = np.asarray(spectrum)
    require(spectrum.min() > 0, "spectrum", float(spectrum.min()), "the quadratic form must be positive definite")
    noise = jax.random.normal(key, (*shape, *spectrum.shape))
    scale = jnp.asarray(1.0 / np.sqrt(spectrum), dtype=noise.dtype)
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(noise, norm="ortho") * scale, norm="ortho"))


def exact_observables(hamiltonian) -> dict:
    """Exact expectations of rgppl's scalar observables for ``hamiltonian``, where known, and ``ln_z``.

    * Quadratic energies ``E = 1/2 phi^T M phi``: ``ln Z``; ``m = phi_0 / sqrt(N)`` is Gaussian with
      variance ``1/(N M_0)``, so ``<m^2>``, ``<m^4> = 3 <m^2>^2``, ``<|m|> = sqrt(2 <m^2> / pi)``, Binder 0,
      and equipartition ``<E>/N = 1/2``.
    * The ferromagnetic Ising dual (widths <= 10 for the moments): ``ln Z_c``, the spin moments and Binder cumulant from
      the transfer matrix, and the field's magnetisation from ``m_x | s ~ Normal(a_0 m_s, a_0 / N)``
      with ``a_0 = alpha + 4 beta`` the zero-mode eigenvalue of ``A``:
      ``<m_x^2> = a_0^2 <m_s^2> + a_0/N``, ``<m_x^4> = a_0^4 <m_s^4> + 6 a_0^3 <m_s^2>/N + 3 a_0^2/N^2``.
    * Every preset is invariant under ``phi -> -phi``: ``<m> = 0`` (not claimed with custom terms).
    """
    N = hamiltonian.n_sites
    values = {}
    if not any(t.kind == "custom" for t in hamiltonian.terms):
        values["m"] = 0.0
    spectrum = hamiltonian.quadratic_spectrum()
    if spectrum is not None:
        m2 = 1.0 / (N * spectrum[0, 0])
        values.update(
            ln_z=gaussian_logz(spectrum),
            m2=m2,
            m4=3 * m2**2,
            abs_m=np.sqrt(2 * m2 / np.pi),
            binder=0.0,
            e=0.5,
            chi=N * m2 * (1 - 2 / np.pi),
        )
    dual = hamiltonian.term("ising_dual")
    if dual is not None and len(hamiltonian.terms) == 1 and dual.beta > 0:
        Lx, Ly = hamiltonian.lattice.shape
        beta, alpha = float(dual.beta), float(dual.alpha)
        values["ln_z"] = ising_dual_logz((Lx, Ly), beta, alpha)
        if Ly <= MAX_TRANSFER_WIDTH:
            spins = ising_moments(Ly, beta, Lx)
            a0 = alpha + 4 * beta
            m2 = a0**2 * spins["m2"] + a0 / N
            m4 = a0**4 * spins["m4"] + 6 * a0**3 * spins["m2"] / N + 3 * a0**2 / N**2
            values.update(
                spin_m2=spins["m2"],
                spin_m4=spins["m4"],
                spin_binder=spins["binder"],
                m2=m2,
                m4=m4,
                binder=1 - m4 / (3 * m2**2),
            )
    return values
