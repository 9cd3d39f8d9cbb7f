import jax
import numpy as np
import pytest

from rgppl.errors import InputError
from rgppl.observables import power_spectrum
from rgppl.surrogates import lognormal_fields
from tests.stats import family_threshold


def test_lognormal_surrogate_has_the_exact_lognormal_moments_and_a_power_law_spectrum():
    sigma, n, L = 0.8, 400, 32
    kappa = np.asarray(lognormal_fields(jax.random.PRNGKey(0), L, n, sigma=sigma), np.float64)
    s2 = sigma**2
    exact = {1: 0.0, 2: np.exp(s2) - 1, 3: np.exp(3 * s2) - 3 * np.exp(s2) + 2}  # E[(Y - 1)^p], Y lognormal
    z = []
    for power, value in exact.items():
        per_field = np.mean(kappa**power, axis=(1, 2))  # independent fields
        z.append((per_field.mean() - value) / (per_field.std(ddof=1) / np.sqrt(n)))
    assert np.max(np.abs(z)) < family_threshold(len(z)), z
    assert exact[3] > 0  # long positive tail
    k, p = power_spectrum(kappa)
    p = np.asarray(p).mean(axis=0)
    middle = (k > 0.3) & (k < 2.0)
    slope = np.polyfit(np.log(k[middle]), np.log(p[middle]), 1)[0]
    assert -3.0 < slope < -1.0  # long-range: a falling power law (the lognormal map flattens the Gaussian's -2.5)


@pytest.mark.parametrize("kwargs, field", [({"slope": -1.0}, "slope"), ({"k0": 0.0}, "k0"), ({"sigma": 0.0}, "sigma")])
def test_bad_surrogate_parameters_name_the_field(kwargs, field):
    with pytest.raises(InputError, match=field):
        lognormal_fields(jax.random.PRNGKey(0), 8, 2, **kwargs)
