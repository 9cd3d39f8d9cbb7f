"""How fast NeuTra-NUTS could be with a perfect flow: its ceiling in ESS of |m| per second, against plain NUTS.

NeuTra-NUTS runs NUTS on ``U(z) = E(g(z)) - ln|det dg/dz|``.  For a perfect flow ``U`` is the standard normal's
``|z|^2 / 2``, and NUTS mixes there as well as it ever can; each of its gradients then costs one gradient through
the flow.  So, per lattice side, on phi^4 in hopping form at beta = 0.68 (where NeuTra is compared with plain NUTS):

* ``nuts_ess_per_s``: plain NUTS (4 chains, 1000 warm-up and 4000 draws each), bulk ESS of |m| per second of
  sampling, at the best of ``TARGETS`` (``nuts_target``);
* ``latent_ess_per_1k_grad``: NUTS with the same settings on the standard normal of ``L^2`` variables (a perfect
  flow's latent target), bulk ESS per 1000 gradients of ``|mean z|``, the stand-in for ``|m|`` (``m`` of the
  field is close to linear in the flow's coarsest latent variables), at the best of ``TARGETS``;
* ``flow_gradient_us``: NeuTra's gradient through the flow with 8 couplings per sublayer (the default before
  ``flow_sweep`` showed that 4 keep the KL), per chain for 64 chains,
  the best of 3 after compilation (``flow_cost``'s timer; its cost does not depend on the parameters' values);
* ``ceiling_ess_per_s`` = ``latent_ess_per_1k_grad / 1000 * 1e6 / flow_gradient_us``: NeuTra's ESS per second
  with a perfect flow at this cost, training not counted; ``ceiling_over_nuts``, its ratio to plain NUTS, and
  ``cost_cut_to_tie`` = ``1 / ceiling_over_nuts``, how many times cheaper the flow's gradient must get before even
  a perfect flow ties with plain NUTS;
* ``couplings4_gradient_us`` and ``couplings4_ceiling_over_nuts``: the same for the flow with 4 couplings per
  sublayer (``flow_sweep``'s cheaper flow of equal KL, the default now), timed right after the other.

    python benchmarks/neutra_ceiling.py            # writes benchmarks/results/current/neutra_ceiling/
"""

import argparse
import time
from dataclasses import replace

import jax
import pandas as pd
from flow_cost import neutra_gradients  # benchmarks/flow_cost.py, beside this script
from index import publish  # benchmarks/index.py
from record import cell_figures, fresh_current  # benchmarks/record.py

from rgppl import FlowSettings, Hamiltonian, NUTSSettings, phi4_hopping
from rgppl.diagnostics import summary
from rgppl.flows.neuralrg import NeuralRGFlow
from rgppl.hamiltonians import Mass
from rgppl.lattice import Lattice
from rgppl.mcmc import run_nuts
from rgppl.record import write_record
from rgppl.report import markdown_table

BETA = 0.68
TARGETS = (0.65, 0.8, 0.9)
SETTINGS = NUTSSettings(chains=4, warmup=1000, samples=4000)


def best_nuts(hamiltonian, column: str) -> tuple[float, float]:
    """``(best value of column for |m|, its target acceptance)`` over NUTS runs at each of ``TARGETS``."""
    results = []
    for target in TARGETS:
        dt = run_nuts(hamiltonian, replace(SETTINGS, target_accept=target), seed=0, progress=False)
        results.append((float(summary(dt, ["abs_m"]).loc["abs_m", column]), target))
    return max(results)


def flow_gradient(model, settings: FlowSettings) -> float:
    """Microseconds per chain of NeuTra's gradient through a flow of ``settings`` on ``model``, 64 chains."""
    flow = NeuralRGFlow(jax.random.PRNGKey(0), model.lattice, settings)
    return neutra_gradients(model, flow, jax.random.PRNGKey(1), chains=(64,))["neutra_gradient_64_us_per_chain"]


def row(side: int) -> dict:
    """The figures of the module docstring at ``side``."""
    model = phi4_hopping((side, side), BETA)
    standard_normal = Hamiltonian(Lattice((side, side)), (Mass(1.0),), name="standard_normal")
    nuts, nuts_target = best_nuts(model, "ess_per_s")
    latent, latent_target = best_nuts(standard_normal, "ess_per_1k_grad")
    gradient, cheaper = (flow_gradient(model, FlowSettings(couplings=n)) for n in (8, 4))
    ceiling_at = lambda us: latent / 1000 * 1e6 / us  # ESS per second of a perfect flow whose gradient costs us
    ceiling = ceiling_at(gradient)
    out = {
        "L": side,
        "nuts_ess_per_s": nuts,
        "nuts_target": nuts_target,
        "latent_ess_per_1k_grad": latent,
        "latent_target": latent_target,
        "flow_gradient_us": gradient,
        "ceiling_ess_per_s": ceiling,
        "ceiling_over_nuts": ceiling / nuts,
        "cost_cut_to_tie": nuts / ceiling,
        "couplings4_gradient_us": cheaper,
        "couplings4_ceiling_over_nuts": ceiling_at(cheaper) / nuts,
    }
    print(out, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[16, 32], help="lattice sides")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [row(side) for side in args.sides]
    table = pd.DataFrame(rows).set_index("L")
    out = fresh_current("neutra_ceiling")
    write_record(
        out,
        job="benchmark",
        card={
            "name": "neutra_ceiling",
            "description": __doc__.split("\n\n")[0],
            "lattice": {"shape": [args.sides[-1]] * 2},
            "hamiltonian": None,
            "run": {"sampler": "neutra", "seed": 0, "output": str(out)},
            "beta": BETA,
            "targets": list(TARGETS),
            "nuts": SETTINGS.__dict__,
            "flow": FlowSettings(couplings=8).__dict__,
        },
        stages={"sampling": time.perf_counter() - start},
        figures=cell_figures(table, label=lambda side: f"L{side}"),
        details={"table": rows},
    )
    publish(
        out,
        "# NeuTra-NUTS with a perfect flow, against plain NUTS\n\n"
        f"phi^4 in hopping form at beta = {BETA}; ESS of |m| (for the latent target, of |mean z|). The ceiling is "
        "NeuTra's ESS per second if its flow were perfect, at today's cost of a gradient through the flow; "
        "`cost_cut_to_tie` is how much cheaper that gradient must get for a perfect flow to tie with plain NUTS.\n\n"
        + markdown_table(table)
        + "\n",
    )


if __name__ == "__main__":
    main()
