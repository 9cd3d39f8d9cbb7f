import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from numpyro.infer.util import initialize_model

from rgppl.errors import InputError
from rgppl.hamiltonians import (
    BETA_C_ISING,
    Custom,
    DoubleWell,
    Gradient,
    Hamiltonian,
    Hopping,
    IsingDual,
    Mass,
    Quartic,
    free_field,
    ising_dual,
    log_cosh,
    phi4_hopping,
    phi4_lattice_qft,
)
from rgppl.lattice import Lattice
from tests.dense import dense_adjacency

SHAPES = [(4, 4), (3, 5), (2, 2)]


def random_field(shape, seed=0, batch=(3,)):
    return np.random.default_rng(seed).normal(size=(*batch, *shape))


@pytest.mark.parametrize("shape", SHAPES)
def test_quadratic_terms_against_dense_matrices(shape):
    phi = random_field(shape)
    flat = phi.reshape(len(phi), -1)
    adj = dense_adjacency(shape)
    laplacian = 4 * np.eye(len(adj)) - adj
    cases = [
        (Gradient(1.7), 0.5 * 1.7 * laplacian),
        (Hopping(0.6), -0.6 * 0.5 * adj),
        (Mass(-1.3), 0.5 * -1.3 * np.eye(len(adj))),
    ]
    for term, half_matrix in cases:
        expected = np.einsum("bi,ij,bj->b", flat, half_matrix, flat)
        np.testing.assert_allclose(
            np.asarray(term.energy(jnp.asarray(phi, jnp.float32))), expected, rtol=2e-5, atol=2e-5
        )
        spectrum = np.sort(term.quadratic_spectrum(Lattice(shape)).ravel())
        np.testing.assert_allclose(spectrum, np.sort(np.linalg.eigvalsh(2 * half_matrix)), atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_local_terms_against_site_sums(shape):
    phi = random_field(shape)
    np.testing.assert_allclose(Quartic(2.5).energy(jnp.asarray(phi)), 2.5 * (phi**4).sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        DoubleWell(0.7).energy(jnp.asarray(phi)), 0.7 * ((phi**2 - 1) ** 2).sum(axis=(1, 2)), rtol=1e-5
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_ising_dual_against_dense_inverse(shape):
    beta = 0.35
    alpha = 0.1 - beta * np.linalg.eigvalsh(dense_adjacency(shape)).min()
    term = IsingDual(beta, alpha)
    term.validate(Lattice(shape))
    a_dense = beta * dense_adjacency(shape) + alpha * np.eye(np.prod(shape))
    x = 2 * random_field(shape, seed=1)
    flat = x.reshape(len(x), -1)
    expected = 0.5 * np.einsum("bi,ij,bj->b", flat, np.linalg.inv(a_dense), flat) - np.log(np.cosh(flat)).sum(1)
    np.testing.assert_allclose(np.asarray(term.energy(jnp.asarray(x, jnp.float32))), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        np.sort(term.a_eigenvalues(Lattice(shape)).ravel()), np.linalg.eigvalsh(a_dense), atol=1e-10
    )


def test_log_cosh_is_stable():
    x = jnp.array([-1e4, -30.0, -1.0, 0.0, 0.5, 30.0, 1e4])
    values = log_cosh(x)
    assert bool(jnp.all(jnp.isfinite(values)))
    np.testing.assert_allclose(values[2:5], np.log(np.cosh(np.array([-1.0, 0.0, 0.5]))), rtol=1e-6)
    np.testing.assert_allclose(values[-1], 1e4 - np.log(2), rtol=1e-7)


def test_presets_match_their_formulas():
    phi = random_field((4, 4), seed=3)
    nn = lambda p: p * (np.roll(p, -1, -2) + np.roll(p, -1, -1))  # noqa: E731
    hop = phi4_hopping(4, beta=0.68)
    expected = (-0.68 * nn(phi) + phi**2 + (phi**2 - 1) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(hop.energy(jnp.asarray(phi)), expected, rtol=1e-5)

    qft = phi4_lattice_qft(4, m2=-4.0, lam=8.0)
    kinetic = (np.roll(phi, -1, -2) - phi) ** 2 + (np.roll(phi, -1, -1) - phi) ** 2
    expected = (kinetic - 4.0 * phi**2 + 8.0 * phi**4).sum(axis=(1, 2))
    np.testing.assert_allclose(qft.energy(jnp.asarray(phi)), expected, rtol=1e-5)

    assert abs(ising_dual(8).terms[0].alpha - (0.1 + 4 * BETA_C_ISING)) < 1e-12
    np.testing.assert_allclose(free_field(4, 0.5).quadratic_spectrum(), 0.5 + Lattice(4).laplacian_eigenvalues)


def test_custom_term_is_vectorised_and_differentiable():
    term = Custom(lambda p: jnp.sum(jnp.sin(p) * p[::-1]), name="twisted")
    h = Hamiltonian(Lattice((3, 4)), (Gradient(1.0), Mass(1.0), term))
    phi = jnp.asarray(random_field((3, 4), batch=(2, 5)), jnp.float32)
    energy = h.energy(phi)
    assert energy.shape == (2, 5)
    np.testing.assert_allclose(energy[1, 2], h.energy(phi[1, 2]), rtol=1e-6)
    assert jax.grad(lambda p: h.energy(p))(phi[0, 0]).shape == (3, 4)


def test_numpyro_potential_equals_energy():
    h = phi4_hopping(4)
    info = initialize_model(jax.random.PRNGKey(0), h.model)
    phi = jnp.asarray(random_field((4, 4), batch=()), jnp.float32)
    np.testing.assert_allclose(info.potential_fn({"phi": phi}), h.energy(phi), rtol=1e-6)
    np.testing.assert_allclose(h.potential_fn({"phi": phi}), h.energy(phi), rtol=1e-6)
    assert float(h.log_density(phi)) == pytest.approx(-float(h.energy(phi)))


def test_model_works_with_svi_and_an_autoguide():
    # mean-field Gaussian VI on a Gaussian target is exact in its variances: 1/sigma^2 = M_xx = m2 + 4
    h = free_field(4, m2=1.0)
    guide = numpyro.infer.autoguide.AutoDiagonalNormal(h.model)
    schedule = optax.cosine_decay_schedule(0.05, 3000)
    optimizer = numpyro.optim.optax_to_numpyro(optax.adam(schedule))
    svi = numpyro.infer.SVI(h.model, guide, optimizer, numpyro.infer.Trace_ELBO(num_particles=16))
    result = svi.run(jax.random.PRNGKey(0), 3000, progress_bar=False)
    scale = np.asarray(result.params["auto_scale"])
    np.testing.assert_allclose(scale, 1 / np.sqrt(5.0), rtol=0.05)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: free_field(4, m2=0.0), "m2"),
        (lambda: Lattice(-3), "lattice.shape"),
        (lambda: Lattice((4, 4, 4)), "lattice.shape"),
        (lambda: Quartic(-1.0), "quartic.lam"),
        (lambda: Hopping(float("nan")), "hopping.beta"),
        (lambda: Mass("heavy"), "mass.m2"),
        (lambda: ising_dual(4, beta=0.44, alpha=0.2), "ising_dual.alpha"),
        (lambda: Hamiltonian(Lattice(4), (Hopping(0.3),)), "hamiltonian.terms"),
        (lambda: phi4_hopping(4).energy(jnp.zeros((5, 5))), "phi.shape"),
        (lambda: Lattice(6).require_power_of_two("NeuralRG"), "lattice.shape"),
    ],
)
def test_bad_input_names_field_value_and_valid_range(build, field):
    with pytest.raises(InputError) as info:
        build()
    assert info.value.field.endswith(field) or field in info.value.field
    assert "invalid" in str(info.value)


def test_energy_is_traced_a_bounded_number_of_times_in_an_svi_loop():
    traces = []

    def counted(phi):
        traces.append(1)  # runs once per trace, never per call of compiled code
        return jnp.sum(phi**4)

    h = Hamiltonian(Lattice(4), (Gradient(1.0), Mass(1.0), Custom(counted, name="counted")))
    assert len(traces) == 1  # the term's check: one abstract trace to its output shape
    guide = numpyro.infer.autoguide.AutoDiagonalNormal(h.model)
    svi = numpyro.infer.SVI(h.model, guide, numpyro.optim.Adam(0.01), numpyro.infer.Trace_ELBO())
    svi.run(jax.random.PRNGKey(0), 500, progress_bar=False)
    assert 0 < len(traces) - 1 <= 4
