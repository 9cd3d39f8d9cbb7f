"""Wavelet conditional RG against exact results, an independent reference ensemble, NUTS and the cluster sampler.

1. Free field (m^2 = 0.5, L = 16, exact independent training fields): the finest Haar conditional is in
   the radius-1 family, so the fitted parameters are compared with the exact ones (z = difference over
   the sandwich standard error); the generated fields' power spectrum is compared with the exact
   propagator mode by mode (z over the generated and training sampling errors).
2. phi^4 (hopping, beta = 0.68), each L: train on a cluster-sampler ensemble (seed 0), generate, and
   compare with an independent cluster ensemble (seed 1), in the data's own units: the radial power
   spectrum per bin, the standard deviation of the coarse field at every scale, <phi^2> and the Binder
   cumulant, each with the ratio and z = difference / combined standard error (reference MCSEs from
   ArviZ, autocorrelation included; generated fields are independent).
3. The microscopic energy E_0 = E_J + sum_j (Ebar_j - Ftilde_j) reconstructed from every fit (free energies
   by gradient matching), projected on neighbour couplings J_s and a site polynomial, beside the true
   Hamiltonian's; and the relative error of its gradient over 1000 training fields.
4. Cost per independent sample: independent |m| samples per second of the generator (fields over wall
   time, the fit's time shown apart) against the cluster sampler of the reference run and against NUTS
   from the archived critical-slowing benchmark (``benchmarks/results/archive/before-records/critical_slowing.json``).

    python benchmarks/wirg.py                     # the recorded run (see README)
    python benchmarks/wirg.py --ml-iterations 0 --warmup 300 --output wirg_score_matching  # no ML, shorter chains
    python benchmarks/wirg.py --sizes 16 --fields 1000 --train 1000  # a quick look
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from rgppl.diagnostics import compare_means, derived_quantities
from rgppl.ensembles import ClusterSettings, reference_ensemble
from rgppl.exact import free_field_propagator, free_field_spectrum, sample_gaussian_field
from rgppl.hamiltonians import BETA_C_PHI4_HOPPING, free_field, phi4_hopping
from rgppl.observables import momentum_power, power_spectrum
from rgppl.report import markdown_table
from rgppl.wirg import FitSettings, GeneratorSettings, ScaleAnsatz, fit_wirg, generate, pyramid, score_matching
from rgppl.wirg.fit import exact_quadratic_theta, score_matching_errors
from rgppl.wirg.free_energy import compare_with_hamiltonian

sys.path.insert(0, str(Path(__file__).parent))
from critical_slowing import measure  # noqa: E402  (the same ESS figures as the recorded NUTS/cluster run)

ARCHIVED_CRITICAL_SLOWING = Path(__file__).parent / "results" / "archive" / "before-records" / "critical_slowing.json"
RESULTS = Path("results") / "benchmarks"  # untracked: a recipe's record goes to benchmarks/results/ by benchmarks/record.py
FREE_M2, FREE_L = 0.5, 16


def free_field_rows(n_train: int, n_fields: int, seed: int) -> tuple[dict, list]:
    L = FREE_L
    spectrum = free_field_spectrum((L, L), FREE_M2)
    data = np.asarray(sample_gaussian_field(jax.random.PRNGKey(seed), spectrum, (n_train,)))
    unit = float(np.sqrt(np.mean(data.astype(np.float64) ** 2)))
    coarse, details = pyramid(data / unit, "haar", 1)
    ansatz = ScaleAnsatz(side=L // 2, radius=1, wavelet="haar")
    theta, report = score_matching(ansatz, coarse[1], details[0])
    errors = score_matching_errors(ansatz, theta, coarse[1], details[0])
    exact, residual = exact_quadratic_theta(ansatz, free_field((L, L), FREE_M2).energy, unit)
    z_theta = (theta - exact) / errors

    model = fit_wirg(data, FitSettings(radius=1, potentials=0), seed=seed, progress=False)
    energy = energy_rows(f"free field L = {L}", model, free_field((L, L), FREE_M2), data, powers=(2,))
    dt = generate(model, free_field((L, L), FREE_M2), GeneratorSettings(samples=n_fields), seed=seed + 1, progress=False)
    generated = np.asarray(momentum_power(dt.posterior.phi.values.reshape(-1, L, L)))
    observed = np.asarray(momentum_power(data))
    se = np.sqrt(generated.var(0) / len(generated) + observed.var(0) / len(observed))
    exact_power = free_field_propagator((L, L), FREE_M2)
    return {
        "finest parameters": ansatz.n_params,
        "exact-family residual": residual,
        "max |theta - exact| / |exact|max": float(np.max(np.abs(theta - exact)) / np.max(np.abs(exact))),
        "max |z| of theta": float(np.max(np.abs(z_theta))),
        "condition number": report["condition"],
        "max |P_gen / P_exact - 1| over modes": float(np.max(np.abs(generated.mean(0) / exact_power - 1))),
        "max |z| of P over modes": float(np.max(np.abs((generated.mean(0) - exact_power) / se))),
        "modes": L * L,
    }, energy


def energy_rows(label: str, model, hamiltonian, data, powers=(2, 4, 6)) -> list[dict]:
    """The recovered microscopic couplings beside the true ones, and the gradient error, as table rows."""
    found = compare_with_hamiltonian(model, hamiltonian, data[:1000], powers=powers)
    rows = [{"model": label, "term": row["term"], "recovered": row["recovered"], "true": row["true"],
             "difference": row["recovered"] - row["true"]} for row in found["couplings"]]
    return rows + [{"model": label, "term": "|grad E_0 - grad E| / |grad E|", "recovered": found["gradient_error"]}]


def per_field(values, chains: int) -> np.ndarray:
    values = np.asarray(values)
    return values.reshape(chains, -1, *values.shape[1:])


def compare(generated: np.ndarray, reference: np.ndarray, chains: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of per-field values (generated: independent; reference: ArviZ MCSE), their ratio and z."""
    found = compare_means(per_field(generated, 4), per_field(reference, chains))
    return found["mean"], found["ratio"], found["z"]


def ml_schedule(L: int, iterations: int, max_side: int) -> tuple:
    """Maximum-likelihood iterations per scale (finest conditional first, coarsest energy last): ``iterations`` on
    the scales whose conditioning field has side ``<= max_side``, none on the others."""
    levels = int(np.log2(L))
    sides = [L >> min(j + 1, levels) for j in range(levels + 1)]
    return tuple(iterations if side <= max_side else 0 for side in sides)


def phi4_rows(L: int, args, nuts_rows: dict) -> tuple[list, dict]:
    h = phi4_hopping((L, L), BETA_C_PHI4_HOPPING)
    cluster = ClusterSettings(chains=4, warmup=500, samples=args.train // 4, thin=args.thin, checkpoint_every=100)
    train = reference_ensemble(h, cluster, seed=0, progress=False)
    reference = reference_ensemble(h, cluster, seed=1, progress=False)
    data = train.posterior.phi.values.reshape(-1, L, L)
    ref = reference.posterior.phi.values.reshape(-1, L, L)

    start = time.perf_counter()
    model = fit_wirg(data, FitSettings(radius=args.radius, potentials=args.potentials, symmetric=True,
                                       ml_iterations=ml_schedule(L, args.ml_iterations, args.ml_max_side),
                                       ml_fields=args.ml_fields, ml_record_every=args.ml_record_every), progress=False)
    fit_time = time.perf_counter() - start
    energy = energy_rows(f"phi^4 L = {L}", model, h, data)
    settings = GeneratorSettings(samples=args.fields, warmup=args.warmup, steps=args.steps)
    dt = generate(model, h, settings, seed=2, progress=False)
    phi = dt.posterior.phi.values.reshape(-1, L, L)

    rows = []
    k, gen_p = power_spectrum(phi)
    _, ref_p = power_spectrum(ref)
    mean, ratio, z = compare(gen_p, ref_p, 4)
    for i, kk in enumerate(np.asarray(k)):
        rows.append({"L": L, "quantity": f"P(|k| = {kk:.2f})", "generated": mean[i], "ratio": ratio[i], "z": z[i]})
    gen_scales, _ = pyramid(phi, model.wavelet, model.levels)
    ref_scales, _ = pyramid(ref, model.wavelet, model.levels)
    for j, (g, r) in enumerate(zip(gen_scales, ref_scales)):
        side = g.shape[-1]
        mean, ratio, z = compare(np.mean(np.asarray(g) ** 2, axis=(1, 2)), np.mean(np.asarray(r) ** 2, axis=(1, 2)), 4)
        rows.append({"L": L, "quantity": f"std of phi_{j} ({side}x{side})", "generated": float(np.sqrt(mean)),
                     "ratio": float(np.sqrt(ratio)), "z": float(z)})
    mean, ratio, z = compare(np.mean(phi**2, axis=(1, 2)), np.mean(ref**2, axis=(1, 2)), 4)
    rows.append({"L": L, "quantity": "<phi^2>", "generated": float(mean), "ratio": float(ratio), "z": float(z)})
    gen_binder, ref_binder = derived_quantities(dt)["binder"], derived_quantities(reference)["binder"]
    rows.append({"L": L, "quantity": "Binder U", "generated": gen_binder["mean"],
                 "ratio": gen_binder["mean"] / ref_binder["mean"],
                 "z": (gen_binder["mean"] - ref_binder["mean"]) / np.hypot(gen_binder["mcse"], ref_binder["mcse"])})

    wirg = measure(dt, "wirg", L)
    cluster_row = measure(reference, "cluster", L)
    scales = json.loads(dt.attrs["scales"])
    cost = {
        "L": L, "fields": args.fields, "fit_s": fit_time, "generate_s": dt.attrs["sampling_time_s"],
        "wirg ESS/s |m|": wirg["ess_per_s_abs_m"], "cluster ESS/s |m|": cluster_row["ess_per_s_abs_m"],
        "nuts ESS/s |m| (recorded)": nuts_rows.get(L, np.nan),
        "max tau_energy (MALA steps)": max(r["tau_energy"] for r in scales),
        "min acceptance": min(r["acceptance"] for r in scales),
        "parameters": model.n_params,
        "max condition": max(s.report["condition"] for s in model.scales),
    }
    cost["wirg / cluster"] = cost["wirg ESS/s |m|"] / cost["cluster ESS/s |m|"]
    cost["wirg / nuts"] = cost["wirg ESS/s |m|"] / cost["nuts ESS/s |m| (recorded)"]
    return rows, cost, energy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--train", type=int, default=4000, help="training (and reference) fields")
    parser.add_argument("--thin", type=int, default=10, help="cluster sweeps between stored fields")
    parser.add_argument("--fields", type=int, default=4000, help="generated fields")
    parser.add_argument("--radius", type=int, default=2)
    parser.add_argument("--potentials", type=int, default=12)
    parser.add_argument("--ml-iterations", type=int, default=10)
    parser.add_argument("--ml-max-side", type=int, default=4,
                        help="maximum likelihood only on the scales with coarse side <= this (L / 2: every scale)")
    parser.add_argument("--ml-fields", type=int, default=8000, help="training coarse fields (chains) for maximum likelihood")
    parser.add_argument("--ml-record-every", type=int, default=4, help="record the ML chains' features every this many steps")
    parser.add_argument("--warmup", type=int, default=900)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="wirg", help="name of the result files in benchmarks/results/")
    args = parser.parse_args()
    start = time.perf_counter()

    free, energies = free_field_rows(args.train, args.fields, args.seed)
    print(f"free field done after {time.perf_counter() - start:.0f} s", flush=True)
    recorded = json.loads(ARCHIVED_CRITICAL_SLOWING.read_text())["rows"]
    nuts_rows = {r["L"]: r["ess_per_s_abs_m"] for r in recorded if r["sampler"] == "nuts"}
    rows, costs = [], []
    for L in args.sizes:
        r, c, e = phi4_rows(L, args, nuts_rows)
        rows += r
        costs.append(c)
        energies += e
        print(f"L = {L} done after {time.perf_counter() - start:.0f} s", flush=True)

    quality = pd.DataFrame(rows).set_index(["L", "quantity"])
    cost = pd.DataFrame(costs).set_index("L")
    spectrum = quality[quality.index.get_level_values("quantity").str.startswith("P(")]
    scale_std = quality[quality.index.get_level_values("quantity").str.startswith("std")]
    targets = pd.DataFrame({
        "max |P ratio - 1| (target 0.03)": spectrum.groupby(level="L")["ratio"].apply(lambda r: float(np.max(np.abs(r - 1)))),
        "max |std ratio - 1| (target 0.02)": scale_std.groupby(level="L")["ratio"].apply(lambda r: float(np.max(np.abs(r - 1)))),
        "|<phi^2> ratio - 1| (target 0.005)": quality.xs("<phi^2>", level="quantity")["ratio"].sub(1).abs(),
        "|z| Binder (target 2)": quality.xs("Binder U", level="quantity")["z"].abs(),
    })
    text = [
        f"Free field (m^2 = {FREE_M2}, L = {FREE_L}, {args.train} exact training fields, {args.fields} generated):",
        "",
        markdown_table(pd.Series(free, name="value").to_frame()),
        "",
        f"phi^4 (hopping, beta = {BETA_C_PHI4_HOPPING}): {args.train} training fields (cluster sampler, seed 0, one "
        f"every {args.thin} sweeps) against an independent reference of the same size (seed 1); {args.fields} generated "
        f"fields; Haar, radius {args.radius}, {args.potentials} sigmoid potentials per scale, Z2-symmetrised data, "
        f"{args.ml_iterations} ML iterations on the scales of coarse side <= {args.ml_max_side} with {args.ml_fields} chains (features every {args.ml_record_every} steps); MALA {args.warmup} warm-up + {args.steps} steps per scale.",
        "",
        markdown_table(targets),
        "",
        markdown_table(quality),
        "",
        "Microscopic energy reconstructed from the fitted scales and free energies, projected on "
        "E = -sum_x sum_s J_s phi_x phi_(x+s) + sum_x sum_p a_p phi_x^p (the true Hamiltonian projected the same way):",
        "",
        markdown_table(pd.DataFrame(energies).set_index(["model", "term"])),
        "",
        "Cost per independent sample (|m|; generated fields are independent draws):",
        "",
        markdown_table(cost),
        "",
        f"[total {time.perf_counter() - start:.0f} s]",
    ]
    print("\n".join(text))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.md").write_text("\n".join(text) + "\n")
    (RESULTS / f"{args.output}.json").write_text(json.dumps({
        "settings": vars(args), "free_field": free, "energy": energies, "quality": quality.reset_index().to_dict("records"),
        "cost": cost.reset_index().to_dict("records"),
    }, indent=1, default=float))


if __name__ == "__main__":
    main()
