"""ArviZ DataTrees for lattice samplers, their summaries, and side-by-side comparisons.

The contract every rgppl sampler (NUTS here; the flow and wavelet samplers later) follows, so that
:func:`compare` can put any runs of the same model side by side:

* group ``posterior``: the field ``phi`` with dims ``(chain, draw, x, y)`` and the scalar
  observables of :func:`rgppl.observables.scalar_observables` with dims ``(chain, draw)``;
* group ``sample_stats`` (optional): per-draw ``n_steps`` (gradient evaluations), ``diverging``, ...;
* root attributes: ``sampler`` (a label), ``sampling_time_s`` (wall time of the sampling phase),
  ``gradient_evaluations`` (total over chains in the sampling phase, 0 for gradient-free samplers),
  and ``hamiltonian`` (the JSON description of the model).

Derived ensemble quantities (Binder cumulant, susceptibility) are ratios of means; their Monte
Carlo standard errors come from the delta method: the MCSE of the mean of the linearised
per-draw influence values, so that autocorrelation is accounted for by ArviZ's ESS.
"""

import json

import arviz as az
import arviz_base as azb
import jax
import numpy as np
import pandas as pd
import xarray as xr

from rgppl.observables import scalar_observables

SUMMARY_COLUMNS = ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
_observables = jax.jit(scalar_observables)  # the Hamiltonian is a pytree: new couplings do not recompile


def make_datatree(hamiltonian, phi, *, sample_stats: dict | None = None, attrs: dict | None = None):
    """A DataTree for draws ``phi[chain, draw, Lx, Ly]`` of ``hamiltonian`` (or of no known one: ``None``) with
    its scalar observables."""
    phi = np.asarray(phi)
    if hamiltonian is not None:
        hamiltonian.lattice.check_field(phi)
    observables = _observables(hamiltonian, phi)
    posterior = {"phi": phi, **{k: np.asarray(v) for k, v in observables.items()}}
    groups = {"posterior": posterior}
    if sample_stats:
        groups["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    dt = azb.from_dict(groups, dims={"phi": ["x", "y"]})
    described = None if hamiltonian is None else hamiltonian.describe()
    dt.attrs.update({"hamiltonian": json.dumps(described), **(attrs or {})})
    return dt


def scalar_names(dt) -> list[str]:
    """Names of the scalar (per-draw) variables of the posterior group."""
    return [name for name, var in dt.posterior.data_vars.items() if var.dims == ("chain", "draw")]


def mean_with_error(values: np.ndarray) -> dict:
    """Mean, MCSE of the mean and bulk ESS of draws ``values[chain, draw, ...]`` (ArviZ, autocorrelation-aware).

    Extra trailing axes are kept: each entry gets its own mean, MCSE and ESS.
    """
    values = np.asarray(values)
    draws = xr.DataArray(values, dims=("chain", "draw", *[f"dim_{i}" for i in range(values.ndim - 2)]))
    return {
        "mean": draws.mean(("chain", "draw")).values,
        "mcse": draws.azstats.mcse().values,
        "ess_bulk": draws.azstats.ess().values,
    }


def compare_means(values: np.ndarray, reference: np.ndarray) -> dict:
    """Two runs' draws of the same quantity (``[chain, draw, ...]`` each): the mean of ``values``, the
    reference's, their ratio and ``z = difference / sqrt(mcse^2 + mcse_ref^2)`` (ArviZ MCSEs; both NaN where
    the two are identically zero, e.g. an empty tail)."""
    ours, theirs = mean_with_error(values), mean_with_error(reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "mean": ours["mean"],
            "reference": theirs["mean"],
            "ratio": ours["mean"] / theirs["mean"],
            "z": (ours["mean"] - theirs["mean"]) / np.hypot(ours["mcse"], theirs["mcse"]),
        }


def _scalar_error(values: np.ndarray) -> dict:
    stats = mean_with_error(values)
    return {"mcse": float(stats["mcse"]), "ess_bulk": float(stats["ess_bulk"])}


def derived_quantities(dt) -> dict:
    """Binder cumulant and susceptibility with delta-method MCSEs and the ESS of their influence values.

    ``U = 1 - <m^4>/(3 <m^2>^2)`` (from ``spin_m2``/``spin_m4`` when present, i.e. of the Ising spins,
    else of the field magnetisation) and ``chi = N (<m^2> - <|m|>^2)``.
    """
    post = dt.posterior
    n_sites = post.sizes["x"] * post.sizes["y"]
    out = {}
    for prefix in ("", "spin_"):
        m2_name, m4_name = f"{prefix}m2", f"{prefix}m4"
        if m2_name not in post:
            continue
        m2, m4 = post[m2_name].values, post[m4_name].values
        a, b = m4.mean(), m2.mean()
        influence = -m4 / (3 * b**2) + 2 * a * m2 / (3 * b**3)
        out[f"{prefix}binder"] = {"mean": float(1 - a / (3 * b**2)), **_scalar_error(influence)}
    m, m2 = post["abs_m"].values, post["m2"].values
    chi_influence = n_sites * (m2 - 2 * m.mean() * m)
    out["chi"] = {"mean": float(n_sites * (m2.mean() - m.mean() ** 2)), **_scalar_error(chi_influence)}
    return out


def cost_figures(dt) -> dict:
    """Wall time, gradient evaluations and draws of a run (from the DataTree's attributes)."""
    draws = dt.posterior.sizes["chain"] * dt.posterior.sizes["draw"]
    return {
        "sampler": dt.attrs.get("sampler", "?"),
        "draws": int(draws),
        "sampling_time_s": float(dt.attrs.get("sampling_time_s", np.nan)),
        "gradient_evaluations": float(dt.attrs.get("gradient_evaluations", np.nan)),
    }


def summary(dt, var_names: list[str] | None = None, exact: dict | None = None) -> pd.DataFrame:
    """Mean, sd, MCSE, bulk/tail ESS, R-hat and efficiency of scalar observables and derived quantities.

    ``var_names`` may name both (e.g. ``["m2", "binder"]``); by default all of them.  Efficiency is the
    bulk ESS per second of sampling and per 1000 gradient evaluations (NaN for gradient-free samplers).
    With ``exact`` (name -> value) two more columns: the exact value and ``z = (mean - exact)/mcse``.
    """
    scalars = scalar_names(dt)
    derived = derived_quantities(dt)
    var_names = var_names or scalars + list(derived)
    table = az.summary(dt, var_names=[n for n in var_names if n in scalars], kind="all", round_to="none")
    table = table[SUMMARY_COLUMNS].astype(float)
    for name in (n for n in var_names if n in derived):
        table.loc[name, ["mean", "mcse_mean", "ess_bulk"]] = [derived[name][k] for k in ("mean", "mcse", "ess_bulk")]
    cost = cost_figures(dt)
    table["ess_per_s"] = table["ess_bulk"] / cost["sampling_time_s"]
    table["ess_per_1k_grad"] = 1000 * table["ess_bulk"] / (cost["gradient_evaluations"] or np.nan)
    if exact:
        table["exact"] = pd.Series(exact, dtype=float)
        table["z"] = (table["mean"] - table["exact"]) / table["mcse_mean"]
    return table.loc[var_names]


def compare(runs: dict, var_names: list[str] | None = None, exact: dict | None = None) -> pd.DataFrame:
    """Runs of the same model side by side: one row per (observable, run).

    Columns: mean, MCSE, bulk and tail ESS, ESS per second, ESS per 1000 gradient evaluations, R-hat and,
    where ``exact`` has the observable, the exact value and the z-score ``(mean - exact)/MCSE``.
    """
    tables = [
        summary(dt, var_names, exact).drop(columns=["sd"]).rename(columns={"mcse_mean": "mcse"}).assign(run=label)
        for label, dt in runs.items()
    ]
    table = pd.concat(tables).rename_axis("observable").set_index("run", append=True)
    return table.sort_index(level=0, sort_remaining=False)
