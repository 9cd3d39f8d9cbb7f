"""Where does a WIRG card's error enter, and how much of it is the sampler's relaxation?  Super-resolution runs
judged against the independent reference.

For the card given (its training data, reference and fit), each run generates the card's number of fields either
from scratch (``full``) or from the training fields' own coarse field ``phi_j`` (``j``: only the conditionals finer
than ``phi_j`` are drawn), with a given number of warm-up steps per scale, each of a given number of leapfrog
steps (one, the default, is MALA).  Every run is judged against the
independent reference by the fidelity statistics of :mod:`rgppl.fidelity`, as the card's record judges its fields.
The training fields against the same reference are the floor: conditionals that are exact and sampled to
equilibrium leave a super-resolved ensemble at that level.  A conditional whose error falls with more warm-up steps
was not relaxed; one whose error stays is the model's.

    python benchmarks/wirg_super_resolution.py benchmarks/cards/phi4_wirg_L64.toml --runs 1:300 1:1200 full:1200
    python benchmarks/wirg_super_resolution.py benchmarks/cards/phi4_wirg_L64.toml --runs 1:300:4    # HMC, 4 leapfrogs
"""

import argparse
import time
from dataclasses import replace

import matplotlib
import numpy as np
from index import write_index  # benchmarks/index.py, beside this script
from record import fitted_wirg, fresh_current  # benchmarks/record.py
from samplers import SOUND_Z  # benchmarks/samplers.py: the |z| a sound run stays within

from rgppl.cards import load_card
from rgppl.fidelity import field_fidelity, worst
from rgppl.record import figure, write_record
from rgppl.run_page import write_run_page
from rgppl.wavelets import pyramid
from rgppl.wirg.sampler import generate

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def run_spec(text: str) -> tuple:
    """``FROM:WARMUP[:LEAPFROG]``, FROM ``full`` or the level ``j`` of the coarse field generated from, LEAPFROG
    the leapfrog steps of each step (1, MALA, if not given)."""
    start, *counts = text.split(":")
    if not (start == "full" or start.isdigit()) or len(counts) not in (1, 2) or not all(n.isdigit() for n in counts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give FROM:WARMUP[:LEAPFROG], FROM 'full' or a level j >= 1, e.g. 1:300:4"
        )
    warmup, leapfrog = int(counts[0]), int(counts[1]) if len(counts) == 2 else 1
    return (None if start == "full" else int(start)), warmup, leapfrog


def run_label(start, warmup: int, leapfrog: int) -> str:
    """The run's name in the record: ``full_warmup_W`` or ``from_phi_j_warmup_W``, ``_leapfrog_N`` after it for
    N > 1."""
    return f"{'full' if start is None else f'from_phi_{start}'}_warmup_{warmup}" + (
        f"_leapfrog_{leapfrog}" if leapfrog > 1 else ""
    )


def profile(table) -> dict:
    """The spectrum's z per bin (with its |k|), the per-scale mean squares' z, and the worst |z| of each kind."""
    spectrum = table[table.statistic == "spectrum"]
    return {
        "k": spectrum["where"].tolist(),
        "spectrum_z": spectrum["z"].tolist(),
        "scale_mean_square_z": table[table.statistic == "scale_mean_square"]["z"].tolist(),
        "worst_abs_z": worst(table).to_dict(),
    }


def plot(profiles: dict, path) -> None:
    """The spectrum's z against |k|, one line per run, the training fields' in black."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, p in profiles.items():
        style = {"color": "k", "lw": 2} if label == "training" else {}
        ax.plot(p["k"], p["spectrum_z"], marker=".", label=label, **style)
    for bound in (-SOUND_Z, SOUND_Z):
        ax.axhline(bound, color="k", lw=0.8, ls=":")
    ax.set(xlabel="|k|", ylabel="z of the radial spectrum against the reference")
    ax.set_title("Where the error enters: super-resolution from the training fields' coarse fields")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card", help="a WIRG card: a built-in name or a card file")
    parser.add_argument("--runs", nargs="+", type=run_spec, required=True, help="FROM:WARMUP[:LEAPFROG]")
    args = parser.parse_args()
    card = load_card(args.card)
    training, reference, fields, model, stages = fitted_wirg(card)
    profiles = {"training": profile(field_fidelity(training, reference, wavelet=model.wavelet))}
    seconds, figures = {}, [figure("worst_abs_z", profiles["training"]["worst_abs_z"]["all"], run="training")]
    for start, warmup, leapfrog in args.runs:
        label, settings = run_label(start, warmup, leapfrog), replace(card.generator, warmup=warmup, leapfrog=leapfrog)
        coarse = (
            None if start is None else np.asarray(pyramid(fields[: settings.samples], model.wavelet, start)[0][start])
        )
        begin = time.perf_counter()
        generated = generate(model, card.hamiltonian, settings, seed=card.seed, coarse=coarse, progress=False)
        seconds[label] = time.perf_counter() - begin
        profiles[label] = profile(field_fidelity(generated, reference, wavelet=model.wavelet))
        worst_z = profiles[label]["worst_abs_z"]["all"]
        figures.append(figure("worst_abs_z", worst_z, run=label, generation_s=seconds[label]))
        print(f"{label}: worst |z| {worst_z:.2f} in {seconds[label]:.0f} s", flush=True)
    out = fresh_current("wirg_super_resolution")
    resolved = card.resolved()
    resolved["description"] = __doc__.split("\n\n")[0] + f" On {card.name}: {card.description}"
    write_record(
        out,
        job="benchmark",
        card=resolved,
        stages={**stages, "sampling": sum(seconds.values())},
        figures=figures,
        details={"runs": [run_label(*r) for r in args.runs], "generation_s": seconds, "profiles": profiles},
    )
    plot(profiles, out / "super_resolution.png")
    write_run_page(out)
    write_index()


if __name__ == "__main__":
    main()
