import itertools

import jax.numpy as jnp
import numpy as np

from rgppl import observables as obs
from rgppl.hamiltonians import ising_dual


def test_tanh_spin_moments_equal_brute_force_conditioning():
    x = np.random.default_rng(0).normal(size=(2, 3))
    t = np.tanh(x)
    s2 = s4 = 0.0
    for spins in itertools.product((-1, 1), repeat=6):
        s = np.array(spins).reshape(2, 3)
        weight = np.prod((1 + s * t) / 2)
        s2 += weight * s.sum() ** 2
        s4 += weight * s.sum() ** 4
    m2, m4 = obs.ising_dual_spin_moments(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose([m2, m4], [s2 / 36, s4 / 36**2], rtol=1e-5)


def test_two_point_equals_direct_sum():
    phi = np.random.default_rng(1).normal(size=(3, 5))
    g = np.asarray(obs.two_point(jnp.asarray(phi)))
    for rx, ry in [(0, 0), (1, 2), (2, 4)]:
        direct = np.mean(phi * np.roll(np.roll(phi, -rx, 0), -ry, 1))
        assert abs(g[rx, ry] - direct) < 1e-5


def test_power_spectrum_is_parseval_consistent():
    phi = np.random.default_rng(2).normal(size=(4, 8, 8))
    power = np.asarray(obs.momentum_power(jnp.asarray(phi)))
    np.testing.assert_allclose(power.sum(axis=(1, 2)), (phi**2).sum(axis=(1, 2)), rtol=1e-5)
    k, p = obs.power_spectrum(jnp.asarray(phi))
    assert p.shape == (4, len(k)) and np.all(np.diff(k) > 0)


def test_ensemble_quantities():
    m = jnp.array([0.5, -0.5, 0.5, -0.5])
    assert float(obs.susceptibility(m, 16)) == 0.0
    assert float(obs.susceptibility(m, 16, connected=False)) == 4.0
    assert abs(float(obs.binder_cumulant(m**2, m**4)) - 2 / 3) < 1e-7


def test_scalar_observables_of_the_ising_dual():
    h = ising_dual(4)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(5, 4, 4)), jnp.float32)
    values = obs.scalar_observables(h, x)
    assert set(values) == {"m", "abs_m", "m2", "m4", "e", "spin_m2", "spin_m4"}
    assert all(v.shape == (5,) for v in values.values())
    edges, density = obs.field_histogram(x, bins=10)
    assert abs(np.sum(density * np.diff(edges)) - 1) < 1e-9


def test_spin_moments_of_a_saturated_dual_field_on_a_large_lattice():
    """All tanh x_i = 1: every spin is up, so E[m^2|x] = E[m^4|x] = 1 (N^4 must not overflow at L = 16)."""
    from rgppl.observables import ising_dual_spin_moments

    m2, m4 = ising_dual_spin_moments(jnp.full((2, 16, 16), 30.0))
    np.testing.assert_allclose(np.asarray(m2), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m4), 1.0, rtol=1e-5)
