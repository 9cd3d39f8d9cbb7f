"""Pointwise transforms of the data before the wavelet model is fitted.

A long-tailed field bounded below, such as a weak-lensing convergence map, is close to a shifted lognormal
(Hilbert, Hartlap & Schneider, A&A 536, A85 (2011); Clerkin et al., MNRAS 466, 1444 (2017)):
``y = ln(kappa + lambda)`` is nearly Gaussian.  Its scalar potentials then need no well far out in the tail,
which the conditionals of ``kappa`` itself fit badly.  The model is fitted to ``y``. Generated ``y`` are
mapped back with ``kappa = e^y - lambda``. The energy of ``kappa`` gains the Jacobian term
``E_kappa(kappa) = E_y(y(kappa)) - ln |dy/dkappa| = E_y + sum_x ln(kappa_x + lambda)``.

The shift is chosen so that the transformed pixels have no skewness: the root of
``skewness(ln(kappa + lambda)) = 0`` above ``-min kappa``.  This is exact for a shifted lognormal, whose log
is Gaussian.
"""

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq
from scipy.stats import skew

from rgppl.errors import require

TRANSFORMS = ("none", "shifted_log")
SHIFT_SEARCH = 1e3  # the shift is sought in (-min, -min + SHIFT_SEARCH * std) of the data


@dataclass(frozen=True)
class Identity:
    """The data as they are: ``y = phi``."""

    def forward(self, phi):
        """``y`` of the data."""
        return phi

    def inverse(self, y):
        """The data of ``y``."""
        return y

    def log_jacobian(self, phi):
        """``sum_x ln |dy_x / dphi_x|`` of one field: 0."""
        return 0.0

    def describe(self) -> str:
        """``y`` as a formula of ``phi``."""
        return "phi"


@dataclass(frozen=True)
class ShiftedLog:
    """``y = ln(kappa + shift)`` pixel by pixel (see the module docstring)."""

    shift: float

    def forward(self, kappa):
        """``y`` of the data."""
        return jnp.log(kappa + self.shift)

    def inverse(self, y):
        """The data of ``y``."""
        return jnp.exp(y) - self.shift

    def log_jacobian(self, kappa):
        """``sum_x ln |dy_x / dkappa_x| = -sum_x ln(kappa_x + shift)`` of one field."""
        return -jnp.sum(self.forward(kappa))

    def describe(self) -> str:
        """``y`` as a formula of ``phi``."""
        return f"ln(phi + {self.shift:.4g})"


def zero_skewness_shift(fields) -> float:
    """The shift ``lambda > -min`` with ``skewness(ln(fields + lambda)) = 0`` (data with a long positive tail)."""
    values = np.asarray(fields, np.float64).ravel()
    data_skewness = float(skew(values))
    require(
        data_skewness > 0,
        "fit.transform",
        "shifted_log",
        f"data with a long positive tail (skewness > 0); these pixels have skewness {data_skewness:.3g}: "
        "fit them with transform = 'none'",
    )
    floor, spread = -values.min(), values.std()

    def log_skewness(shift):
        return float(skew(np.log(values + shift)))

    low, high = floor + 1e-9 * spread, floor + SHIFT_SEARCH * spread
    require(
        log_skewness(low) < 0 < log_skewness(high),
        "fit.transform",
        "shifted_log",
        f"data whose log can be made symmetric by a shift between -min = {floor:.4g} and "
        f"{high:.4g}; give fit.shift explicitly or use transform = 'none'",
    )
    return float(brentq(log_skewness, low, high, xtol=1e-6 * spread))


def make_transform(name: str, shift: float | None, fields) -> Identity | ShiftedLog:
    """The transform ``name`` of ``fields`` (``FitSettings.transform``); for ``shifted_log`` with ``shift`` given,
    or else the zero-skewness shift."""
    if name == "none":
        return Identity()
    floor = float(-np.min(fields))
    if shift is None:
        shift = zero_skewness_shift(fields)
    require(
        shift > floor,
        "fit.shift",
        shift,
        f"a shift above -min(data) = {floor:.6g}, so that the log of every pixel plus the shift is defined",
    )
    return ShiftedLog(float(shift))
