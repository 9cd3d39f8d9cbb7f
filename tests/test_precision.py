"""``precision = "float64"``: the samplers compute in double precision, and identities that float32's rounding
blurs hold to double rounding."""

import numpy as np
import pytest

from rgppl.diagnostics import mean_with_error
from rgppl.errors import InputError
from rgppl.exact import exact_observables, free_field_spectrum
from rgppl.hamiltonians import free_field
from rgppl.mcmc import NUTSSettings
from rgppl.sampling import sample
from tests.stats import family_threshold


def exact_energy(phi: np.ndarray, m2: float) -> np.ndarray:
    """``E = 1/2 sum_k lambda_k |phi_k|^2 / N`` of each field, in float64 from its Fourier modes."""
    modes = np.fft.fft2(phi.astype(np.float64))
    return 0.5 * np.sum(free_field_spectrum(phi.shape[-2:], m2) * np.abs(modes) ** 2, axis=(-2, -1)) / phi[0, 0].size


@pytest.mark.parametrize("precision, rounding", [("float64", 1e-12), ("float32", 1e-5)])
def test_nuts_energies_hold_to_the_precision_asked_for_and_the_moments_stay_exact(precision, rounding):
    h = free_field(8, m2=0.5)
    dt = sample(h, NUTSSettings(chains=2, warmup=200, samples=300), seed=0, precision=precision, progress=False)
    phi = dt.posterior.phi.values
    assert phi.dtype == np.dtype(precision)
    relative = np.abs(-dt.sample_stats.lp.values - exact_energy(phi, 0.5)) / exact_energy(phi, 0.5)
    assert relative.max() < rounding
    if precision == "float32":  # the energy of a float32 run is rounded: float64 is not a no-op
        assert relative.max() > 1e-9
    m2 = mean_with_error(dt.posterior.m2.values)  # and the sampler still samples: <m^2> against the exact value
    assert abs(m2["mean"] - exact_observables(h)["m2"]) < family_threshold(1) * m2["mcse"]


def test_an_unknown_precision_is_named():
    with pytest.raises(InputError, match="precision"):
        sample(free_field(4), NUTSSettings(chains=1, warmup=10, samples=10), precision="float16")
