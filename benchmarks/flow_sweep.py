"""KL against cost: cheaper NeuralRG flows trained by the ``ising_dual_neuralrg_L8`` card's recipe, at L = 8.

Each variant changes one thing of that card's flow or training (``VARIANTS``) and is trained as the card trains:
its ``[svi]`` (maximum likelihood on its Swendsen-Wang fields, then path-gradient SVI), seed 0.  Per variant:

* ``training_s``: the wall time of that training, compilation included (the card's training stage);
* ``kl_nats`` (with ``kl_nats_stderr``), ``ess_fraction``, ``k_hat``: from ``[free_energy] samples`` draws of ``q_sym``
  against the exact ln Z (Kaufman), as the card's record gives them; ``mis_acceptance``: the independence
  sampler's acceptance over the card's ``[mis]`` run;
* per field at L = 8, 16 and 32 (the trained flow grown to the larger lattice, :func:`~rgppl.infer.grow`, whose
  cost does not depend on its parameters' values): ``draw_us_L<side>``, a draw with ln q_sym and its weight
  (``TrainedFlow.draw``), and ``gradient_us_L<side>``, NeuTra's gradient of ``U(z) = E(g(z)) - ln|det dg/dz|``
  per chain for 64 chains; the best of 3 after compilation (``flow_cost``'s timers).

The question is which flows cost less per field at equal KL.  KL is measured at L = 8 only: a variant that loses
KL there has lost it.

    python benchmarks/flow_sweep.py            # writes benchmarks/results/current/flow_sweep/ (record and page)
"""

import argparse
import time
from dataclasses import replace

import jax
import pandas as pd
from flow_cost import best_seconds, neutra_gradients  # benchmarks/flow_cost.py, beside this script
from index import publish  # benchmarks/index.py
from record import cell_figures, fresh_current  # benchmarks/record.py

from rgppl import train_flow
from rgppl.cards import load_card, resolve_card
from rgppl.infer.free_energy import free_energy
from rgppl.infer.independence import run_mis
from rgppl.infer.training import grow
from rgppl.jobs.neuralrg import training_data
from rgppl.lattice import Lattice
from rgppl.record import write_record
from rgppl.report import markdown_table

CARD = "ising_dual_neuralrg_L8"
SIDES, DRAWS = (8, 16, 32), 1024
VARIANTS = {  # name: (changes to [flow], changes to [svi])
    "card": ({}, {}),
    "couplings8": ({"couplings": 8}, {}),  # the default until this sweep's couplings4 (equal KL) replaced it
    "knots4": ({"knots": 4}, {}),
    "width16": ({"width": 16}, {}),
    "batch128": ({}, {"batch": 128}),
    "affine": ({"knots": 0}, {}),
}


def measure(card, name: str, data) -> dict:
    """Train variant ``name`` of ``card`` on ``data`` (the card's training fields) and return its row (see the
    module docstring)."""
    flow_changes, svi_changes = VARIANTS[name]
    flow, svi, h = replace(card.flow, **flow_changes), replace(card.svi, **svi_changes), card.hamiltonian
    start = time.perf_counter()
    trained = train_flow(h, flow, svi, data=data, seed=card.seed, progress=False)
    row = {"variant": name, "training_s": time.perf_counter() - start, "n_params": trained.n_params}
    stats = free_energy(trained, samples=card.free_energy_samples, seed=card.seed)
    row.update(
        kl_nats=stats["kl_nats"],
        kl_nats_stderr=stats["F_q_err"],
        ess_fraction=stats["ess_fraction"],
        k_hat=stats["k_hat"],
    )
    row["mis_acceptance"] = run_mis(trained, card.mis, seed=card.seed, progress=False).attrs["acceptance"]
    key = jax.random.PRNGKey(1)
    for side in SIDES:
        on_side = trained if side == h.lattice.shape[0] else grow(trained, h.on(Lattice(side)))
        row[f"draw_us_L{side}"] = 1e6 * best_seconds(lambda: on_side.draw(key, DRAWS, 256)[0]) / DRAWS
        row[f"gradient_us_L{side}"] = neutra_gradients(on_side.hamiltonian, on_side.flow, key, chains=(64,))[
            "neutra_gradient_64_us_per_chain"
        ]
    print(row, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    card, start = load_card(resolve_card(CARD)), time.perf_counter()
    data = training_data(card.hamiltonian, card.svi, card.data, card.seed)  # no variant changes what it trains on
    rows = [measure(card, name, data) for name in args.variants]
    table = pd.DataFrame(rows).set_index("variant")
    training = float(table["training_s"].sum())
    out = fresh_current("flow_sweep")
    figures = cell_figures(table)
    write_record(
        out,
        job="benchmark",
        card={
            "name": "flow_sweep",
            "description": __doc__.split("\n\n")[0],
            "lattice": {"shape": list(card.hamiltonian.lattice.shape)},
            "hamiltonian": None,
            "run": {"sampler": "neuralrg", "seed": card.seed, "output": str(out)},
            "recipe": CARD,
            "variants": {name: {"flow": f, "svi": s} for name, (f, s) in VARIANTS.items() if name in args.variants},
        },
        stages={"training": training, "evaluation": time.perf_counter() - start - training},
        figures=figures,
        details={"table": rows},
    )
    publish(
        out,
        f"# KL against cost: cheaper flows by the `{CARD}` recipe\n\n"
        "Each variant changes one setting of the card's flow or training. KL in nats against the exact ln Z at "
        "L = 8; per-field microseconds of a draw with ln q_sym, and of NeuTra's gradient (64 chains), at each L.\n\n"
        + markdown_table(table)
        + "\n",
    )


if __name__ == "__main__":
    main()
