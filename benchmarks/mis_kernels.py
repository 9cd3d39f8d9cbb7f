"""The independence sampler's kernel: rgppl's MIS against BlackJAX's ``irmh``, same flow, same target.

Both are exact Metropolis samplers of ``p ∝ exp(-E)`` whose proposals ``x' ~ q`` ignore the state, so in
expectation they accept alike and their chains mix alike.  They differ in cost.  BlackJAX's step draws one
field per chain and asks ``proposal_logdensity_fn`` for ``ln q`` of the proposal and of the current state: one
generative and two inverse passes of the flow per step, batched over the chains only.  rgppl's draws a chunk of
proposals for all chains in one batch with ``ln q`` from the generative pass, then scans the accept/reject
decisions (:mod:`rgppl.infer.independence`).  Each is timed from a cold start (compilation included) and again
warm, on ``CHAINS`` chains of ``STEPS`` steps with a flow trained briefly on the Ising dual at T_c, L = 8; the
record gives acceptance, ESS of |m|, the two means of |m| against each other (z from both MCSEs) and the times.

    pip install blackjax && python benchmarks/mis_kernels.py   # writes benchmarks/results/current/mis_kernels/
"""

import time
from dataclasses import asdict
from pathlib import Path

import blackjax
import jax
import numpy as np

from rgppl import MIS, FlowSettings, MISSettings, SVISettings, ising_dual, sample, summary, train_flow
from rgppl.diagnostics import make_datatree
from rgppl.ensembles import ising_dual_fields
from rgppl.record import Stopwatch, figure, write_record

OUT = Path(__file__).parent / "results" / "current" / "mis_kernels"
L, CHAINS, STEPS, SEED = 8, 4, 5000, 0
FLOW = FlowSettings(couplings=4, width=16)
SVI = SVISettings(pretrain_steps=300, steps=300, batch=128, checkpoint_every=300)


def irmh_chains(trained, key):
    """``phi[chains, steps, L, L]`` and ``is_accepted[chains, steps]`` from BlackJAX's irmh on the flow's ``q_sym``."""
    h = trained.hamiltonian
    q = trained.guide.get_posterior(trained.params)
    # BlackJAX calls proposal_logdensity_fn(state, proposal) for ln q(proposal | state): for q ignoring the state,
    # ln q of its second argument (the acceptance is then ln p(x') - ln q(x') - ln p(x) + ln q(x))
    kernel = blackjax.irmh(
        lambda x: -h.energy(x.reshape(h.lattice.shape)), q.sample, lambda state, proposal: q.log_prob(proposal.position)
    )

    def chain(key):
        start, steps = jax.random.split(key)

        def one(state, step_key):
            state, info = kernel.step(step_key, state)
            return state, (state.position, info.is_accepted)

        return jax.lax.scan(one, kernel.init(q.sample(start)), jax.random.split(steps, STEPS))[1]

    phi, accepted = jax.jit(jax.vmap(chain))(jax.random.split(key, CHAINS))
    return np.asarray(phi).reshape(CHAINS, STEPS, *h.lattice.shape), np.asarray(accepted)


def timed(run) -> tuple:
    """``run()``'s result, its wall time from cold (compilation included) and warm (a second call)."""
    start = time.perf_counter()
    run()
    cold = time.perf_counter() - start
    start = time.perf_counter()
    result = run()
    return result, cold, time.perf_counter() - start


def main():
    h = ising_dual(L)
    clock = Stopwatch()
    with clock.stage("training"):
        trained = train_flow(h, FLOW, SVI, data=ising_dual_fields(h, 8192, seed=SEED), seed=SEED, progress=False)
    settings = MISSettings(chains=CHAINS, warmup=0, samples=STEPS, checkpoint_every=STEPS)
    with clock.stage("sampling"):
        ours, ours_cold, ours_warm = timed(lambda: sample(h, MIS(trained, settings), seed=SEED + 1, progress=False))
        (phi, accepted), theirs_cold, theirs_warm = timed(lambda: irmh_chains(trained, jax.random.PRNGKey(SEED + 1)))
    theirs = make_datatree(h, phi, sample_stats={"is_accepted": accepted})
    with clock.stage("evaluation"):
        rows = {
            "rgppl": (summary(ours).loc["abs_m"], float(ours.attrs["acceptance"]), ours_cold, ours_warm),
            "blackjax": (summary(theirs).loc["abs_m"], float(accepted.mean()), theirs_cold, theirs_warm),
        }
    figures = []
    for run, (row, acceptance, cold, warm) in rows.items():
        figures += [
            figure("abs_m", row["mean"], row["mcse_mean"], run=run, ess_bulk=row["ess_bulk"]),
            figure("acceptance", acceptance, run=run),
            figure("seconds_cold", cold, run=run),
            figure("seconds_warm", warm, run=run),
            figure("ess_abs_m_per_s_warm", row["ess_bulk"] / warm, run=run),
        ]
    mine, other = rows["rgppl"][0], rows["blackjax"][0]
    figures.append(
        figure(
            "abs_m_rgppl_vs_blackjax",
            mine["mean"],
            mine["mcse_mean"],
            reference=other["mean"],
            reference_source="blackjax",
            z=(mine["mean"] - other["mean"]) / np.hypot(mine["mcse_mean"], other["mcse_mean"]),
        )
    )
    figures.append(figure("warm_speedup_rgppl_over_blackjax", theirs_warm / ours_warm))
    card = {
        "name": "mis_kernels",
        "description": __doc__.split("\n\n")[0],
        "lattice": {"shape": [L, L]},
        "hamiltonian": h.describe(),
        "run": {"sampler": "mis", "seed": SEED, "output": str(OUT)},
        "flow": asdict(FLOW),
        "svi": asdict(SVI),
        "mis": asdict(settings),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    write_record(
        OUT,
        job="benchmark",
        card=card,
        stages=clock.seconds,
        figures=figures,
        details={"blackjax": blackjax.__version__, "flow_parameters": trained.n_params},
    )
    for entry in figures:
        print(entry["name"], entry.get("run", ""), f"{entry['value']:.4g}", entry.get("z") or "")


if __name__ == "__main__":
    main()
