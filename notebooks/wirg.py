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
# # Wavelet conditional RG for critical $\phi^4$
#
# Marchand, Ozawa, Biroli & Mallat (PRX 13, 041038) learn $p(\phi)$ from samples as a product over
# wavelet scales, $p(\phi_0) = p_J(\phi_J) \prod_j \bar p_j(\bar\phi_j \mid \phi_j)$: every conditional
# covers one octave, is fitted on its own, and is sampled in a few MALA steps, so generating a critical
# field costs $O(N)$ with no critical slowing down. We
#
# 1. take an ensemble of $\phi^4$ fields at $\beta = 0.68$ from the cluster sampler,
# 2. fit each scale's conditional energy by score matching (closed form, seconds),
# 3. generate fields coarse to fine and compare them with an independent ensemble: power spectrum,
#    per-scale standard deviations, histograms, Binder cumulant,
# 4. look at what was learned: the couplings' sizes and the scalar potential of each scale,
# 5. add up the scales into the microscopic energy $E_0$ and read off the hopping coupling and the local
#    potential, to compare with the Hamiltonian that made the data,
# 6. use the fitted hierarchy as a NumPyro model: given a coarse field, NUTS draws the details,
# 7. fit long-tailed fields (a surrogate of weak-lensing maps) through the log of their shifted values.

# %%
import json
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS, init_to_feasible

from rgppl.diagnostics import compare
from rgppl.ensembles import ClusterSettings, reference_ensemble
from rgppl.hamiltonians import phi4_hopping
from rgppl.jobs.wirg import scale_deviations, scale_table
from rgppl.observables import tail_statistics
from rgppl.plots import plot_field_statistics, plot_wirg_scales
from rgppl.surrogates import lognormal_fields
from rgppl.wirg import FitSettings, GeneratorSettings, fit_wirg, generate, hierarchical_model, pyramid
from rgppl.wirg.free_energy import compare_with_hamiltonian

SMALL = os.environ.get("RGPPL_NOTEBOOK_SMALL") == "1"  # the tests run this notebook at a small size
L = 8 if SMALL else 32
model = phi4_hopping(L, beta=0.68)
print(model.describe())

# %% [markdown]
# ## 1. Data: the cluster sampler
#
# Metropolis sweeps plus Swendsen-Wang moves on the embedded Ising signs; one field is kept every
# `thin` sweeps. The ensemble is cached on disk: a second run reads it. A second, independent ensemble
# (another seed) is the yardstick for the generated fields.

# %%
cluster = ClusterSettings(
    chains=4, warmup=100 if SMALL else 500, samples=100 if SMALL else 1000, thin=2 if SMALL else 10
)
train = reference_ensemble(model, cluster, seed=0, progress=False)
reference = reference_ensemble(model, cluster, seed=1, progress=False)
fields = train.posterior["phi"].values.reshape(-1, L, L)
print(f"{len(fields)} training fields of {L}x{L}")

# %% [markdown]
# ## 2. Fit, scale by scale
#
# Each conditional energy is linear in its parameters: quadratic couplings between the coarse field and
# the three Haar detail channels over a $(2r+1)^2$ window, and a scalar potential of the reconstructed
# finer field on sigmoid features. Score matching gives the parameters in closed form after diagonal
# preconditioning; the condition number of that system is reported per scale. The data are symmetrised
# under $\phi \to -\phi$ (`mirror_images`), and the coarsest scales (side <= 4) are refined by maximum
# likelihood: the `FitSettings()` defaults, the recipe of the `phi4_wirg` card.

# %%
fit = (
    FitSettings(potentials=6, ml_iterations=3, ml_fields=800, mirror_images=True)
    if SMALL
    else FitSettings(mirror_images=True)
)
wirg = fit_wirg(fields, fit, progress=False)
pd.DataFrame(scale_table(wirg)).set_index("side")

# %% [markdown]
# ## 3. Generate coarse to fine and compare
#
# One MALA chain per field and scale, started at zero, step size adapted towards an acceptance of 0.57.
# The per-scale record shows the acceptance and the autocorrelation time of each conditional in MALA
# steps: it stays a few steps at every scale.

# %%
generator = GeneratorSettings(samples=400, warmup=60, steps=30) if SMALL else GeneratorSettings(samples=4000)
generated = generate(wirg, model, generator, seed=2, data=fields, progress=False)
pd.DataFrame(json.loads(generated.attrs["scales"])).set_index("side")

# %%
runs = {"wirg": generated, "reference": reference}
compare(runs, var_names=["abs_m", "m2", "e"])

# %%
plot_field_statistics(runs, "fields.png")
plt.imshow(plt.imread("fields.png"))
plt.axis("off")
# %% [markdown]
# ## 4. Per-scale standard deviations and the learned potentials
#
# At criticality the coarse fields grow by $2^{(2-\eta)/2} \approx 1.83$ per octave ($\eta = 1/4$);
# the generated fields follow the reference scale by scale.

# %%
deviations = scale_deviations(wirg, runs)
ratios = np.array(deviations["wirg"][1:]) / np.array(deviations["wirg"][:-1])
print("growth per octave of the generated coarse fields:", np.round(ratios, 3))
plot_wirg_scales(wirg, deviations, fields, "scales.png")
plt.imshow(plt.imread("scales.png"))
plt.axis("off")
# %% [markdown]
# ## 5. The microscopic energy
#
# Every conditional leaves a normaliser, the free energy $\tilde F_j(\phi_j)$, whose gradient is the
# conditional mean of $\nabla_{\phi_j} \bar E_j$: it is fitted by least squares on the data pairs (closed
# form, done by `fit_wirg`). Then $E_0 = E_J + \sum_j (\bar E_j - \tilde F_j)$ up to a constant. Projected
# on neighbour couplings $J_s$ and a site polynomial $a_2 \phi^2 + a_4 \phi^4 + a_6 \phi^6$, it should give
# back $J_{(1,0)} = J_{(0,1)} = \beta = 0.68$, $a_2 = -1$, $a_4 = 1$ and nothing else.

# %%
recovered = compare_with_hamiltonian(wirg, model, fields[:1000])
print(f"relative error of grad E_0: {recovered['gradient_error']:.3f}")
pd.DataFrame(recovered["couplings"]).set_index("term").round(4)

# %% [markdown]
# ## 6. The hierarchy as a NumPyro model: super-resolution
#
# `hierarchical_model` has one sample site per scale and the fitted energies (and free energies) as
# factors. Conditioned on the coarse field of one training field, NUTS draws its details; the draws keep
# that coarse field exactly and vary in the details. The chains start with every detail at zero
# (`init_to_feasible`), inside the range where the fitted potentials are defined.

# %%
coarse, _ = pyramid(fields[0], wirg.wavelet, 1)
mcmc = MCMC(
    NUTS(hierarchical_model, init_strategy=init_to_feasible),
    num_warmup=100 if SMALL else 500,
    num_samples=100 if SMALL else 500,
    progress_bar=False,
)
mcmc.run(jax.random.PRNGKey(3), wirg, coarse=coarse[1])
draws = np.asarray(mcmc.get_samples()["phi"])
print(
    "max deviation of the draws' coarse field:",
    float(np.max(np.abs(pyramid(draws, wirg.wavelet, 1)[0][1] - coarse[1]))),
)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, image, title in zip(
    axes, (fields[0], draws[-1], draws.std(0)), ("training field", "a NUTS draw", "std of the draws")
):
    ax.imshow(image, cmap="RdBu_r")
    ax.set_title(title)
    ax.axis("off")

# %% [markdown]
# ## 7. Long-tailed fields: fit the log
#
# Weak-lensing convergence maps are bounded below and have a long positive tail. Fitted to $\kappa$
# itself, the conditionals go wrong in the tail: score matching only sees gradients where the data are,
# and leaves a spurious well far out, where the generated fields pile up. Such fields are close to a
# shifted lognormal, so `transform = "shifted_log"` fits the model to $y = \ln(\kappa + \lambda)$ and maps
# the generated fields back with $\kappa = e^y - \lambda$; the energy of $\kappa$ gains
# $\sum_x \ln(\kappa_x + \lambda)$. The shift is the root of $\mathrm{skewness}(\ln(\kappa + \lambda)) = 0$
# above $-\min \kappa$. Here the fields are the lognormal surrogate of `rgppl.surrogates`, whose exact
# shift is 1, and the pixel tails are in standard deviations of an independent exact ensemble.

# %%
count = 400 if SMALL else 4000
kappa_train = np.asarray(lognormal_fields(jax.random.PRNGKey(10), L, count))
kappa_reference = np.asarray(lognormal_fields(jax.random.PRNGKey(11), L, count))
kappa_std = float(kappa_reference.std())
tails = {"reference": tail_statistics(kappa_reference, kappa_std)}
for transform in ("none", "shifted_log"):
    lensing = fit_wirg(
        kappa_train, FitSettings(potentials=6 if SMALL else 12, transform=transform, ml_iterations=0), progress=False
    )  # as the lognormal_wirg card: score matching alone, 300 warm-up steps
    drawn = generate(
        lensing,
        None,
        GeneratorSettings(samples=count, warmup=60 if SMALL else 300, steps=generator.steps),
        seed=12,
        progress=False,
    )
    tails[f"fitted to {lensing.transform.describe()}"] = tail_statistics(drawn.posterior["phi"].values, kappa_std)
pd.DataFrame({label: {name: float(np.mean(v)) for name, v in values.items()} for label, values in tails.items()}).T
