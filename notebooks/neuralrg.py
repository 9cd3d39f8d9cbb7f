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
# # NeuralRG: a flow guide for the Ising dual at $T_c$
#
# Li & Wang's Neural Network Renormalization Group (PRL 121, 260601 (2018)) is a normalizing flow
# $x = g(z)$ shaped like a MERA: 2x2-block RealNVP bijectors, applied scale by scale, send a lattice
# field to latent variables that live at one scale each. In rgppl it is a NumPyro autoguide,
# `AutoNeuralRG`, so stock `SVI` trains it, stock `NeuTraReparam` runs NUTS in its latent space, and
# ArviZ compares what comes out. We
#
# 1. train it on the continuous Ising dual at the critical temperature,
# 2. bound the free energy and estimate $\ln Z$ by importance sampling, against Kaufman's exact value,
# 3. sample with the independence sampler (MIS) and NeuTra-NUTS and compare with plain NUTS,
# 4. look at the latent variables scale by scale,
# 5. grow the trained flow to a lattice twice as large and train it on from there.

# %%
import os
from dataclasses import replace

import jax
import matplotlib.pyplot as plt
import numpy as np

from rgppl.diagnostics import compare
from rgppl.ensembles import ising_dual_fields
from rgppl.exact import exact_observables
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import ising_dual
from rgppl.infer import (
    MISSettings,
    SVISettings,
    free_energy,
    grow,
    latent_independence,
    latents_by_scale,
    resample_scales,
    run_mis,
    run_neutra,
    train_flow,
)
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.plots import plot_distributions, plot_latent_independence, plot_training

SMALL = os.environ.get("RGPPL_NOTEBOOK_SMALL") == "1"  # the tests run this notebook at a small size
L = 4 if SMALL else 8
model = ising_dual(L)
print(model.describe())

# %% [markdown]
# ## 1. Training: maximum likelihood on exact fields, then reverse KL by SVI
#
# The Ising dual has exact samples to spare: Swendsen-Wang spins $s$ give fields $x = A s + A^{1/2}\xi$.
# Maximum likelihood on them (`pretrain_steps`) puts the flow's mass on both magnetised states; then the
# loss is the variational free energy $F_q = E_q[\ln q(x) + E(x)] \ge -\ln Z$, with the path gradient
# (its noise vanishes as $q \to p$). The couplings are monotone rational-quadratic splines whose networks
# read the 3 x 3 blocks around their own (`kernel=3`); a last circulant layer (diagonal in Fourier space)
# takes the long-range linear correlations. The reported density is the symmetrised
# $q_{sym}(x) = [q(x) + q(-x)]/2$, while SVI trains $q$ itself (`train_q_sym=False`, half the cost).
# These are `FlowSettings()` and `SVISettings()`'s defaults; the quick run shrinks the flow.

# %%
flow = FlowSettings(width=8, couplings=2, kernel=1, knots=4) if SMALL else FlowSettings()
svi = SVISettings(
    steps=100 if SMALL else 2000,
    pretrain_steps=100 if SMALL else 1000,
    batch=64 if SMALL else 256,
    learning_rate=3e-3 if SMALL else 1e-3,
    checkpoint_every=50 if SMALL else 500,
)
data = ising_dual_fields(model, 4096 if SMALL else 65536, seed=0)
trained = train_flow(model, flow, svi, data=data, seed=0, progress=False)
print(f"{trained.n_params} parameters, {svi.pretrain_steps} + {svi.steps} steps in {trained.training_time_s:.0f} s")

# %% [markdown]
# ## 2. Free energy: the bound, importance sampling and the exact answer

# %%
stats = free_energy(trained, samples=4096 if SMALL else 32768)
for key in ("F_q", "F_q_err", "ln_z_is", "ln_z_is_err", "ln_z_exact", "kl_nats", "ess_fraction", "k_hat"):
    print(f"{key:>14s} = {stats[key]:.6g}")
plot_training(trained.losses, trained.monitor, "training.png", stats["ln_z_exact"])

# %% [markdown]
# `kl_nats` $= F_q + \ln Z_c$ is the exact KL divergence of the flow from the target. The importance
# sampled $\ln Z$ is unbiased in $Z$; its error bar can be trusted when PSIS's $\hat k < 0.7$.
#
# ## 3. Sampling: the independence sampler and NeuTra-NUTS beside NUTS

# %%
chains = NUTSSettings(chains=2, warmup=100, samples=200) if SMALL else NUTSSettings(chains=4, warmup=300, samples=1000)
runs = {
    "mis": run_mis(trained, MISSettings(chains=2 if SMALL else 4, samples=500 if SMALL else 5000), progress=False),
    "neutra": run_neutra(trained, chains, progress=False),
    "nuts": run_nuts(model, chains, progress=False),
}
truth = exact_observables(model)
print("MIS acceptance:", runs["mis"].attrs["acceptance"])
compare(runs, ["spin_m2", "spin_binder", "abs_m"], exact=truth)

# %%
plot_distributions(runs, ["spin_m2", "abs_m", "m2"], "samplers.png", truth)

# %% [markdown]
# ## 4. Renormalised collective variables
#
# The latent field keeps each variable at the site it was frozen at. At criticality neighbouring
# physical variables are strongly correlated at every distance; the latent variables of one scale should
# be nearly independent.

# %%
phi = runs["mis"].posterior["phi"].values.reshape(-1, L, L)
table = latent_independence(trained.flow, phi)
plot_latent_independence(table, "latents.png")
table

# %% [markdown]
# Editing in latent space: redraw only the coarsest (top) variables of a few fields. The short-distance
# texture is kept while the long-wavelength content (here the overall sign and magnetisation) changes.

# %%
fields = phi[:3]
edited = np.asarray(resample_scales(trained.flow, jax.random.PRNGKey(1), fields, [trained.flow.levels]))
fig, axes = plt.subplots(2, 3, figsize=(9, 6))
for column in range(3):
    axes[0, column].imshow(fields[column], cmap="RdBu_r", vmin=-4, vmax=4)
    axes[1, column].imshow(edited[column], cmap="RdBu_r", vmin=-4, vmax=4)
axes[0, 0].set_ylabel("original")
axes[1, 0].set_ylabel("top scale redrawn")
fig.savefig("latent_edit.png", dpi=100)
{level: values.shape for level, values in latents_by_scale(trained.flow, fields).items()}

# %% [markdown]
# ## 5. A lattice twice as large
#
# Every sublayer is a convolution over its grid of blocks, so the trained flow is also a flow on a
# 2L x 2L lattice: `grow` copies each level (the lower levels by index, the top levels by their distance
# from the top) and interpolates the circulant layer in momentum. At $T_c$ the local statistics of each
# scale barely depend on the volume, so the grown flow starts far closer to the target than a fresh one
# (whose KL, for $q = N(0, I)$, is hundreds of nats), and a short training finishes the job.

# %%
larger = ising_dual(2 * L)
start = grow(trained, larger)
print("grown, before training: KL =", free_energy(start, samples=4096 if SMALL else 16384)["kl_nats"])
finer = train_flow(
    larger, flow, replace(svi, steps=100 if SMALL else 600, pretrain_steps=0), init=start, seed=0, progress=False
)
larger_stats = free_energy(finer, samples=4096 if SMALL else 32768)
print(
    f"after training on {2 * L} x {2 * L}: KL = {larger_stats['kl_nats']:.4g} nats, ESS fraction "
    f"{larger_stats['ess_fraction']:.3f}, {finer.training_time_s:.0f} s of training on both lattices"
)
