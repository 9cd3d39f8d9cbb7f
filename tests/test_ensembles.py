import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rgppl import exact
from rgppl.diagnostics import mean_with_error, summary
from rgppl.ensembles import ClusterSettings, cluster_labels, ising_dual_fields, reference_ensemble, run_cluster
from rgppl.errors import InputError
from rgppl.hamiltonians import Hamiltonian, Mass, free_field, ising_dual, phi4_hopping
from rgppl.lattice import Lattice
from rgppl.observables import magnetisation, momentum_power
from rgppl.storage import atomic_write_netcdf
from tests.stats import family_threshold


def union_find_components(bond_x, bond_y):
    Lx, Ly = bond_x.shape
    parent = list(range(Lx * Ly))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(Lx):
        for j in range(Ly):
            for active, (ni, nj) in ((bond_x[i, j], ((i + 1) % Lx, j)), (bond_y[i, j], (i, (j + 1) % Ly))):
                if active:
                    a, b = find(i * Ly + j), find(ni * Ly + nj)
                    parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(Lx * Ly)]).reshape(Lx, Ly)


@pytest.mark.parametrize("density", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("shape", [(6, 6), (4, 10), (2, 2)])
def test_cluster_labels_equal_union_find(density, shape):
    rng = np.random.default_rng(int(10 * density) + shape[1])
    bond_x, bond_y = rng.random(shape) < density, rng.random(shape) < density
    labels = np.asarray(jax.jit(cluster_labels)(jnp.asarray(bond_x), jnp.asarray(bond_y)))
    np.testing.assert_array_equal(labels, union_find_components(bond_x, bond_y))


def test_phi4_on_2x2_matches_quadrature():
    h = phi4_hopping(2, beta=0.68)
    grid = np.linspace(-3.2, 3.2, 49)  # exp(-E) < 1e-12 beyond the box: the trapezoid sum converges geometrically
    phi = np.stack(np.meshgrid(grid, grid, grid, grid, indexing="ij"), -1).reshape(-1, 2, 2)
    jax.config.update("jax_enable_x64", True)
    try:
        energy = np.asarray(h.energy(jnp.asarray(phi, jnp.float64)))
    finally:
        jax.config.update("jax_enable_x64", False)
    weight = np.exp(-(energy - energy.min()))
    m = phi.mean(axis=(1, 2))
    truth = {"m2": np.sum(weight * m**2) / weight.sum(), "abs_m": np.sum(weight * np.abs(m)) / weight.sum()}
    dt = run_cluster(h, ClusterSettings(chains=4, warmup=200, samples=2000), seed=0, progress=False)
    table = summary(dt, list(truth), exact=truth)
    assert np.all(table["ess_bulk"] > 1000)
    assert np.all(np.abs(table["z"]) < family_threshold(len(truth))), table


def test_free_field_propagator_within_error_bars():
    h = free_field(8, m2=0.2)
    dt = run_cluster(h, ClusterSettings(chains=4, warmup=200, samples=1000), seed=1, progress=False)
    stats = mean_with_error(np.asarray(momentum_power(jnp.asarray(dt.posterior["phi"].values))))
    z = (stats["mean"] - exact.free_field_propagator(8, 0.2)) / stats["mcse"]
    assert np.max(np.abs(z)) < family_threshold(z.size), z


def test_reference_ensemble_is_cached_on_disk(tmp_path):
    h = phi4_hopping(4)
    settings = ClusterSettings(chains=2, warmup=50, samples=100)
    first = reference_ensemble(h, settings, seed=2, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.nc"))
    assert len(files) == 1
    second = reference_ensemble(h, settings, seed=2, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first.posterior["phi"].values, second.posterior["phi"].values)
    assert second.attrs["sampler"] == "cluster" and second.attrs["gradient_evaluations"] == 0
    reference_ensemble(h, settings, seed=3, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.nc"))) == 2


def test_ising_dual_cluster_chains_match_the_transfer_matrix_moments(tmp_path):
    h = ising_dual(6)
    dt = run_cluster(h, ClusterSettings(chains=4, warmup=100, samples=3000), seed=0, progress=False)
    atomic_write_netcdf(tmp_path / "posterior.nc", dt)  # every attribute has a netCDF type
    exact_values = exact.exact_observables(h)
    truth = {name: exact_values[name] for name in ("m2", "m4")}
    table = summary(dt, list(truth), exact=truth)
    assert np.all(table["ess_bulk"] > 1000) and "step_size" not in dt.attrs
    assert np.all(np.abs(table["z"]) < family_threshold(len(truth))), table
    np.testing.assert_array_equal(dt.sample_stats["acceptance_rate"].values, 1.0)


def test_models_without_an_embedded_ising_form_are_refused():
    with pytest.raises(InputError, match="sum_x v"):
        run_cluster(Hamiltonian(Lattice((4, 4)), (*ising_dual(4).terms, Mass(1.0))), progress=False)
    with pytest.raises(InputError, match="even lattice"):
        run_cluster(phi4_hopping((6, 5)), progress=False)
    with pytest.raises(InputError, match="cluster.samples"):
        ClusterSettings(samples=0)


@pytest.mark.parametrize("h", [phi4_hopping(4), ising_dual(4)], ids=["phi4", "ising_dual"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, h):
    whole = run_cluster(
        h, ClusterSettings(chains=2, warmup=50, samples=40, checkpoint_every=20), seed=5, progress=False
    )
    path = tmp_path / "cluster.npz"
    run_cluster(
        h,
        ClusterSettings(chains=2, warmup=50, samples=20, checkpoint_every=20),
        seed=5,
        checkpoint=path,
        progress=False,
    )
    resumed = run_cluster(
        h,
        ClusterSettings(chains=2, warmup=50, samples=40, checkpoint_every=20),
        seed=5,
        checkpoint=path,
        resume=True,
        progress=False,
    )
    np.testing.assert_array_equal(resumed.posterior["phi"].values, whole.posterior["phi"].values)
    with pytest.raises(InputError, match="different model"):
        run_cluster(
            phi4_hopping(4, beta=0.5),
            ClusterSettings(chains=2, warmup=50, samples=40, checkpoint_every=20),
            seed=5,
            checkpoint=path,
            resume=True,
            progress=False,
        )


def test_ising_dual_fields_match_the_transfer_matrix_moments():
    h = ising_dual(6)
    x = ising_dual_fields(h, 20000, seed=0, chains=200, thin=4)
    m = np.asarray(magnetisation(jnp.asarray(x))).reshape(100, 200).T  # [chain, draw]: draws come round by round
    exact_values = exact.exact_observables(h)
    z = []
    for name, values in (("m2", m**2), ("m4", m**4)):
        stats = mean_with_error(values)
        z.append((stats["mean"] - exact_values[name]) / stats["mcse"])
    assert np.max(np.abs(z)) < family_threshold(len(z)), z
    with pytest.raises(InputError, match="single ising_dual term"):
        ising_dual_fields(phi4_hopping(4), 10)
    with pytest.raises(InputError, match="thin"):
        ising_dual_fields(h, 10, thin=0)


def test_a_site_energy_that_is_nan_over_part_of_the_range_stops_the_cluster_sampler(monkeypatch):
    """Metropolis rejects a proposal of NaN energy change and would leave the chain stuck there; the sampler counts
    them and stops.  The fault is injected: a site potential that is NaN beyond |phi| = 1.5."""
    from rgppl.errors import SamplingDiverged
    from rgppl.hamiltonians import Hamiltonian

    h = phi4_hopping(4, 0.68)
    J, site_energy = h.phi4_form()
    monkeypatch.setattr(
        Hamiltonian, "phi4_form", lambda self: (J, lambda phi: jnp.where(jnp.abs(phi) > 1.5, jnp.nan, site_energy(phi)))
    )
    with pytest.raises(SamplingDiverged, match="non-finite energy change"):
        run_cluster(h, ClusterSettings(chains=2, warmup=20, samples=20, thin=1), progress=False)
