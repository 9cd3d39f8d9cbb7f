import time

import jax
import numpy as np
import pytest

from rgppl import exact
from rgppl.diagnostics import compare, derived_quantities, make_datatree, mean_with_error, summary
from rgppl.hamiltonians import free_field
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.plots import plot_distributions, plot_field_statistics
from tests.stats import family_threshold


def exact_free_field_run(h, chains=4, draws=1000, seed=0):
    start = time.perf_counter()
    phi = exact.sample_gaussian_field(jax.random.PRNGKey(seed), h.quadratic_spectrum(), (chains, draws))
    elapsed = time.perf_counter() - start
    return make_datatree(h, phi, attrs={"sampler": "exact", "sampling_time_s": elapsed, "gradient_evaluations": 0})


def test_exact_gaussian_sampler_reproduces_the_propagator():
    h = free_field((4, 6), m2=0.3)
    phi = np.asarray(exact.sample_gaussian_field(jax.random.PRNGKey(0), h.quadratic_spectrum(), (1, 40000)))
    power = np.abs(np.fft.fft2(phi, norm="ortho")) ** 2
    stats = mean_with_error(power)
    z = (stats["mean"] - exact.free_field_propagator((4, 6), 0.3)) / stats["mcse"]
    assert np.max(np.abs(z)) < family_threshold(z.size)


def test_derived_quantities_of_independent_gaussian_draws():
    h = free_field(4, m2=0.5)
    dt = exact_free_field_run(h, draws=20000)
    derived = derived_quantities(dt)
    truth = exact.exact_observables(h)
    for name in ("binder", "chi"):
        assert abs(derived[name]["mean"] - truth[name]) < family_threshold(2) * derived[name]["mcse"], name
        assert derived[name]["ess_bulk"] > 20000  # independent draws: ESS ~ number of draws


def test_compare_puts_runs_side_by_side(tmp_path):
    h = free_field(4, m2=0.5)
    runs = {
        "nuts": run_nuts(h, NUTSSettings(chains=2, warmup=200, samples=500, checkpoint_every=500), progress=False),
        "exact": exact_free_field_run(h, chains=2, draws=500),
    }
    truth = exact.exact_observables(h)
    table = compare(runs, exact=truth)
    assert set(table.index.get_level_values("run")) == {"nuts", "exact"}
    assert {"mean", "mcse", "ess_bulk", "ess_tail", "ess_per_s", "ess_per_1k_grad", "exact", "z"} <= set(table.columns)
    assert np.isnan(table.loc[("m2", "exact"), "ess_per_1k_grad"])
    assert table.loc[("m2", "nuts"), "ess_per_1k_grad"] > 0
    assert np.all(np.abs(table.xs("m2", level="observable")["z"]) < family_threshold(2))
    plot_distributions(runs, ["m", "m2", "e"], tmp_path / "dist.png", truth)
    plot_field_statistics(runs, tmp_path / "fields.png", h.quadratic_spectrum())
    assert (tmp_path / "dist.png").stat().st_size > 10000 and (tmp_path / "fields.png").stat().st_size > 10000


def test_summary_columns_and_exact_z():
    h = free_field(4, m2=0.5)
    dt = exact_free_field_run(h, draws=2000)
    table = summary(dt, exact=exact.exact_observables(h))
    assert list(table.columns) == [
        "mean",
        "sd",
        "mcse_mean",
        "ess_bulk",
        "ess_tail",
        "r_hat",
        "ess_per_s",
        "ess_per_1k_grad",
        "exact",
        "z",
    ]
    assert table["ess_per_1k_grad"].isna().all()  # the exact sampler uses no gradients
    assert table.loc["e", "exact"] == pytest.approx(0.5)
    z = table["z"].dropna()
    assert np.all(np.abs(z) < family_threshold(len(z)))
