"""Critical slowing down of NUTS on phi^4 (hopping form, beta = 0.68): the baseline every later sampler
is measured against.

For each L: NUTS (NumPyro, diagonal mass matrix, 4 vectorised chains) on ``phi4_hopping(L, 0.68)``;
the integrated autocorrelation time of ``|m|`` and ``m^2`` in draws, ``tau = draws / ESS`` (ESS of the
mean, not rank-normalised, so that it is the autocorrelation of the observable itself), and in
gradient evaluations, ``tau_grad = gradient evaluations / ESS`` (the cost of one effectively
independent sample), ESS per second of sampling, and least-squares exponents of
``tau_grad ~ L^z`` and of the wall time per independent sample ``~ L^z_wall``.  Rows whose R-hat
exceeds 1.05 are marked (their tau is a lower bound) and left out of the fits.

    python benchmarks/critical_slowing.py                                     # L = 8, 16, 32
    python benchmarks/critical_slowing.py --sizes 8 16 32 64 --samples 2000 6000 15000 20000
"""

import argparse
import json
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from rgppl.diagnostics import derived_quantities, summary
from rgppl.hamiltonians import BETA_C_PHI4_HOPPING, phi4_hopping
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.report import markdown_table

RESULTS = Path(__file__).parent / "results"


def measure(L: int, settings: NUTSSettings, seed: int) -> dict:
    dt = run_nuts(phi4_hopping(L, BETA_C_PHI4_HOPPING), settings, seed=seed, progress=False)
    table = summary(dt, ["abs_m", "m2"])
    ess_mean = az.ess(dt, var_names=["abs_m", "m2"], method="mean")
    draws = settings.chains * settings.samples
    grads = dt.attrs["gradient_evaluations"]
    seconds = dt.attrs["sampling_time_s"]
    row = {"L": L, "N": L * L, "draws": draws, "grad_per_draw": grads / draws}
    for name in ("abs_m", "m2"):
        ess = float(ess_mean[name])
        row[f"tau_{name}_draws"] = draws / ess
        row[f"tau_{name}_grad"] = grads / ess
        row[f"ess_per_s_{name}"] = ess / seconds
        row[f"r_hat_{name}"] = table.loc[name, "r_hat"]
    row["abs_m"] = table.loc["abs_m", "mean"]
    row["binder"] = derived_quantities(dt)["binder"]["mean"]
    row["sampling_s"] = seconds
    row["warmup_s"] = dt.attrs["warmup_time_s"]
    return row


def exponent(L, cost) -> float:
    """Least-squares slope of ln(cost) against ln(L)."""
    return float(np.polyfit(np.log(L), np.log(cost), 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, nargs="+", default=[2000], help="draws per chain: one value, or one per size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samples = args.samples * len(args.sizes) if len(args.samples) == 1 else args.samples
    if len(samples) != len(args.sizes):
        parser.error(f"--samples takes one value or one per size ({len(args.sizes)}), got {len(args.samples)}")
    start = time.perf_counter()
    rows = []
    for L, n in zip(args.sizes, samples, strict=True):
        settings = NUTSSettings(chains=args.chains, warmup=args.warmup, samples=n, checkpoint_every=n)
        rows.append(measure(L, settings, args.seed))
        print(f"L = {L}: done after {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows).set_index("L")
    table["cost_ratio_vs_smallest"] = table["tau_abs_m_grad"] / table["tau_abs_m_grad"].iloc[0]
    table["converged"] = np.where(table[["r_hat_abs_m", "r_hat_m2"]].max(axis=1) < 1.05, "yes", "no (tau is a lower bound)")
    fitted = table[table["converged"] == "yes"]
    fits = {
        "z_grad_abs_m": exponent(fitted.index, fitted["tau_abs_m_grad"]),
        "z_grad_m2": exponent(fitted.index, fitted["tau_m2_grad"]),
        "z_wall_abs_m": exponent(fitted.index, 1 / fitted["ess_per_s_abs_m"]),
        "z_wall_m2": exponent(fitted.index, 1 / fitted["ess_per_s_m2"]),
    }
    shown = table[["N", "draws", "grad_per_draw", "tau_abs_m_draws", "tau_m2_draws", "tau_abs_m_grad", "tau_m2_grad",
                   "ess_per_s_abs_m", "ess_per_s_m2", "cost_ratio_vs_smallest", "abs_m", "binder", "r_hat_abs_m",
                   "converged"]]
    text = [
        f"NUTS on phi^4 (hopping, beta = {BETA_C_PHI4_HOPPING}), {args.chains} chains after {args.warmup} warm-up, "
        f"seed {args.seed}; tau in draws and in gradient evaluations per independent sample.",
        "",
        markdown_table(shown),
        "",
        f"Fitted exponents (least squares over the converged sizes L = {list(fitted.index)}): "
        + ", ".join(f"{k} = {v:.2f}" for k, v in fits.items())
        + f"  [total {time.perf_counter() - start:.0f} s]",
    ]
    print("\n".join(text))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "critical_slowing.md").write_text("\n".join(text) + "\n")
    (RESULTS / "critical_slowing.json").write_text(
        json.dumps({"settings": {**vars(args), "samples": samples}, "rows": table.reset_index().to_dict(orient="records"), "fits": fits}, indent=2)
    )


if __name__ == "__main__":
    main()
