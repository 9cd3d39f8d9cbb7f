"""Why NeuTra-NUTS takes so many gradients per draw on the Ising dual: the curvature of its latent target.

NeuTra-NUTS runs NUTS on ``U(z) = E(g(z)) - ln|det dg/dz|``.  For a perfect flow ``U = |z|^2 / 2`` and every
eigenvalue of its Hessian is 1; NUTS's step size is set by the largest curvature it meets, of either sign.  On
the ``ising_dual_neuralrg_L8`` card's trained flow (trained here by the card's recipe, or read back from
``--checkpoint``, the card's own ``svi_checkpoint``), at ``POINTS`` latent points ``z ~ N(0, I)``:

* ``hessian_min`` and ``hessian_max``: the median over the points of the smallest and largest eigenvalue of the
  Hessian of ``U``, and ``hessian_min_worst``, the most negative of all;
* ``energy_hessian_min``: the same median for the Hessian of the field's energy ``E`` at ``x = g(z)``: the Ising
  dual's own negative curvature (its density is a mixture of 2^N Gaussians, one per spin configuration);
* NeuTra-NUTS (4 chains, ``WARMUP`` + ``DRAWS`` each, target acceptance 0.8): ``step_size`` (mean over chains
  after adaptation), ``gradients_per_draw`` and ``ms_per_draw``.

Row ``seam_removed`` asks whether the seam between the two signs of ``m`` is the cause.  The flow's ``q`` is
trained on one sign only (the card reports ``q_sym``), so the other sign of ``p`` is pulled back into ``q``'s
tails.  That row targets ``p~(x) = p(x) q(x) / q_sym(x)`` instead: ``p~(x) + p~(-x) = 2 p(x)``, so a random sign
on each draw gives ``p`` exactly, and ``p~`` lives where ``q`` does.  Its potential is
``U(z) + ln(1 + q(-x)/q(x)) - ln 2``, one inverse pass more per gradient.

    python benchmarks/neutra_geometry.py [--checkpoint results/ising_dual_neuralrg_L8/svi_checkpoint]
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from numpyro import handlers
from numpyro.infer.util import initialize_model
from record import cell_figures, fresh_current  # benchmarks/record.py

from rgppl import NUTSSettings, load_card, train_flow
from rgppl.infer.neutra import neutra_model
from rgppl.jobs.neuralrg import training_data
from rgppl.mcmc import run_nuts
from rgppl.record import write_record
from rgppl.report import markdown_table

POINTS, WARMUP, DRAWS = 16, 100, 100
CARD = "ising_dual_neuralrg_L8"


def seam_removed_model(trained):
    """NeuTra's model with the factor ``-ln(1 + q(-x)/q(x))``: its draws ``x = g(z)`` follow ``p~`` (docstring)."""
    plain, q = neutra_model(trained), trained.guide.get_flow_posterior(trained.params)

    def model():
        with handlers.trace() as sites:
            plain()
        x = sites["phi"]["value"].reshape(-1)
        log_q = q.log_prob(jnp.stack([x, -x]))
        numpyro.factor("seam", -jnp.logaddexp(0.0, log_q[1] - log_q[0]))

    return model


def curvature(model, hamiltonian, flow, z) -> dict:
    """Hessian eigenvalues of the model's potential in ``z`` and of the energy at ``g(z)``, at the points ``z``."""
    potential = initialize_model(jax.random.PRNGKey(0), model).potential_fn
    latent = jax.vmap(jax.hessian(lambda u: potential({"auto_shared_latent": u})))(z)
    x = flow.transform_and_log_det(z.reshape(len(z), *hamiltonian.lattice.shape))[0]
    energy = jax.vmap(jax.hessian(lambda phi: hamiltonian.energy(phi.reshape(hamiltonian.lattice.shape))))
    eigen = np.linalg.eigvalsh(np.asarray(latent))
    field = np.linalg.eigvalsh(np.asarray(energy(x.reshape(len(z), -1))))
    return {
        "hessian_min": float(np.median(eigen[:, 0])),
        "hessian_min_worst": float(eigen[:, 0].min()),
        "hessian_max": float(np.median(eigen[:, -1])),
        "energy_hessian_min": float(np.median(field[:, 0])),
    }


def neutra_cost(hamiltonian, model, fingerprint) -> dict:
    """Step size, gradients and milliseconds per draw of a short NeuTra-NUTS run on ``model``."""
    settings = NUTSSettings(chains=4, warmup=WARMUP, samples=DRAWS)
    start = time.perf_counter()
    dt = run_nuts(hamiltonian, settings, model=model, label="neutra", fingerprint=fingerprint, seed=0, progress=False)
    stats = dt.sample_stats
    return {
        "step_size": float(stats["step_size"].values[:, -1].mean()),
        "gradients_per_draw": float(stats["n_steps"].values.mean()),
        "ms_per_draw": 1e3 * dt.attrs["sampling_time_s"] / DRAWS,
        "run_s": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="the card's svi_checkpoint to read the trained flow from")
    args = parser.parse_args()
    start = time.perf_counter()
    card = load_card(CARD)
    hamiltonian = card.hamiltonian
    trained = train_flow(
        hamiltonian,
        card.flow,
        card.svi,
        data=training_data(hamiltonian, card.svi, card.data, card.seed),
        seed=card.seed,
        checkpoint=args.checkpoint,
        resume=args.checkpoint is not None,
        progress=False,
    )
    print(f"trained flow at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    z = jax.random.normal(jax.random.PRNGKey(3), (POINTS, hamiltonian.lattice.n_sites))
    models = {"neutra": neutra_model(trained), "seam_removed": seam_removed_model(trained)}
    rows = {}
    for name, model in models.items():
        rows[name] = curvature(model, hamiltonian, trained.flow, z)
        print(f"{name}: curvature at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        rows[name] |= neutra_cost(hamiltonian, model, trained.fingerprint)
        print(f"{name}: NeuTra-NUTS at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).T.rename_axis("target")
    out = fresh_current("neutra_geometry")
    write_record(
        out,
        job="benchmark",
        card={
            "name": "neutra_geometry",
            "description": __doc__.split("\n\n")[0],
            "lattice": {"shape": list(hamiltonian.lattice.shape)},
            "hamiltonian": hamiltonian.describe(),
            "run": {"sampler": "neutra", "seed": card.seed, "output": str(out)},
            "flow": card.flow.__dict__,
            "points": POINTS,
            "warmup": WARMUP,
            "draws": DRAWS,
        },
        stages={"training": trained.training_time_s, "sampling": time.perf_counter() - start},
        figures=cell_figures(table),
        details={"table": table.reset_index().to_dict("records")},
    )
    publish(
        out,
        "# NeuTra's latent target on the Ising dual: curvature and cost per draw\n\n"
        f"The `{CARD}` card's flow; Hessian eigenvalues at {POINTS} points z ~ N(0, I) (a perfect flow: all 1), "
        f"and NeuTra-NUTS with 4 chains of {WARMUP} + {DRAWS} draws.\n\n" + markdown_table(table) + "\n",
    )


if __name__ == "__main__":
    main()
