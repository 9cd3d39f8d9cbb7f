# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # rgppl quickstart: a lattice model, NUTS, exact answers and ArviZ
#
# We write the continuous dual of the 2D Ising model (Li & Wang 2018) at its critical temperature,
#
# $$E(x) = \tfrac12 x^\top (K + \alpha I)^{-1} x - \sum_i \ln\cosh x_i,
#   \qquad K_{ij} = \beta\,[ij\ \text{neighbours}],$$
#
# sample it with NumPyro's NUTS, and check the spin magnetisation against the exact transfer-matrix
# value, using the improved estimator $E[s_i \mid x] = \tanh x_i$. Then a Gaussian free field is
# compared with its exact sampler, side by side in ArviZ.

# %%
import os

import jax
import numpy as np

from rgppl import exact
from rgppl.diagnostics import compare, make_datatree, summary
from rgppl.hamiltonians import BETA_C_ISING, Gradient, Hamiltonian, Mass, free_field, ising_dual
from rgppl.lattice import Lattice
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.plots import plot_distributions, plot_field_statistics

SMALL = os.environ.get("RGPPL_NOTEBOOK_SMALL") == "1"  # the tests run this notebook at a small size
settings = NUTSSettings(chains=2 if SMALL else 4, warmup=200 if SMALL else 500, samples=300 if SMALL else 2000)

# %% [markdown]
# ## 1. The Ising dual at $T_c$ on a 4x4 torus

# %%
model = ising_dual(4, beta=BETA_C_ISING)
print(model.describe())
print("exact ln Z_c =", exact.ising_dual_logz(4, BETA_C_ISING, model.terms[0].alpha))

dt = run_nuts(model, settings, seed=0, progress=False)
truth = exact.exact_observables(model)
summary(dt, ["m2", "spin_m2", "spin_m4"], exact=truth)

# %% [markdown]
# `z` is the deviation from the exact value in units of the Monte Carlo standard error (which ArviZ
# computes from the effective sample size). The posterior group holds the field itself:

# %%
dt.posterior["phi"]

# %% [markdown]
# ## 2. Writing a Hamiltonian term by term, and comparing samplers
#
# The free field $E = \tfrac12 \sum (\nabla\phi)^2 + \tfrac{m^2}{2} \sum \phi^2$ is a sum of two terms.
# Its exact sampler (FFT colouring of white noise) gives independent draws: put it beside NUTS.

# %%
L, m2 = (8, 0.25) if not SMALL else (4, 0.5)
field = Hamiltonian(Lattice(L), (Gradient(1.0), Mass(m2)), name="free_field")
assert np.allclose(field.quadratic_spectrum(), free_field(L, m2).quadratic_spectrum())

nuts = run_nuts(field, settings, seed=1, progress=False)
phi = exact.sample_gaussian_field(
    jax.random.PRNGKey(2), field.quadratic_spectrum(), (settings.chains, settings.samples)
)
independent = make_datatree(field, phi, attrs={"sampler": "exact", "sampling_time_s": 1e-3, "gradient_evaluations": 0})
truth = exact.exact_observables(field)
compare({"nuts": nuts, "exact": independent}, ["m2", "e"], exact=truth)

# %%
plot_distributions({"nuts": nuts, "exact": independent}, ["m", "m2", "e"], "quickstart_distributions.png", truth)
plot_field_statistics({"nuts": nuts, "exact": independent}, "quickstart_fields.png", field.quadratic_spectrum())
