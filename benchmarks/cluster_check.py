"""Is the reference right?  The cluster sampler against NumPyro's NUTS, a different algorithm, on critical phi^4.

The cluster sampler (Metropolis sweeps and Swendsen-Wang flips of the embedded Ising signs,
:func:`rgppl.ensembles.run_cluster`) makes the reference ensembles that WIRG and the flows are judged against.
This check runs it and a long NUTS (HMC) run on ``phi4_hopping(L, beta=0.68)`` at L = 16 and 32, from the
recipes ``benchmarks/cards/cluster_check_{nuts,cluster}_L{16,32}.toml`` through ``rgppl run``, and compares
``<phi^2>`` (the site average of ``phi_x^2``), ``<|m|>``, ``<m^2>`` and the energy density ``e``: each mean
with ArviZ's MCSE, their relative difference, and ``z`` from both errors.  The verdict is the worst ``|z|``
against the family threshold (Bonferroni over the comparisons).

    python benchmarks/cluster_check.py     # writes benchmarks/results/current/cluster_check/ (record and page)
"""

import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from index import write_index  # benchmarks/index.py, beside this script
from record import fresh_current, run  # benchmarks/record.py
from scipy.stats import norm

from rgppl.diagnostics import mean_with_error
from rgppl.hamiltonians import phi4_hopping
from rgppl.record import figure, read_record, write_record
from rgppl.run_page import write_run_page

CARDS = Path(__file__).parent / "cards"
SIDES = (16, 32)
OBSERVABLES = ("phi2", "abs_m", "m2", "e")


def observables(out: Path) -> dict:
    """``[chain, draw]`` draws of each compared observable of the run in ``out``."""
    posterior = xr.load_datatree(out / "posterior.nc", engine="h5netcdf").posterior
    phi = posterior["phi"].values
    return {
        "phi2": (phi.astype(np.float64) ** 2).mean(axis=(-2, -1)),
        **{n: posterior[n].values for n in OBSERVABLES[1:]},
    }


def comparison(L: int, nuts: Path, cluster: Path) -> list[dict]:
    """One figure per observable: the cluster sampler's mean, NUTS's as its reference, and z from both MCSEs."""
    ours, theirs = observables(cluster), observables(nuts)
    figures = []
    for name in OBSERVABLES:
        a, b = mean_with_error(ours[name]), mean_with_error(theirs[name])
        stderr, reference_error = float(a["mcse"]), float(b["mcse"])
        z = (float(a["mean"]) - float(b["mean"])) / np.hypot(stderr, reference_error)
        figures.append(
            figure(
                f"{name}_L{L}",
                float(a["mean"]),
                stderr,
                reference=float(b["mean"]),
                reference_source="nuts",
                run="cluster",
                z=z,
                reference_stderr=reference_error,
                relative_difference=float(a["mean"]) / float(b["mean"]) - 1,
                relative_resolution=np.hypot(stderr, reference_error) / abs(float(b["mean"])),
                ess_bulk=float(a["ess_bulk"]),
                reference_ess_bulk=float(b["ess_bulk"]),
            )
        )
    return figures


def main():
    with tempfile.TemporaryDirectory() as scratch:
        outs = {
            (L, s): run(str(CARDS / f"cluster_check_{s}_L{L}.toml"), Path(scratch))
            for L in SIDES
            for s in ("nuts", "cluster")
        }
        figures = [f for L in SIDES for f in comparison(L, outs[L, "nuts"], outs[L, "cluster"])]
        run_seconds = {f"{s}_L{L}": sum(read_record(out)["stages"].values()) for (L, s), out in outs.items()}
        cards = {f"{s}_L{L}": read_record(out)["card"] for (L, s), out in outs.items()}
    threshold = float(norm.isf(0.025 / len(figures)))  # two-sided 5 % family-wise, Bonferroni
    worst = max(abs(f["z"]) for f in figures)
    out = fresh_current("cluster_check")
    card = {
        "name": "cluster_check",
        "description": __doc__.split("\n\n")[0],
        "lattice": {"shape": [max(SIDES)] * 2},
        "hamiltonian": phi4_hopping(max(SIDES), beta=0.68).describe(),
        "run": {"sampler": "cluster", "seed": cards[f"cluster_L{max(SIDES)}"]["run"]["seed"], "output": str(out)},
        "recipes": cards,
    }
    write_record(
        out,
        job="benchmark",
        card=card,
        stages={"sampling": sum(run_seconds.values())},
        figures=figures,
        details={
            "threshold": threshold,
            "worst_abs_z": worst,
            "passes": bool(worst < threshold),
            "run_seconds": run_seconds,
        },
    )
    write_run_page(out)
    write_index()
    for f in figures:
        print(
            f"{f['name']:>10}: cluster {f['value']:.6g} ± {f['stderr']:.2g}, nuts {f['reference']:.6g} ± "
            f"{f['reference_stderr']:.2g}, difference {100 * f['relative_difference']:+.3f} % "
            f"(resolution {100 * f['relative_resolution']:.3f} %), z = {f['z']:+.2f}"
        )
    print(
        f"worst |z| = {worst:.2f} against the family threshold {threshold:.2f}: "
        + ("they agree" if worst < threshold else "they DISAGREE")
    )


if __name__ == "__main__":
    main()
