"""Free energies from a trained flow: the variational bound and importance-sampled ln Z.

With draws ``x_i ~ q`` and log weights ``w_i = -E(x_i) - ln q(x_i)`` (reference sheet §4):

* ``F_q = -mean(w) >= -ln Z`` with standard error ``sd(w)/sqrt(n)`` (the variational free energy);
* ``ln Z_IS = logsumexp(w) - ln n``, with the delta-method standard error ``sd(e)/(sqrt(n) mean(e))``,
  ``e = exp(w - max w)``; trustworthy when PSIS's ``k_hat`` (Vehtari et al. 2024) is below ~0.7;
* ``ESS/n = exp(2 LSE(w) - LSE(2w)) / n``;
* ``k_hat`` is NaN when all weights are equal (then q = p and every estimate is exact);
* when ``rgppl.exact`` knows ``ln Z``: ``KL(q||p) = F_q + ln Z`` in nats; always the estimate
  ``KL_IS = F_q + ln Z_IS`` (``kl_nats_is``), low by the bias of ``ln Z_IS`` (Jensen: ``E ln Z_IS <= ln Z``),
  with the delta-method error of ``mean(-w_i + e_i / mean(e))`` (the two terms share their draws), the KL
  where no exact ``ln Z`` is known;
* by bins ``B`` of an observable, where ``q`` under- or over-covers ``p`` (:func:`coverage_by_bin`):
  ``q(B)`` is the draws' fraction in ``B``, ``p(B) = sum_{i in B} e_i / sum_i e_i`` the self-normalised
  importance estimate of ``p``'s, with the delta-method error of a ratio of means.  One ESS fraction
  over all draws can look fine while a bin holding a few per cent of ``p`` is missing from ``q``.
"""

import arviz_stats  # noqa: F401  (registers the .azstats accessor)
import jax
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from rgppl.errors import require, require_seed
from rgppl.exact import exact_observables


def importance_statistics(log_weights: np.ndarray) -> dict:
    """F_q, ln Z_IS with their standard errors, the ESS fraction and PSIS k-hat from ``w = ln p~ - ln q``."""
    w = np.asarray(log_weights, dtype=np.float64)
    n = len(w)
    e = np.exp(w - w.max())
    flat = np.ptp(w) == 0  # q equals p up to normalisation: no tail to fit
    k_hat = np.nan if flat else xr.DataArray(w[None], dims=("chain", "draw")).azstats.psislw()[1]
    return {
        "F_q": float(-w.mean()),
        "F_q_err": float(w.std(ddof=1) / np.sqrt(n)),
        "ln_z_is": float(logsumexp(w) - np.log(n)),
        "ln_z_is_err": float(e.std(ddof=1) / (np.sqrt(n) * e.mean())),
        "kl_nats_is_err": float((e / e.mean() - w).std(ddof=1) / np.sqrt(n)),
        "ess_fraction": float(np.exp(2 * logsumexp(w) - logsumexp(2 * w)) / n),
        "k_hat": float(k_hat),
        "samples": n,
    }


def free_energy(trained, *, samples: int = 16384, seed: int = 0) -> dict:
    """The free-energy table of a trained flow from ``samples`` draws of it (see the module docstring); per-site
    values included."""
    _, _, w = trained.draw(jax.random.PRNGKey(require_seed(seed)), samples)
    stats = importance_statistics(w)
    n_sites = trained.hamiltonian.n_sites
    stats["F_q_per_site"] = stats["F_q"] / n_sites
    ln_z = exact_observables(trained.hamiltonian).get("ln_z")
    if ln_z is not None:
        stats.update(
            ln_z_exact=ln_z,
            kl_nats=stats["F_q"] + ln_z,
            relative_error_F=(stats["F_q"] + ln_z) / abs(ln_z),
            z_ln_z_is=(stats["ln_z_is"] - ln_z) / stats["ln_z_is_err"],
        )
    stats["kl_nats_is"] = stats["F_q"] + stats["ln_z_is"]
    return stats


def coverage_by_bin(values, log_weights, edges) -> pd.DataFrame:
    """Per bin ``[edges[b], edges[b+1])`` of ``values`` (an observable of draws ``x_i ~ q``): ``q_fraction``,
    the importance estimate ``p_fraction`` with its standard error ``p_fraction_err``, their ratio
    ``p_over_q``, and ``log_weight_sd``, the spread of ``w = ln p~ - ln q`` in the bin (0 where q = p there).

    ``p_fraction_err`` is the delta method for ``mean(e 1_B) / mean(e)``: ``sd(e (1_B - p(B))) / (sqrt(n)
    mean(e))``, honest only where the weights have a finite variance (see ``k_hat``).
    """
    values, w = np.asarray(values, dtype=np.float64).ravel(), np.asarray(log_weights, dtype=np.float64).ravel()
    edges = np.asarray(edges, dtype=np.float64)
    require(
        edges.ndim == 1 and len(edges) >= 2 and np.all(np.diff(edges) > 0),
        "edges",
        edges.tolist(),
        "at least two increasing bin edges",
    )
    require(values.shape == w.shape, "log_weights", w.shape, f"one log weight per value, shape {values.shape}")
    e = np.exp(w - w.max())
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (values >= low) & (values < high)
        p = e[inside].sum() / e.sum()
        rows.append(
            {
                "low": low,
                "high": high,
                "q_fraction": inside.mean(),
                "p_fraction": p,
                "p_fraction_err": (e * (inside - p)).std(ddof=1) / (np.sqrt(len(e)) * e.mean()),
                "p_over_q": p / inside.mean() if inside.any() else np.inf,
                "log_weight_sd": w[inside].std(ddof=1) if inside.sum() > 1 else np.nan,
            }
        )
    return pd.DataFrame(rows)
