"""NeuralRG against the published numbers, generic NumPyro flows and plain NUTS, in one run.

1. Continuous Ising dual at T_c (reference sheet §1.2), each L of ``--sizes`` in turn.  AutoNeuralRG is
   fitted by maximum likelihood (forward KL, ``--pretrain-steps``) to ``--pretrain-fields`` fields drawn
   exactly through Swendsen-Wang spins (``ising_dual_fields``), then trained by reverse KL (``--steps``,
   SVI with the ``--gradient`` estimator).  With ``--grow`` every size after the first starts from the
   flow of the size before, grown to it (``rgppl.infer.grow``), and its training time includes that
   flow's: each row's ``train_s`` is all the training its flow has had, on every lattice, with its data.
   Then F_q, KL = F_q + ln Z_c (exact, Kaufman), importance-sampled ln Z with its error bar, the ESS
   fraction and PSIS k-hat from ``--draws`` flow samples, and the independence sampler (MIS): acceptance
   and its spin <m^2> against the transfer-matrix value where it is known (z = (mean - exact)/MCSE).
2. At the sizes ``--baselines``: NumPyro's AutoIAFNormal and AutoBNAFNormal trained by reverse KL with
   the same SVI budget, the number of steps x batch AutoNeuralRG had in all (on every lattice).
3. phi^4 (hopping, beta = 0.68), L = ``--neutra-size``: NeuTra-NUTS in the latent space of a flow trained
   by maximum likelihood on cluster-sampler fields and then by reverse KL (``--neutra-objective mixed``:
   ``--neutra-reverse-weight`` w times the reverse KL plus 1 - w times the same fields' forward KL), against
   plain NUTS at each target acceptance of ``--nuts-target-accept`` (rows ``nuts_<target>``): ESS of |m| and m^2
   per 1000 gradient evaluations and per second, NeuTra's ratio to the best plain run, and each run's z-score
   against the cluster sampler's ensemble (``z_cluster``, a check of bias that ESS alone cannot give),
   with each run's fraction of draws below |m| = ``SMALL_M`` (the near-disordered fields a mode-seeking
   flow gives up first) and its z against the cluster ensemble's fraction; then the flow's coverage of p
   by bins of |m| from ``--draws`` draws of q (``coverage_by_bin``: q's fraction, p's by importance weights
   and by the cluster ensemble, the samplers' fractions, the mean energy and lowest-mode amplitude of q's
   fields and the cluster's),
   with q's ESS fraction and PSIS k-hat from the same draws.
   The defaults are the README's headline recipe: the Ising recipe's flow (kernel 3, path gradient)
   folded onto m > 0 by the Gaussian softplus (``--neutra-fold``, ``FlowSettings.fold``: unfolded, q
   covers both signs of the magnetisation and NUTS through its map took over 100 gradients per draw),
   500 maximum-likelihood steps, 1100 mixed steps at w = 0.35 (1545 s alone on this machine, within the
   30-minute budget; 300 and 950 take about 1150 s) on the cluster fields with those below |m| =
   ``SMALL_M`` repeated ``--neutra-oversample`` = 5 times (``oversampled``; with them once, q held a
   tenth of p's mass below |m| = 0.1 and chains that got there stayed), 4000 NeuTra draws per chain at
   target acceptance 0.65 (``--neutra-target-accept``; a draw takes 31 gradients against 56 at NumPyro's
   default 0.8 for the same ESS per draw; at 0.5 and below the longer steps skip the near-disordered
   fields and |m| comes out biased high).  Plain NUTS runs
   ``--nuts-baseline-samples`` draws per chain, enough for its R-hat of |m| to fall below 1.01: its
   magnetisation mixes so slowly that at 1000 draws ESS per gradient comes out twice too high.
   With ``--checkpoints DIR`` the flow and all chains are kept there (``.npz``) and an interrupted or
   finished run is continued from them: a larger ``--nuts-samples`` extends the same NeuTra chains.

``--steps``, ``--pretrain-steps``, ``--batch`` and ``--learning-rate`` take one value, or one per size.

    python benchmarks/neuralrg.py                          # the recorded run (see README)
    python benchmarks/neuralrg.py --sizes                  # its NeuTra section alone, 4000 NeuTra draws per chain
    python benchmarks/neuralrg.py --sizes --nuts-samples 16000 --checkpoints DIR  # the README's headline
    python benchmarks/neuralrg.py --sizes 8 --steps 500 --pretrain-steps 200 --baselines --skip-neutra  # a quick look
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from numpyro.infer.autoguide import AutoBNAFNormal, AutoIAFNormal

from rgppl.diagnostics import compare, compare_means
from rgppl.ensembles import ClusterSettings, ising_dual_fields, reference_ensemble
from rgppl.exact import exact_observables
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import BETA_C_PHI4_HOPPING, ising_dual, phi4_hopping
from rgppl.infer import (MISSettings, SVISettings, coverage_by_bin, free_energy, grow, importance_statistics, run_mis,
                         run_neutra, train_flow)
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.observables import momentum_power
from rgppl.report import markdown_table

RESULTS = Path("results") / "benchmarks"  # untracked: a recipe's record goes to benchmarks/results/ by benchmarks/record.py
PUBLISHED_KL = {8: 0.39, 16: 1.88, 32: 8.8}  # best published (independent reproductions), reference sheet §3
TARGET_KL = {8: 0.1, 16: 0.5, 32: 3.0}
TARGET_MIS = {8: 0.6, 16: 0.4}
SMALL_M = 0.2  # |m| below which the NeuTra tail check counts draws
ABS_M_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, np.inf)  # the NeuTra flow's coverage table
PER_SIZE = ("steps", "pretrain_steps", "batch", "learning_rate")


def flow_settings(args, kernel: int, fold: bool = False) -> FlowSettings:
    return FlowSettings(width=args.width, couplings=args.couplings, kernel=kernel, circulant=True, knots=args.knots,
                        fold=fold)


def svi_settings(args, index: int) -> SVISettings:
    """The SVI settings of the ``index``-th size (per-size arguments broadcast)."""
    value = lambda name: getattr(args, name)[index] if len(getattr(args, name)) > 1 else getattr(args, name)[0]
    steps = value("steps")
    return SVISettings(steps=steps, pretrain_steps=value("pretrain_steps"), batch=value("batch"),
                       learning_rate=value("learning_rate"), gradient=args.gradient, checkpoint_every=steps,
                       train_q_sym=not args.train_plain)


def evaluate(trained, L: int, args) -> dict:
    """The free-energy and MIS columns of one trained guide."""
    h = trained.hamiltonian
    stats = free_energy(trained, samples=args.draws, seed=args.seed + 1)
    exact = exact_observables(h)
    mis = run_mis(trained, MISSettings(chains=4, samples=args.mis_samples), seed=args.seed, progress=not args.quiet)
    spin = compare({"mis": mis}, ["spin_m2"], exact).iloc[0]
    return {"params": trained.n_params, "train_s": trained.training_time_s, "F_q": stats["F_q"], "F_q_err": stats["F_q_err"],
            "ln_z_exact": stats["ln_z_exact"], "kl_nats": stats["kl_nats"], "published_best_kl": PUBLISHED_KL.get(L),
            "target_kl": TARGET_KL.get(L), "kl_published_over_ours": PUBLISHED_KL.get(L, float("nan")) / stats["kl_nats"],
            "rel_err_F": stats["relative_error_F"], "ln_z_is": stats["ln_z_is"], "ln_z_is_err": stats["ln_z_is_err"],
            "z_ln_z_is": stats["z_ln_z_is"], "ess_fraction": stats["ess_fraction"], "k_hat": stats["k_hat"],
            "mis_acceptance": mis.attrs["acceptance"], "target_mis": TARGET_MIS.get(L), "mis_spin_m2": spin["mean"],
            "mis_spin_m2_mcse": spin["mcse"], "spin_m2_exact": exact.get("spin_m2"), "mis_spin_m2_z": spin.get("z")}


def ising_dual_rows(args) -> list[dict]:
    rows, previous, budget, history = [], None, 0, []
    for index, L in enumerate(args.sizes):
        h, svi = ising_dual(L), svi_settings(args, index)
        start, data = time.perf_counter(), None
        if svi.pretrain_steps:
            data = ising_dual_fields(h, args.pretrain_fields, seed=args.seed)
        data_s = time.perf_counter() - start
        init = grow(previous, h) if args.grow and previous is not None else None
        if init is None:
            budget, history = 0, []
        trained = train_flow(h, flow_settings(args, args.kernel), svi, data=data, init=init, seed=args.seed,
                             progress=not args.quiet)
        trained.training_time_s += data_s
        budget += svi.pretrain_steps + svi.steps
        history.append(f"{L}: {svi.pretrain_steps} ML + {svi.steps}" if svi.pretrain_steps else f"{L}: {svi.steps}")
        row = {"L": L, "guide": "AutoNeuralRG", "steps": "; ".join(history), "batch": svi.batch, **evaluate(trained, L, args)}
        rows.append(row)
        print(markdown_table(pd.DataFrame([row]).set_index(["L", "guide"])), flush=True)
        previous = trained
        if L in args.baselines:
            for name, guide in (("AutoIAFNormal", AutoIAFNormal(h.model, num_flows=2, hidden_dims=[h.n_sites, h.n_sites])),
                                ("AutoBNAFNormal", AutoBNAFNormal(h.model, num_flows=1, hidden_factors=[8, 8]))):
                same = replace(svi, steps=budget, pretrain_steps=0, gradient="total", checkpoint_every=budget)
                baseline = train_flow(h, guide, same, seed=args.seed, progress=not args.quiet)
                row = {"L": L, "guide": name, "steps": str(budget), "batch": svi.batch, **evaluate(baseline, L, args)}
                rows.append(row)
                print(markdown_table(pd.DataFrame([row]).set_index(["L", "guide"])), flush=True)
    return rows


def neutra_rows(args) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    L = args.neutra_size
    h = phi4_hopping(L, BETA_C_PHI4_HOPPING)
    svi = SVISettings(steps=args.neutra_steps, batch=args.batch[0], learning_rate=args.learning_rate[0],
                      checkpoint_every=args.neutra_steps, pretrain_steps=args.neutra_pretrain_steps,
                      gradient=args.neutra_gradient, objective=args.neutra_objective,
                      reverse_weight=args.neutra_reverse_weight, train_q_sym=args.neutra_fold or not args.train_plain)
    start = time.perf_counter()
    cluster = ClusterSettings(chains=16, warmup=200, samples=args.pretrain_fields // 16, thin=2)
    reference = reference_ensemble(h, cluster, seed=args.seed, progress=not args.quiet).posterior
    data = oversampled(reference["phi"].values.reshape(-1, L, L), args.neutra_oversample) if svi.trains_on_data else None
    data_s = time.perf_counter() - start
    kept = Path(args.checkpoints) if args.checkpoints else None
    if kept:
        kept.mkdir(parents=True, exist_ok=True)

    def checkpoint(name: str) -> Path | None:
        return kept / f"{name}.npz" if kept else None

    keep = {"resume": kept is not None, "progress": not args.quiet}
    trained = train_flow(h, flow_settings(args, args.neutra_kernel, args.neutra_fold), svi, data=data, seed=args.seed,
                         checkpoint=checkpoint("neutra_flow"), **keep)
    nuts = NUTSSettings(chains=4, warmup=args.nuts_warmup, samples=args.nuts_samples, target_accept=args.neutra_target_accept)
    runs = {"neutra": run_neutra(trained, nuts, seed=args.seed, checkpoint=checkpoint("neutra_chains"), **keep)}
    for accept in args.nuts_target_accept:
        baseline = replace(nuts, samples=args.nuts_baseline_samples, target_accept=accept,
                           checkpoint_every=min(2000, args.nuts_baseline_samples))
        runs[f"nuts_{accept:g}"] = run_nuts(h, baseline, seed=args.seed, checkpoint=checkpoint(f"nuts_chains_{accept:g}"),
                                            **keep)
    table = compare(runs, ["abs_m", "m2", "binder"])
    for name in ("abs_m", "m2"):
        for label, dt in runs.items():
            table.loc[(name, label), "z_cluster"] = compare_means(dt.posterior[name].values, reference[name].values)["z"]
    ratios = {}
    for measure in ("ess_per_1k_grad", "ess_per_s"):
        for name in ("abs_m", "m2"):
            plain = table.loc[name].drop("neutra")[measure]
            ratios[f"{name}: {measure}, neutra / best plain NUTS ({plain.idxmax()})"] = (
                table.loc[(name, "neutra"), measure] / plain.max())
    best = table.loc["abs_m"].drop("neutra")["ess_per_1k_grad"].idxmax()
    ratios.update({f"cluster reference {name}": float(reference[name].mean()) for name in ("abs_m", "m2")})
    cluster_small = reference["abs_m"].values < SMALL_M
    ratios[f"cluster: fraction below abs m = {SMALL_M}"] = float(cluster_small.mean())
    for label, dt in runs.items():
        tail = compare_means(dt.posterior["abs_m"].values < SMALL_M, cluster_small)
        ratios[f"{label}: fraction below abs m = {SMALL_M}"] = float(tail["mean"])
        ratios[f"{label}: fraction below abs m = {SMALL_M}, z vs cluster"] = float(tail["z"])
    ratios["flow training (s)"] = trained.training_time_s
    ratios["cluster training fields (s)"] = data_s
    ratios["flow ESS fraction at the end of training (its monitor's few draws)"] = trained.monitor[-1]["ess_fraction"]
    coverage, quality = flow_coverage(trained, reference, {label: runs[label] for label in ("neutra", best)}, args)
    ratios[f"flow ESS fraction ({args.draws} draws)"] = quality["ess_fraction"]
    ratios[f"flow PSIS k-hat ({args.draws} draws)"] = quality["k_hat"]
    for label, dt in runs.items():
        ratios[f"{label}: gradient evaluations per draw"] = dt.attrs["gradient_evaluations"] / (
            dt.posterior.sizes["chain"] * dt.posterior.sizes["draw"])
    return table, coverage, ratios


def oversampled(fields, factor: int):
    """The training fields with each one below ``|m| = SMALL_M`` repeated ``factor`` times.

    The NeuTra flow is a preconditioner, not an estimator: NUTS in its latent space is exact for any flow.  What
    slows it is where q holds less than p, the near-disordered fields, whose pulled-back density is a lump in the
    Gaussian's tail that chains enter late and leave late.  Weighting those fields up in the data term makes q
    cover them (p/q < 1 there: the pulled-back density is lighter than the Gaussian, nothing to get stuck in).
    """
    small = np.abs(fields.mean(axis=(-2, -1))) < SMALL_M
    return np.concatenate([fields, *[fields[small]] * (factor - 1)])


def lowest_mode_amplitude(fields):
    """``sqrt(sum_{|k| = 2 pi / L} |phi_k|^2 / N)`` per field (unitary transform): 0.634 for two flat stripes of
    phi = +-0.7 halving an L = 16 torus, 0 for a uniform field."""
    power = np.asarray(momentum_power(fields))
    lowest = power[..., 1, 0] + power[..., -1, 0] + power[..., 0, 1] + power[..., 0, -1]
    return np.sqrt(lowest / (fields.shape[-2] * fields.shape[-1]))


def mean_by_bin(values, abs_m) -> list[float]:
    """The mean of ``values`` in each bin of ``ABS_M_BINS`` by ``abs_m`` (NaN where a bin is empty)."""
    index = np.digitize(abs_m, ABS_M_BINS) - 1
    return [values[index == b].mean() if np.any(index == b) else np.nan for b in range(len(ABS_M_BINS) - 1)]


def flow_coverage(trained, reference, runs: dict, args) -> tuple[pd.DataFrame, dict]:
    """Where the NeuTra flow q covers p, by bins of |m| (``ABS_M_BINS``), from ``--draws`` draws of q: q's
    fraction, p's by importance weights (``coverage_by_bin``) and by the cluster ensemble, each sampler's
    fraction, the spread of ln w, and per bin the mean energy and lowest-mode amplitude of q's fields against
    the cluster ensemble's (p's near-disordered fields are two domains: a flow can put mass there with the
    wrong walls)."""
    h = trained.hamiltonian
    x, log_q, w = trained.draw(jax.random.PRNGKey(args.seed + 1), args.draws)
    q_abs_m = np.abs(x.mean(axis=(-2, -1)))
    table = coverage_by_bin(q_abs_m, w, ABS_M_BINS)
    cluster_abs_m = np.ravel(reference["abs_m"].values)
    bins = lambda values: np.histogram(np.ravel(values), ABS_M_BINS)[0] / np.size(values)
    table["p_cluster"] = bins(cluster_abs_m)
    for label, dt in runs.items():
        table[f"{label}_fraction"] = bins(dt.posterior["abs_m"].values)
    fields = reference["phi"].values.reshape(-1, *h.lattice.shape)
    cluster_energy = np.concatenate([np.asarray(h.energy(chunk)) for chunk in np.array_split(fields, 32)])
    table["energy_q"] = mean_by_bin(-(w + log_q), q_abs_m)
    table["energy_cluster"] = mean_by_bin(cluster_energy, cluster_abs_m)
    table["lowest_modes_q"] = mean_by_bin(lowest_mode_amplitude(x), q_abs_m)
    table["lowest_modes_cluster"] = mean_by_bin(lowest_mode_amplitude(fields), cluster_abs_m)
    table.insert(0, "abs_m", [f"{low:g}-{high:g}" for low, high in zip(table.pop("low"), table.pop("high"))])
    return table.set_index("abs_m"), importance_statistics(w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[8, 16, 32], help="none: the NeuTra section alone")
    parser.add_argument("--steps", type=int, nargs="+", default=[2000, 600, 250], help="reverse-KL steps (per size)")
    parser.add_argument("--pretrain-steps", type=int, nargs="+", default=[1000, 0, 0],
                        help="maximum-likelihood steps on Swendsen-Wang fields before the reverse KL (per size)")
    parser.add_argument("--batch", type=int, nargs="+", default=[256])
    parser.add_argument("--learning-rate", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--grow", action=argparse.BooleanOptionalAction, default=True,
                        help="start each size from the previous size's flow, grown to it")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--couplings", type=int, default=8)
    parser.add_argument("--kernel", type=int, default=3, help="blocks the couplings' first layer reads: 1 (Li & Wang), 3, 5")
    parser.add_argument("--knots", type=int, default=8, help="0: affine couplings; K: rational-quadratic splines of K bins")
    parser.add_argument("--train-plain", action=argparse.BooleanOptionalAction, default=True,
                        help="train the flow q itself (half the cost) and report the symmetrised q_sym")
    parser.add_argument("--gradient", choices=["total", "path"], default="path",
                        help="reverse-KL gradient estimator of AutoNeuralRG (SVISettings.gradient); baselines: total")
    parser.add_argument("--draws", type=int, default=32768)
    parser.add_argument("--mis-samples", type=int, default=5000)
    parser.add_argument("--pretrain-fields", type=int, default=65536)
    parser.add_argument("--baselines", type=int, nargs="*", default=[8, 16], help="sizes at which to train the generic flows")
    parser.add_argument("--skip-neutra", action="store_true")
    parser.add_argument("--neutra-size", type=int, default=16)
    parser.add_argument("--neutra-steps", type=int, default=1100)
    parser.add_argument("--neutra-pretrain-steps", type=int, default=500,
                        help="maximum-likelihood steps on cluster-sampler fields (--pretrain-fields) before the reverse KL")
    parser.add_argument("--neutra-kernel", type=int, default=3, help="--kernel of the NeuTra flow")
    parser.add_argument("--neutra-gradient", choices=["total", "path"], default="path", help="--gradient of the NeuTra flow")
    parser.add_argument("--neutra-fold", action=argparse.BooleanOptionalAction, default=True,
                        help="fold the NeuTra flow onto m > 0 (FlowSettings.fold)")
    parser.add_argument("--neutra-objective", choices=["reverse", "mixed"], default="mixed",
                        help="the NeuTra flow's objective after maximum likelihood (SVISettings.objective); mixed keeps the "
                             "cluster fields' forward KL beside the reverse KL, so q keeps covering small |m|")
    parser.add_argument("--neutra-oversample", type=int, default=5,
                        help="repeat the training fields below |m| = SMALL_M this many times (see oversampled)")
    parser.add_argument("--neutra-reverse-weight", type=float, default=0.35,
                        help="the reverse KL's weight w in the mixed objective (SVISettings.reverse_weight)")
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-samples", type=int, default=4000, help="NeuTra-NUTS draws per chain")
    parser.add_argument("--neutra-target-accept", type=float, default=0.65,
                        help="NeuTra-NUTS's target acceptance probability (NUTSSettings.target_accept)")
    parser.add_argument("--nuts-target-accept", type=float, nargs="+", default=[0.4, 0.5, 0.6, 0.65, 0.7, 0.8],
                        help="plain NUTS runs at each; the ratios are against the best")
    parser.add_argument("--nuts-baseline-samples", type=int, default=16000,
                        help="plain NUTS draws per chain: enough for R-hat < 1.01 (at 1000 its ESS is twice too high)")
    parser.add_argument("--checkpoints", help="a directory to keep the NeuTra section's flow and chains in, and resume from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "neuralrg"))
    args = parser.parse_args()
    if not args.sizes and args.skip_neutra:
        parser.error("nothing to run: --sizes is empty and --skip-neutra is set")
    for name in PER_SIZE:
        values = getattr(args, name)
        if args.sizes and len(values) not in (1, len(args.sizes)):
            parser.error(f"--{name.replace('_', '-')} takes one value or one per size ({len(args.sizes)}), not {len(values)}")
    start = time.perf_counter()
    rows = ising_dual_rows(args) if args.sizes else []
    text, record = [], {"args": vars(args)}
    if rows:
        flows = pd.DataFrame(rows).set_index(["L", "guide"])
        how = "each size grown from the one before; " if args.grow else ""
        text += [f"Continuous Ising dual at T_c: AutoNeuralRG by maximum likelihood on Swendsen-Wang fields, then reverse "
                 f"KL (SVI, cosine-decayed Adam), {how}the generic flows by reverse KL with the same steps x batch. "
                 "steps: per lattice; train_s: all of the flow's training, on every lattice, with its data.", "",
                 markdown_table(flows), ""]
        record["flows"] = json.loads(flows.reset_index().to_json(orient="records"))
    if not args.skip_neutra:
        neutra, coverage, ratios = neutra_rows(args)
        text += [f"NeuTra-NUTS vs NUTS on phi^4 (hopping, beta = {BETA_C_PHI4_HOPPING}), L = {args.neutra_size}, "
                 f"4 chains after {args.nuts_warmup} warm-up, NeuTra {args.nuts_samples} draws each at target acceptance "
                 f"{args.neutra_target_accept:g}, plain NUTS (nuts_<target acceptance>) {args.nuts_baseline_samples}:", "",
                 markdown_table(neutra), "",
                 *[f"- {k}: {v:.4g}" for k, v in ratios.items()], "",
                 f"The NeuTra flow's coverage of p by |m| ({args.draws} draws of q; p_fraction by importance weights, "
                 "p_cluster from the cluster ensemble; mean energy and lowest-mode amplitude of q's fields and the cluster "
                 "ensemble's):", "",
                 markdown_table(coverage), ""]
        record.update(neutra=json.loads(neutra.reset_index().to_json(orient="records")), ratios=ratios,
                      coverage=json.loads(coverage.reset_index().to_json(orient="records")))
    text.append(f"[total {time.perf_counter() - start:.0f} s]")
    print("\n".join(text))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(text) + "\n")
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
