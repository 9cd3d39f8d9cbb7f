"""NeuralRG against the published numbers, generic NumPyro flows and plain NUTS, in one run.

1. Continuous Ising dual at T_c (reference sheet §1.2), L x L: train AutoNeuralRG by reverse KL (SVI),
   then F_q, KL = F_q + ln Z_c (exact, Kaufman), importance-sampled ln Z with its error bar, the ESS
   fraction and PSIS k-hat from ``--draws`` flow samples, and the independence sampler (MIS): acceptance
   and its spin <m^2> against the transfer-matrix value (z = (mean - exact)/MCSE).
   With ``--pretrain-steps``, a second AutoNeuralRG is first fitted by maximum likelihood (forward KL) to
   ``--pretrain-fields`` Ising-dual fields drawn through Swendsen-Wang spins (``ising_dual_fields``) and
   then trained by reverse KL as above; its ``train_s`` includes drawing the data.
2. The same SVI budget (steps x batch) spent on NumPyro's AutoIAFNormal and AutoBNAFNormal.
3. phi^4 (hopping, beta = 0.68), L = 16: NeuTra-NUTS in the trained flow's latent space against plain
   NUTS, ESS of |m| and m^2 per 1000 gradient evaluations and per second.  With ``--neutra-pretrain-steps``
   the flow is first fitted by maximum likelihood to ``--pretrain-fields`` cluster-sampler fields.

``--knots K`` gives every flow rational-quadratic spline couplings of K bins instead of affine ones, and
``--train-plain`` trains the flow q itself while q_sym is what is evaluated (``FlowSettings.train_symmetric``),
and ``--gradient path`` trains AutoNeuralRG's reverse KL with the path gradient (``SVISettings.gradient``).

    python benchmarks/neuralrg.py                        # the recorded run (see README)
    python benchmarks/neuralrg.py --sizes 8 --steps 500  # a quick look
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from numpyro.infer.autoguide import AutoBNAFNormal, AutoIAFNormal

from rgppl.diagnostics import compare
from rgppl.ensembles import ClusterSettings, ising_dual_fields, reference_ensemble
from rgppl.exact import exact_observables
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import BETA_C_PHI4_HOPPING, ising_dual, phi4_hopping
from rgppl.infer import MISSettings, SVISettings, free_energy, run_mis, run_neutra, train_flow
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.report import markdown_table

RESULTS = Path(__file__).parent / "results"
PUBLISHED_KL = {8: 0.39, 16: 1.88, 32: 8.8}  # best published (independent reproductions), reference sheet §3
TARGET_KL = {8: 0.1, 16: 0.5, 32: 3.0}
TARGET_MIS = {8: 0.6, 16: 0.4}
PRETRAINED = "AutoNeuralRG, data then energy"


def flow_settings(args) -> FlowSettings:
    return FlowSettings(width=args.width, couplings=args.couplings, circulant=True, knots=args.knots,
                        train_symmetric=not args.train_plain)


def ising_dual_rows(L: int, args) -> list[dict]:
    h = ising_dual(L)
    svi = SVISettings(steps=args.steps[args.sizes.index(L)], batch=args.batch, learning_rate=args.learning_rate,
                      checkpoint_every=args.steps[args.sizes.index(L)], gradient=args.gradient)
    neuralrg = flow_settings(args)
    pretrain_steps = args.pretrain_steps[args.sizes.index(L)] if args.pretrain_steps else 0
    guides = {} if args.skip_reverse_only else {"AutoNeuralRG": neuralrg}
    if pretrain_steps:
        guides[PRETRAINED] = neuralrg
    if not args.skip_baselines:
        guides["AutoIAFNormal"] = AutoIAFNormal(h.model, num_flows=2, hidden_dims=[h.n_sites, h.n_sites])
        guides["AutoBNAFNormal"] = AutoBNAFNormal(h.model, num_flows=1, hidden_factors=[8, 8])
    exact = exact_observables(h)
    rows = []
    for name, guide in guides.items():
        if name == PRETRAINED:
            start = time.perf_counter()
            data = ising_dual_fields(h, args.pretrain_fields, seed=args.seed)
            data_s = time.perf_counter() - start
            trained = train_flow(h, guide, replace(svi, pretrain_steps=pretrain_steps), data=data, seed=args.seed,
                                 progress=not args.quiet)
            train_s, steps = data_s + trained.training_time_s, f"{pretrain_steps} + {svi.steps}"
        else:
            baseline = not isinstance(guide, FlowSettings)  # a stock NumPyro flow: the total gradient only
            trained = train_flow(h, guide, replace(svi, gradient="total") if baseline else svi, seed=args.seed,
                                 progress=not args.quiet)
            train_s, steps = trained.training_time_s, svi.steps
        stats = free_energy(trained, draws=args.draws, seed=args.seed + 1)
        row = {"L": L, "guide": name, "params": trained.n_params, "steps": steps, "batch": svi.batch,
               "train_s": train_s, "F_q": stats["F_q"], "F_q_err": stats["F_q_err"],
               "ln_z_exact": stats["ln_z_exact"], "kl_nats": stats["kl_nats"],
               "published_best_kl": PUBLISHED_KL.get(L), "target_kl": TARGET_KL.get(L),
               "kl_published_over_ours": PUBLISHED_KL.get(L, float("nan")) / stats["kl_nats"],
               "rel_err_F": stats["relative_error_F"], "ln_z_is": stats["ln_z_is"], "ln_z_is_err": stats["ln_z_is_err"],
               "z_ln_z_is": stats["z_ln_z_is"], "ess_fraction": stats["ess_fraction"], "k_hat": stats["k_hat"]}
        mis = run_mis(trained, MISSettings(chains=4, samples=args.mis_samples), seed=args.seed, progress=not args.quiet)
        spin = compare({"mis": mis}, ["spin_m2"], exact).iloc[0]
        row.update(mis_acceptance=mis.attrs["acceptance"], target_mis=TARGET_MIS.get(L), mis_spin_m2=spin["mean"],
                   mis_spin_m2_mcse=spin["mcse"], spin_m2_exact=exact.get("spin_m2"), mis_spin_m2_z=spin.get("z"))
        rows.append(row)
        print(markdown_table(pd.DataFrame([row]).set_index(["L", "guide"])), flush=True)
    return rows


def neutra_rows(args) -> tuple[pd.DataFrame, dict]:
    L = args.neutra_size
    h = phi4_hopping(L, BETA_C_PHI4_HOPPING)
    svi = SVISettings(steps=args.neutra_steps, batch=args.batch, learning_rate=args.learning_rate,
                      checkpoint_every=args.neutra_steps, pretrain_steps=args.neutra_pretrain_steps, gradient=args.gradient)
    start, data = time.perf_counter(), None
    if svi.pretrain_steps:
        cluster = ClusterSettings(chains=16, warmup=200, samples=args.pretrain_fields // 16, thin=2)
        data = reference_ensemble(h, cluster, seed=args.seed, progress=not args.quiet).posterior["phi"].values
        data = data.reshape(-1, L, L)
    data_s = time.perf_counter() - start
    trained = train_flow(h, flow_settings(args), svi, data=data, seed=args.seed, progress=not args.quiet)
    nuts = NUTSSettings(chains=4, warmup=args.nuts_warmup, samples=args.nuts_samples)
    runs = {"neutra": run_neutra(trained, nuts, seed=args.seed, progress=not args.quiet),
            "nuts": run_nuts(h, nuts, seed=args.seed, progress=not args.quiet)}
    table = compare(runs, ["abs_m", "m2", "binder"])
    ratios = {f"{name}: ESS per 1k grad, neutra / nuts": table.loc[(name, "neutra"), "ess_per_1k_grad"]
              / table.loc[(name, "nuts"), "ess_per_1k_grad"] for name in ("abs_m", "m2")}
    ratios.update({f"{name}: ESS per s, neutra / nuts": table.loc[(name, "neutra"), "ess_per_s"]
                   / table.loc[(name, "nuts"), "ess_per_s"] for name in ("abs_m", "m2")})
    ratios["flow training (s)"] = trained.training_time_s
    ratios["cluster training fields (s)"] = data_s
    for label, dt in runs.items():
        ratios[f"{label}: gradient evaluations per draw"] = dt.attrs["gradient_evaluations"] / (
            dt.posterior.sizes["chain"] * dt.posterior.sizes["draw"])
    return table, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[8, 16], help="none: the NeuTra section alone")
    parser.add_argument("--steps", type=int, nargs="+", default=[3000, 2000], help="SVI steps per size")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--couplings", type=int, default=4)
    parser.add_argument("--knots", type=int, default=0, help="0: affine couplings; K: rational-quadratic splines of K bins")
    parser.add_argument("--train-plain", action="store_true",
                        help="train the flow q itself (half the cost) and report the symmetrised q_sym")
    parser.add_argument("--gradient", choices=["total", "path"], default="total",
                        help="reverse-KL gradient estimator of AutoNeuralRG (SVISettings.gradient); baselines: total")
    parser.add_argument("--draws", type=int, default=32768)
    parser.add_argument("--mis-samples", type=int, default=5000)
    parser.add_argument("--pretrain-steps", type=int, nargs="+", default=None,
                        help="forward-KL steps on Swendsen-Wang data per size, before the reverse-KL steps")
    parser.add_argument("--pretrain-fields", type=int, default=131072)
    parser.add_argument("--skip-reverse-only", action="store_true", help="no AutoNeuralRG trained by reverse KL alone")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--skip-neutra", action="store_true")
    parser.add_argument("--neutra-size", type=int, default=16)
    parser.add_argument("--neutra-steps", type=int, default=1500)
    parser.add_argument("--neutra-pretrain-steps", type=int, default=0,
                        help="forward-KL steps on cluster-sampler fields (--pretrain-fields) before the reverse-KL steps")
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "neuralrg"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [row for L in args.sizes for row in ising_dual_rows(L, args)]
    text, record = [], {"args": vars(args)}
    if rows:
        flows = pd.DataFrame(rows).set_index(["L", "guide"])
        text += ["Continuous Ising dual at T_c: flows trained by reverse KL (SVI, batch x steps as listed, "
                 "cosine-decayed Adam), after maximum likelihood on data where listed.", "", markdown_table(flows), ""]
        record["flows"] = json.loads(flows.reset_index().to_json(orient="records"))
    if not args.skip_neutra:
        neutra, ratios = neutra_rows(args)
        text += [f"NeuTra-NUTS vs NUTS on phi^4 (hopping, beta = {BETA_C_PHI4_HOPPING}), L = {args.neutra_size}, "
                 f"4 chains x {args.nuts_samples} draws after {args.nuts_warmup} warm-up:", "", markdown_table(neutra), "",
                 *[f"- {k}: {v:.4g}" for k, v in ratios.items()], ""]
        record.update(neutra=json.loads(neutra.reset_index().to_json(orient="records")), ratios=ratios)
    text.append(f"[total {time.perf_counter() - start:.0f} s]")
    print("\n".join(text))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(text) + "\n")
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
