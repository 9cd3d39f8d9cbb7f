import jax
import numpy as np
import pytest

from rgppl import exact
from rgppl.diagnostics import make_datatree
from rgppl.errors import InputError
from rgppl.fidelity import field_fidelity, worst
from rgppl.hamiltonians import free_field
from tests.stats import family_threshold

L, M2 = 16, 0.5


def exact_draws(seed, chains=4, draws=500, scale=1.0):
    h = free_field(L, m2=M2)
    phi = exact.sample_gaussian_field(jax.random.PRNGKey(seed), h.quadratic_spectrum(), (chains, draws))
    return h, make_datatree(h, scale * np.asarray(phi))


def test_two_exact_ensembles_are_indistinguishable_and_every_statistic_is_compared():
    h, ours = exact_draws(1)
    _, theirs = exact_draws(2)
    table = field_fidelity(ours, theirs, histogram_bins=20)
    counts = table["statistic"].value_counts()
    assert counts["scale_mean_square"] == 5  # 16, 8, 4, 2, 1
    assert counts["histogram"] == 20 and counts["spectrum"] >= 7
    assert counts["binder"] == 1
    assert worst(table)["all"] < family_threshold(len(table))


def test_a_field_five_percent_too_wide_is_caught_at_every_resolved_scale():
    _, ours = exact_draws(1, scale=1.05)
    _, theirs = exact_draws(2)
    table = field_fidelity(ours, theirs)
    squares = table[(table["statistic"] == "scale_mean_square") & (table["where"] >= 4)]  # sides with 16+ modes
    assert np.allclose(squares["ratio"], 1.05**2, rtol=0.02)
    assert (squares["z"] > 5).all()


def test_ensembles_of_different_lattices_are_refused_by_name():
    _, ours = exact_draws(1, draws=10)
    other = make_datatree(None, np.zeros((1, 10, 8, 8)))
    with pytest.raises(InputError, match="reference"):
        field_fidelity(ours, other)
