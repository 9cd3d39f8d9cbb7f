"""How many MALA steps does each WIRG conditional need?  Relaxation from the generator's start, measured per scale.

The generator's fields are the last states of chains that start away from equilibrium, so a scale's step budget
must cover its chains' relaxation, not just their autocorrelation time once relaxed.  For the card given (its
training data and fit), every conditional's chains run on the training coarse fields from three starts:

* the data's own details: a sample of the true conditional, so these chains start (nearly) in equilibrium;
* a draw of the data's Gaussian conditional (:mod:`rgppl.wirg.gaussian`), the generator's start;
* zero, the paper's start.

All three use the step size adapted on the data-started chains.  Every ``RECORD_EVERY`` steps the mean square of
each free channel is averaged over the chains, and ``z`` is the largest difference, over channels, between a
start's average and the data-started chains' in units of its standard error.  A start has *settled* at the first
recorded step after which ``|z| < SETTLED`` for good: with as many chains as the card generates fields, a bias the
generated ensemble could resolve is gone.  The slowest quantity is the details' amplitude, whose relaxation is set by
the fitted potential's wells, not by the energy's autocorrelation time (``tau_energy`` of the generator's record).

    python benchmarks/wirg_relaxation.py phi4_wirg     # writes benchmarks/results/current/wirg_relaxation/
"""

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from index import write_index  # benchmarks/index.py, beside this script
from record import fitted_wirg, fresh_current  # benchmarks/record.py

from rgppl.cards import load_card
from rgppl.record import figure, write_record
from rgppl.run_page import write_run_page
from rgppl.wavelets import pyramid
from rgppl.wirg.sampler import ScaleParams, conditional_chains, initial_log_step, start_inside

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEPS = 400
RECORD_EVERY = 5
ADAPT = 300  # warm-up steps of the data-started chains that set the step size
SETTLED = 3.0
STARTS = ("gaussian", "zero")


def channel_squares(ansatz) -> list[int]:
    """Indices of the features ``1/2 sum_x v_c(x)^2`` of the free channels."""
    return [
        t for t, (c, d, s) in enumerate(ansatz.quadratic_terms) if c == d and s == (0, 0) and c in ansatz.free_channels
    ]


def relaxation(key, scale, coarse, truth) -> dict:
    """``z`` of every start at every recorded step, and the step each settled at (``None``: not within ``STEPS``)."""
    ansatz, params = scale.ansatz, ScaleParams.of(scale)
    keys = jax.random.split(key, 5)
    _, log_step, *_ = conditional_chains(ansatz, ADAPT, RECORD_EVERY, 10)(
        keys[0], coarse, truth, params, initial_log_step(ansatz)
    )
    run = conditional_chains(ansatz, 0, STEPS, 10, RECORD_EVERY)
    zero = jnp.zeros_like(truth)
    starts = {"data": truth, "gaussian": start_inside(scale, keys[1], coarse, zero), "zero": zero}
    squares = {
        label: np.asarray(run(k, coarse, start, params, log_step)[4], np.float64)[..., channel_squares(ansatz)]
        for k, (label, start) in zip(keys[2:], starts.items(), strict=True)
    }
    reference, n = squares["data"], len(truth)
    out = {"step_size": float(jnp.exp(log_step))}
    for label in STARTS:
        ours = squares[label]
        error = np.sqrt(ours.var(axis=0) / n + reference.var(axis=0) / n)
        z = np.max(np.abs(ours.mean(axis=0) - reference.mean(axis=0)) / error, axis=-1)
        unsettled = np.nonzero(z >= SETTLED)[0]
        settled = 0 if len(unsettled) == 0 else int(unsettled[-1]) + 1
        out[label] = {"z": z.tolist(), "settled": None if settled == len(z) else RECORD_EVERY * (settled + 1)}
    return out


def plot(curves: dict, path) -> None:
    """``z`` against steps, one colour per scale, solid from the Gaussian start and dashed from zero."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = RECORD_EVERY * np.arange(1, STEPS // RECORD_EVERY + 1)
    for i, (side, curve) in enumerate(curves.items()):
        for label, style in zip(STARTS, ("-", "--"), strict=True):
            ax.plot(steps, curve[label]["z"], style, color=f"C{i}", label=f"{side}x{side}, {label} start")
    ax.axhline(SETTLED, color="k", lw=0.8)
    ax.set(yscale="log", xlabel="MALA steps", ylabel="largest |z| of a channel's mean square")
    ax.set_title("Relaxation of each conditional against chains started at the data")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card", help="a WIRG card: a built-in name or a card file")
    card = load_card(parser.parse_args().card)
    _, _, fields, model, stages = fitted_wirg(card)
    start = time.perf_counter()
    coarse, details = pyramid(jnp.asarray(model.standardise(fields), jnp.float32), model.wavelet, model.levels)
    curves = {}
    for index, scale in enumerate(model.scales[1:], start=1):
        j = model.levels - index + 1  # the conditional draws phibar_j given phi_j
        curves[scale.ansatz.side] = relaxation(jax.random.key(index), scale, coarse[j], details[j - 1])
        print(
            f"{scale.ansatz.side:>4}x{scale.ansatz.side}: settled after "
            + ", ".join(f"{curves[scale.ansatz.side][s]['settled']} steps from {s}" for s in STARTS),
            flush=True,
        )
    sampling_s = time.perf_counter() - start
    out = fresh_current("wirg_relaxation")
    figures = [
        figure(f"settled_{label}_{side}x{side}", curve[label]["settled"], run=label, step_size=curve["step_size"])
        for side, curve in curves.items()
        for label in STARTS
    ]
    resolved = card.resolved()
    resolved["description"] = __doc__.split("\n\n")[0] + f" On {card.name}: {card.description}"
    write_record(
        out,
        job="benchmark",
        card=resolved,
        stages={**stages, "sampling": sampling_s},
        figures=figures,
        details={
            "chains": len(fields),
            "steps": STEPS,
            "record_every": RECORD_EVERY,
            "settled_z": SETTLED,
            "curves": curves,
        },
    )
    plot(curves, out / "relaxation.png")
    write_run_page(out)
    write_index()


if __name__ == "__main__":
    main()
