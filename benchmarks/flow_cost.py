"""Where a NeuralRG flow's time goes: microseconds per field of a training step, of a draw with its ln q, and of a
NeuTra gradient, on the Ising dual at T_c with the default flow (``FlowSettings()``), at L = 8, 16 and 32.

* ``training``: the path-gradient step of ``train_flow`` at batch 256, from two runs of different length (the
  difference of their training stages over the difference of their steps, so compilation drops out); the first
  run's excess over its steps is the compilation, shown apart;
* ``draw``: ``TrainedFlow.draw`` of 4096 fields in batches of 256 (a flow's draws with ln q and the weight: free
  energy, IS ln Z and MIS proposals), compiled beforehand;
* ``neutra_gradient_C``: the gradient of the latent-space potential ``U(z) = E(g(z)) - ln|det dg/dz|`` (what
  NeuTra-NUTS evaluates at each leapfrog step) for ``C`` chains at once, per chain, compiled beforehand;
* for untrained flows, the default and two ablations that say where its time goes (``affine``, ``knots = 0``:
  Li & Wang's affine couplings instead of splines; ``kernel1``: each block reads only its own conditioning pair):
  ``<variant>_draw``, the forward pass to the field and its energy (no ln q, no inverse pass), and NeuTra's
  gradient.  Their cost does not depend on the parameters' values.

The draws' and gradients' figures are the best of 3 repetitions; training's comes from its one pair of runs.

    python benchmarks/flow_cost.py            # writes benchmarks/results/current/flow_cost/ (record and page)
"""

import argparse
import time

import jax
import jax.numpy as jnp
import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from record import cell_figures, fresh_current  # benchmarks/record.py

from rgppl import FlowSettings, SVISettings, ising_dual, train_flow
from rgppl.flows.neuralrg import NeuralRGFlow
from rgppl.record import write_record
from rgppl.report import markdown_table

BATCH, DRAWS, REPEATS = 256, 4096, 3
VARIANTS = {"untrained": FlowSettings(), "affine": FlowSettings(knots=0), "kernel1": FlowSettings(kernel=1)}


def best_seconds(run) -> float:
    """The least wall time of ``REPEATS`` calls of ``run`` (compiled by a call before)."""
    jax.block_until_ready(run())
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return min(times)


def costs(side: int, steps: tuple[int, int]) -> dict:
    """The figures of the module docstring for the flow on the Ising dual at T_c on ``side`` x ``side``."""
    hamiltonian = ising_dual(side)
    train = lambda n: train_flow(
        hamiltonian,
        FlowSettings(),
        SVISettings(steps=n, batch=BATCH, report_every=min(steps), checkpoint_every=n),
        seed=0,
        progress=False,
    )
    short, trained = train(steps[0]), train(steps[1])
    per_step = (trained.training_time_s - short.training_time_s) / (steps[1] - steps[0])
    row = {
        "L": side,
        "training_us_per_field": 1e6 * per_step / BATCH,
        "training_compile_s": short.training_time_s - steps[0] * per_step,
    }
    key = jax.random.PRNGKey(1)
    row["draw_us_per_field"] = 1e6 * best_seconds(lambda: trained.draw(key, DRAWS, BATCH)[0]) / DRAWS
    row.update(neutra_gradients(hamiltonian, trained.flow, key))
    for variant, settings in VARIANTS.items():
        flow = NeuralRGFlow(key, hamiltonian.lattice, settings)
        z = jax.random.normal(key, (BATCH, side, side))
        draw = jax.jit(lambda z: hamiltonian.energy(flow.transform_and_log_det(z)[0]))
        row[f"{variant}_draw_us_per_field"] = 1e6 * best_seconds(lambda: draw(z)) / BATCH
        row.update({f"{variant}_{k}": v for k, v in neutra_gradients(hamiltonian, flow, key).items()})
    return row


def neutra_gradients(hamiltonian, flow, key, chains=(4, 64)) -> dict:
    """Microseconds per chain of the gradient of ``U(z) = E(g(z)) - ln|det dg/dz|`` for each number of ``chains``."""

    def potential(z):
        x, log_det = flow.transform_and_log_det(z)
        return hamiltonian.energy(x) - log_det

    gradient, side = jax.jit(jax.vmap(jax.grad(potential))), hamiltonian.lattice.shape[0]
    row = {}
    for n in chains:
        z = jax.random.normal(key, (n, side, side))
        row[f"neutra_gradient_{n}_us_per_chain"] = 1e6 * best_seconds(lambda: gradient(z)) / n
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[8, 16, 32], help="lattice sides")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [costs(side, {8: (50, 150), 16: (20, 60)}.get(side, (10, 30))) for side in args.sides]
    table = pd.DataFrame(rows).set_index("L")
    out = fresh_current("flow_cost")
    figures = cell_figures(table, label=lambda side: f"L{side}")
    write_record(
        out,
        job="benchmark",
        card={
            "name": "flow_cost",
            "description": __doc__.split("\n\n")[0],
            "lattice": {"shape": [args.sides[0]] * 2},
            "hamiltonian": None,
            "run": {"sampler": "neuralrg", "seed": 0, "output": str(out)},
            "flow": FlowSettings().__dict__,
            "batch": BATCH,
            "sides": args.sides,
        },
        stages={"sampling": time.perf_counter() - start},
        figures=figures,
        details={"table": rows, "float": str(jnp.zeros(()).dtype)},
    )
    shown = table.T.rename_axis("microseconds per field or chain (compilation: seconds)")
    publish(
        out,
        "# Where a NeuralRG flow's time goes\n\n"
        "Per field (per chain for NeuTra's gradient) on the Ising dual at T_c: the trained default flow, then "
        "untrained flows of the default and of two ablations; compilation apart.\n\n" + markdown_table(shown) + "\n",
    )


if __name__ == "__main__":
    main()
