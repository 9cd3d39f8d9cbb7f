"""The free energies of the WIRG conditionals, the reconstructed microscopic energy E_0 and the NumPyro
models over the scales, checked against the exact Gaussian free field."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import log_density

from rgppl.diagnostics import mean_with_error
from rgppl.errors import InputError
from rgppl.hamiltonians import free_field, phi4_hopping
from rgppl.wirg import FitSettings, fit_wirg, pyramid
from rgppl.wirg.fit import exact_quadratic_theta
from rgppl.wirg.free_energy import microscopic_energy, project_couplings
from rgppl.wirg.numpyro_model import hierarchical_model, inpainting_model
from tests.stats import family_threshold, student_threshold
from tests.test_wirg import M2, free_field_data

L = 8
SETTINGS = FitSettings(radius=2, potentials=0, pair_potentials=0)  # on 8 x 8 radius 2 reaches every shift: exact family


@pytest.fixture(scope="module")
def fitted():
    data = free_field_data(L, 4000, 0)
    return fit_wirg(data, SETTINGS, progress=False), data


def precision_matrix() -> np.ndarray:
    """The free field's ``E = 1/2 phi^T K phi`` as a dense ``(L^2, L^2)`` matrix."""
    hessian = jax.jacfwd(jax.grad(free_field((L, L), M2).energy))(jnp.zeros((L, L)))
    return np.asarray(hessian, np.float64).reshape(L * L, L * L)


def test_projection_returns_a_hamiltonians_own_couplings():
    fields = free_field_data(L, 200, 1)
    free = project_couplings(free_field((L, L), M2).energy, fields, powers=(2,))
    phi4 = project_couplings(phi4_hopping((L, L), 0.68).energy, fields)
    expected_free = {"J(1,0)": 1.0, "J(0,1)": 1.0, "a_2": 2 + M2 / 2}
    expected_phi4 = {"J(1,0)": 0.68, "J(0,1)": 0.68, "a_2": -1.0, "a_4": 1.0}
    for found, expected in ((free, expected_free), (phi4, expected_phi4)):
        for name, value in found.items():
            assert value == pytest.approx(expected.get(name, 0.0), abs=1e-4), name


def test_reconstructed_energy_recovers_the_free_field_couplings():
    """E_0 = E_J + sum_j (Ebar_j - Ftilde_j), projected on nearest- and further-neighbour couplings and a mass
    term, against the exact 1/2 (grad phi)^2 + m^2/2 phi^2; the standard errors come from independent replicates
    (fit and projection repeated on disjoint exact ensembles; two levels, to keep the eight fits short)."""
    settings, fields = replace(SETTINGS, levels=2), free_field_data(L, 300, 99)
    replicates = [fit_wirg(free_field_data(L, 600, seed), settings, progress=False) for seed in range(10, 18)]
    found = [project_couplings(microscopic_energy(model), fields, powers=(2,)) for model in replicates]
    exact = project_couplings(free_field((L, L), M2).energy, fields, powers=(2,))
    values = np.array([[row[name] for name in exact] for row in found])
    t = (values.mean(0) - np.array(list(exact.values()))) / (values.std(0, ddof=1) / np.sqrt(len(values)))
    assert np.max(np.abs(t)) < student_threshold(len(exact), len(values) - 1), dict(zip(exact, t))


@pytest.mark.usefixtures("float64")
def test_hierarchical_log_density_is_the_microscopic_energy_in_wavelet_coordinates(fitted):
    """The sites per scale are an orthogonal change of variables of phi (unit Jacobian): the model's log density
    equals -E_0(phi); the inpainting model's equals the same at the assembled field."""
    model, data = fitted
    phi = jnp.asarray(data[0], jnp.float64)
    coarse, details = pyramid(phi, model.wavelet, model.levels)
    sites = {f"phi_{coarse[-1].shape[-1]}x{coarse[-1].shape[-1]}": coarse[-1]}
    sites |= {f"details_{d.shape[-1]}x{d.shape[-1]}": d for d in details}
    energy = microscopic_energy(model)(phi)
    np.testing.assert_allclose(log_density(hierarchical_model, (model,), {}, sites)[0], -energy, rtol=1e-10)
    known = np.broadcast_to(np.arange(L)[:, None] < L // 2, (L, L))
    unknown = {"unknown": phi[~known]}
    np.testing.assert_allclose(log_density(inpainting_model, (model, known, phi), {}, unknown)[0], -energy, rtol=1e-10)
    # eager float64 features after the float32 fit: the closed-form Gram matrix is still the autodiff one
    finest = model.scales[-1].ansatz
    gradients = jax.jacrev(finest.features, argnums=1)(coarse[1], details[0]).reshape(finest.n_params, -1)
    np.testing.assert_allclose(
        finest.feature_gram(coarse[1], details[0]), gradients @ gradients.T, rtol=1e-9, atol=1e-10
    )


def nuts_draws(model_fn, args, seed: int):
    mcmc = MCMC(
        NUTS(model_fn), num_warmup=400, num_samples=1000, num_chains=2, chain_method="sequential", progress_bar=False
    )
    mcmc.run(jax.random.PRNGKey(seed), *args)
    return mcmc.get_samples(group_by_chain=True)


def gaussian_check(draws, exact_mean, exact_variance) -> float:
    """Max |z| of the posterior means and second central moments against exact, with ArviZ MCSEs."""
    draws = np.asarray(draws, np.float64)
    z = []
    for values, target in ((draws, exact_mean), ((draws - exact_mean) ** 2, exact_variance)):
        stats = mean_with_error(values)
        z.append((stats["mean"] - target) / stats["mcse"])
    return float(np.max(np.abs(np.concatenate(z))))


def test_super_resolution_draws_the_exact_gaussian_conditional(fitted):
    """Given phi_1, NUTS on the hierarchical model draws the finest details from the conditional; with the exact
    finest couplings that is the exact Gaussian p(phibar_1 | phi_1), and the coarse part is kept."""
    model, data = fitted
    finest = model.scales[-1]
    theta, residual = exact_quadratic_theta(finest.ansatz, free_field((L, L), M2).energy, model.unit)
    assert residual < 1e-6
    model = replace(model, scales=(*model.scales[:-1], replace(finest, theta=theta, support=(-1e3, 1e3))))
    coarse, _ = pyramid(data[1], model.wavelet, 1)
    draws = nuts_draws(hierarchical_model, (model, coarse[1]), seed=1)

    basis = np.eye(L * L).reshape(-1, L, L)
    (_, basis_coarse), (basis_details,) = pyramid(basis, model.wavelet, 1)
    w = np.concatenate([np.asarray(basis_coarse).reshape(L * L, -1), np.asarray(basis_details).reshape(L * L, -1)], 1).T
    k = w @ precision_matrix() @ w.T  # the precision in the wavelet basis (w is orthogonal)
    m = L * L // 4
    covariance = np.linalg.inv(k[m:, m:])
    mean = -covariance @ k[m:, :m] @ np.asarray(coarse[1], np.float64).ravel()
    details = np.asarray(draws["details_4x4"]).reshape(2, 1000, -1)
    assert gaussian_check(details, mean, np.diag(covariance)) < family_threshold(2 * len(mean))
    regenerated, _ = pyramid(np.asarray(draws["phi"]).reshape(-1, L, L), model.wavelet, 1)
    np.testing.assert_allclose(regenerated[1], np.broadcast_to(coarse[1], regenerated[1].shape), atol=1e-5)


def test_inpainting_draws_the_missing_pixels_from_the_fitted_field(fitted):
    """Given the left half of a field, NUTS on the pixel model fills in the right half with the free field's
    Gaussian conditional (the fit's own error, about 1 % of the couplings, is well below the MCSE here)."""
    model, data = fitted
    known = np.broadcast_to(np.arange(L)[:, None] < L // 2, (L, L))
    draws = nuts_draws(inpainting_model, (model, known, data[2]), seed=2)
    k = precision_matrix()
    u, o = np.flatnonzero(~known.ravel()), np.flatnonzero(known.ravel())
    covariance = np.linalg.inv(k[np.ix_(u, u)])
    mean = -covariance @ k[np.ix_(u, o)] @ data[2].ravel()[o]
    assert gaussian_check(np.asarray(draws["unknown"]), mean, np.diag(covariance)) < family_threshold(2 * len(u))
    np.testing.assert_array_equal(
        np.asarray(draws["phi"])[..., known], np.broadcast_to(data[2][known], (2, 1000, known.sum()))
    )


def test_numpyro_models_name_bad_conditioning(fitted):
    model, _ = fitted
    with pytest.raises(InputError, match="coarse"):
        log_density(hierarchical_model, (model, np.zeros((3, 3))), {}, {})
    with pytest.raises(InputError, match="known"):
        log_density(inpainting_model, (model, np.ones((L, L), bool), np.zeros((L, L))), {}, {})
    with pytest.raises(InputError, match="model.free_energies"):
        microscopic_energy(replace(model, free_energies=()))
