"""A long-tailed, long-range surrogate of weak-lensing convergence maps (not physics: a test bed).

Marchand et al. fit their wavelet conditional model to weak-lensing convergence maps as well as to
phi^4; those maps are skewed, with long positive tails (halos) and power-law correlations.  Real maps
load through :func:`rgppl.ensembles.load_ensemble`; for tests and benchmarks without them, this module
draws a *lognormal* field, the standard first approximation of the convergence (Coles & Jones 1991):

    g ~ Gaussian with spectrum  P_g(k) = A (|k|^2 + k0^2)^(-slope/2),   A set so that Var g = sigma^2,
    kappa = exp(g - sigma^2 / 2) - 1,

so ``<kappa> = 0``, ``Var kappa = exp(sigma^2) - 1``, the skewness is ``(e^{s^2} + 2) sqrt(e^{s^2} - 1)``
and the tail is lognormal.  ``k0`` (the inverse correlation length) keeps the zero mode finite.
"""

import jax
import jax.numpy as jnp
import numpy as np

from rgppl.errors import require
from rgppl.exact import sample_gaussian_field
from rgppl.lattice import Lattice


def lognormal_spectrum(lattice: Lattice, slope: float, k0: float, sigma: float) -> np.ndarray:
    """Eigenvalues ``M_k = 1 / P_g(k)`` of the Gaussian field's precision, normalised to ``Var g = sigma^2``."""
    power = (lattice.momentum_norm**2 + k0**2) ** (-slope / 2)
    power *= sigma**2 / power.mean()  # Var g = (1/N) sum_k P_g(k) with the unitary convention
    return 1.0 / power


def lognormal_fields(key, L: int, n: int, *, slope: float = 2.5, k0: float = 0.1, sigma: float = 0.8) -> jax.Array:
    """``n`` surrogate convergence maps ``kappa[n, L, L]`` (see the module docstring)."""
    require(slope > 0, "slope", slope, "a positive power-law slope")
    require(k0 > 0, "k0", k0, "a positive infrared cutoff")
    require(sigma > 0, "sigma", sigma, "a positive standard deviation of the Gaussian field")
    spectrum = lognormal_spectrum(Lattice(L), slope, k0, sigma)
    g = sample_gaussian_field(key, spectrum, (n,))
    return jnp.exp(g - sigma**2 / 2) - 1
