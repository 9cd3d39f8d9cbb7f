"""Critical slowing down on phi^4 (hopping form, beta = 0.68): NUTS, the baseline every later sampler is
measured against, beside the Metropolis + Swendsen-Wang cluster sampler of record (rgppl.ensembles).

For each sampler and L, 4 chains on ``phi4_hopping(L, 0.68)``: the integrated autocorrelation time of
``|m|`` and ``m^2`` in draws, ``tau = draws / ESS`` (ESS of the mean, not rank-normalised, so that it is
the autocorrelation of the observable itself; a NUTS draw is one trajectory, a cluster draw one sweep),
for NUTS also in gradient evaluations, ``tau_grad = gradient evaluations / ESS``, and the ESS per
second of sampling (wall time, compilation of the sampling loop included).  Least-squares exponents
of the cost per independent sample, ``~ L^z``, use only rows whose R-hat is below 1.05 (others are
marked: their tau is a lower bound).  The last table is the ratio of the cluster sampler's ESS per
second to NUTS's at each L.

    python benchmarks/critical_slowing.py                                     # L = 8, 16, 32
    python benchmarks/critical_slowing.py --sizes 8 16 32 64 --samples 2000 6000 15000 20000 --cluster-samples 4000
    python benchmarks/critical_slowing.py --sizes 128 --samples 5000 --output critical_slowing_L128
"""

import argparse
import json
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from rgppl.diagnostics import derived_quantities, summary
from rgppl.ensembles import ClusterSettings, run_cluster
from rgppl.hamiltonians import BETA_C_PHI4_HOPPING, phi4_hopping
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.report import markdown_table

RESULTS = Path("results") / "benchmarks"  # untracked: a recipe's record goes to benchmarks/results/ by benchmarks/record.py
OBSERVABLES = ("abs_m", "m2")


def measure(dt, sampler: str, L: int) -> dict:
    """Autocorrelation times and efficiencies of ``|m|`` and ``m^2`` from a run's DataTree."""
    table = summary(dt, list(OBSERVABLES))
    ess_mean = az.ess(dt, var_names=list(OBSERVABLES), method="mean")
    draws = dt.posterior.sizes["chain"] * dt.posterior.sizes["draw"]
    grads = dt.attrs["gradient_evaluations"]
    row = {"sampler": sampler, "L": L, "N": L * L, "draws": draws, "grad_per_draw": grads / draws or np.nan}
    for name in OBSERVABLES:
        ess = float(ess_mean[name])
        row[f"tau_{name}_draws"] = draws / ess
        row[f"tau_{name}_grad"] = grads / ess if grads else np.nan
        row[f"ess_per_s_{name}"] = ess / dt.attrs["sampling_time_s"]
        row[f"r_hat_{name}"] = table.loc[name, "r_hat"]
    row["abs_m"] = table.loc["abs_m", "mean"]
    row["abs_m_mcse"] = table.loc["abs_m", "mcse_mean"]
    row["binder"] = derived_quantities(dt)["binder"]["mean"]
    return row


def exponent(L, cost) -> float:
    """Least-squares slope of ln(cost) against ln(L)."""
    return float(np.polyfit(np.log(np.asarray(L, float)), np.log(np.asarray(cost, float)), 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, nargs="+", default=[2000], help="NUTS draws per chain: one value, or one per size")
    parser.add_argument("--cluster-samples", type=int, default=2000, help="cluster-sampler sweeps per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="critical_slowing", help="name of the result files in benchmarks/results/")
    args = parser.parse_args()
    samples = args.samples * len(args.sizes) if len(args.samples) == 1 else args.samples
    if len(samples) != len(args.sizes):
        parser.error(f"--samples takes one value or one per size ({len(args.sizes)}), got {len(args.samples)}")
    start = time.perf_counter()
    rows = []
    for L, n in zip(args.sizes, samples, strict=True):
        model = phi4_hopping(L, BETA_C_PHI4_HOPPING)
        nuts = NUTSSettings(chains=args.chains, warmup=args.warmup, samples=n, checkpoint_every=n)
        rows.append(measure(run_nuts(model, nuts, seed=args.seed, progress=False), "nuts", L))
        cluster = ClusterSettings(chains=args.chains, warmup=args.warmup, samples=args.cluster_samples, checkpoint_every=200)
        rows.append(measure(run_cluster(model, cluster, seed=args.seed, progress=False), "cluster", L))
        print(f"L = {L}: done after {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows).set_index(["sampler", "L"])
    table["converged"] = np.where(table[[f"r_hat_{o}" for o in OBSERVABLES]].max(axis=1) < 1.05, "yes", "no (tau is a lower bound)")

    fits = {}
    for sampler, rows_of in table.groupby(level="sampler"):
        fitted = rows_of[rows_of["converged"] == "yes"].droplevel("sampler")
        if len(fitted) < 2:
            continue
        for name in OBSERVABLES:
            fits[f"{sampler}: z_wall_{name}"] = exponent(fitted.index, 1 / fitted[f"ess_per_s_{name}"])
            if sampler == "nuts":
                fits[f"{sampler}: z_grad_{name}"] = exponent(fitted.index, fitted[f"tau_{name}_grad"])
        fits[f"{sampler}: sizes fitted"] = list(map(int, fitted.index))

    shown = table[["N", "draws", "grad_per_draw", "tau_abs_m_draws", "tau_m2_draws", "tau_abs_m_grad", "tau_m2_grad",
                   "ess_per_s_abs_m", "ess_per_s_m2", "abs_m", "abs_m_mcse", "binder", "r_hat_abs_m", "converged"]]
    ratio = pd.DataFrame({
        f"ESS/s {name}: cluster / nuts": table.loc["cluster", f"ess_per_s_{name}"] / table.loc["nuts", f"ess_per_s_{name}"]
        for name in OBSERVABLES
    })
    ratio.index.name = "L"
    text = [
        f"phi^4 (hopping, beta = {BETA_C_PHI4_HOPPING}), {args.chains} chains, {args.warmup} warm-up steps (sweeps for "
        f"the cluster sampler), seed {args.seed}. tau in draws (NUTS trajectories or cluster sweeps) and, for NUTS, in "
        "gradient evaluations per independent sample.",
        "",
        markdown_table(shown),
        "",
        "Fitted exponents of the cost per independent sample, cost ~ L^z (converged sizes only): "
        + ", ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in fits.items()),
        "",
        "Cluster sampler against the NUTS baseline, independent samples per second:",
        "",
        markdown_table(ratio),
        "",
        f"[total {time.perf_counter() - start:.0f} s]",
    ]
    print("\n".join(text))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.md").write_text("\n".join(text) + "\n")
    (RESULTS / f"{args.output}.json").write_text(json.dumps(
        {"settings": {**vars(args), "samples": samples}, "rows": table.reset_index().to_dict(orient="records"),
         "fits": fits}, indent=2, default=str))


if __name__ == "__main__":
    main()
