"""Time to independent samples, set-up included: every sampler of the recipes given, on one machine, in one run.

A physicist choosing a sampler asks how long until N independent samples, set-up included.  Each recipe (a
built-in card or a card file) runs through ``rgppl run`` in a child process whose peak resident memory is
measured.  From each record, per sampler run:

* set-up seconds, what the run pays before its first kept draw: for one sampler, the sampling stage's wall time
  less its measured sampling (compilation and warm-up); for a flow or WIRG run, the data and training or
  fitting stages as well (a WIRG card's data stage also draws the reference ensemble, so it is an upper bound);
* NUTS's (or NeuTra's) target acceptance, where the run has one;
* ESS bulk and tail of |m|, m^2 and the energy density e (ArviZ), and the seconds of sampling they took;
* the worst |z| of the run's figures against an exact or independent value;
* seconds to 10^3, 10^4 and 10^5 independent samples of |m|: set-up + N / (ESS of |m| per second of sampling);
* that time for 10^4 samples over the cluster sampler's and NUTS's on the same model and lattice, where the
  recipes hold them; the fastest sound run of each (:func:`fastest_runs`), so NUTS at its best target acceptance of
  those the recipes try.

    python benchmarks/samplers.py                    # RECIPES, the record's; writes results/current/samplers/
    python benchmarks/samplers.py phi4_wirg ising_dual_tc_L8          # any recipes given
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from record import fresh_current  # benchmarks/record.py

from rgppl.record import figure, read_record, write_record
from rgppl.report import markdown_table

CARDS = Path("benchmarks/cards")  # run from the repository root
RECIPES = (  # phi^4 in hopping form at beta = 0.68, then the continuous Ising dual at T_c, by side
    *(str(CARDS / f"samplers_{sampler}_L16.toml") for sampler in ("nuts", "cluster")),
    str(CARDS / "samplers_nuts_L32.toml"),
    "phi4_hopping_cluster_L32",
    "phi4_wirg",
    *(str(CARDS / f"samplers_{sampler}_L64.toml") for sampler in ("nuts", "cluster")),
    str(CARDS / "phi4_wirg_L64.toml"),
    *(str(CARDS / f"{card}_L128.toml") for card in ("samplers_cluster", "phi4_wirg")),
    "ising_dual_tc_L8",
    str(CARDS / "samplers_cluster_ising_L8.toml"),
    "ising_dual_neuralrg_L8",
    *(str(CARDS / f"samplers_{sampler}_ising_L{L}.toml") for L in (16, 32) for sampler in ("nuts", "cluster")),
    *(  # NUTS at the two other target acceptances, so that its ratios use the best of three
        str(CARDS / f"samplers_nuts_{side}_accept{accept}.toml")
        for side in ("L16", "L32", "L64", "ising_L8", "ising_L16", "ising_L32")
        for accept in (65, 90)
    ),
)
TARGETS = (1_000, 10_000, 100_000)
SOUND_Z = 3.5  # a run is sound if every figure it checks against an exact or independent value lies within this |z|
OBSERVABLES = ("abs_m", "m2", "e")
CHILD = (  # runs rgppl in a fresh process and writes its peak resident memory (KiB on Linux) to argv[1]
    "import resource, sys; from rgppl.cli import main; code = main(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)); sys.exit(code)"
)


def run_measured(card: str, scratch: Path) -> tuple[Path, float, float]:
    """Run ``card`` into ``scratch`` in a child process; its results directory, peak memory in GiB and wall
    seconds (the process's whole life: imports, compilation, every stage)."""
    out, memory = scratch / Path(card).stem, scratch / f"{Path(card).stem}.maxrss"
    command = [sys.executable, "-c", CHILD, str(memory), "run", card, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"recipe {card} failed")
    return out, int(memory.read_text()) / 2**20, time.perf_counter() - start


def run_costs(record: dict) -> dict:
    """``{run: (set-up seconds, sampling seconds)}`` of the sampler runs in a record (see the module docstring)."""
    stages, details = record["stages"], record["details"]
    if record["job"] == "sample":
        cost = details["cost"]
        return {cost["sampler"]: (stages["sampling"] - cost["sampling_time_s"], cost["sampling_time_s"])}
    if record["job"] == "neuralrg":
        training = stages.get("data", 0.0) + stages["training"]
        return {
            run: ((training if run != "nuts" else 0.0) + (cost["warmup_time_s"] or 0.0), cost["sampling_time_s"])
            for run, cost in details["cost"].items()
        }
    if record["job"] == "wirg":
        return {"wirg": (stages["data"] + stages["fitting"], details["generate_time_s"])}
    raise SystemExit(f"a {record['job']} record has no sampler runs")


def rows(recipe: str, record: dict, memory_gib: float) -> list[dict]:
    """One row per sampler run of ``record``."""
    card = record["card"]
    out = []
    for run, (setup, sampling) in run_costs(record).items():
        mine = {f["name"]: f for f in record["figures"] if f.get("run") == run}
        rate = mine["abs_m"]["ess_per_s"]
        z = [abs(f["z"]) for f in record["figures"] if f.get("run") == run and f["z"] is not None]
        row = {
            "recipe": recipe,
            "model": card["hamiltonian"]["name"],
            "L": card["lattice"]["shape"][0],
            "sampler": run,
            "target_accept": card.get(run, {}).get("target_accept"),
            "setup_s": setup,
            "sampling_s": sampling,
            "peak_memory_gib": memory_gib,
            "worst_abs_z": max(z) if z else None,
        }
        for name in OBSERVABLES:
            row[f"ess_bulk_{name}"] = mine[name]["ess_bulk"] if name in mine else None
            row[f"ess_tail_{name}"] = mine[name].get("ess_tail") if name in mine else None
        row["ess_per_s_abs_m"] = rate
        for n in TARGETS:
            row[f"seconds_to_{n}"] = setup + n / rate
        out.append(row)
    return out


def fastest_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The run of each sampler, model and lattice that reaches 10^4 samples first of those that are sound (worst
    |z| below ``SOUND_Z``, or nothing to check), or of all its runs if none is: a faster run whose draws miss an
    exact value (NUTS at a low target acceptance, whose ESS overstates what its draws hold) is no baseline."""
    target = f"seconds_to_{TARGETS[1]}"
    unsound = table["worst_abs_z"].fillna(0.0) >= SOUND_Z
    ranked = table.assign(unsound=unsound).sort_values(["unsound", target], kind="stable")
    return ranked.groupby(["model", "L", "sampler"], sort=False).head(1).drop(columns="unsound")


def with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Seconds to 10^4 samples of the cluster sampler and of NUTS on the same model and lattice, over each run's;
    of each baseline its :func:`fastest_runs` run (a flow card's NUTS beside NUTS cards at three acceptances)."""
    target = f"seconds_to_{TARGETS[1]}"
    fastest = fastest_runs(table)
    for baseline in ("cluster", "nuts"):
        times = fastest[fastest["sampler"] == baseline].set_index(["model", "L"])[target]
        table[f"speedup_over_{baseline}"] = [
            times.get((model, L), float("nan")) / seconds
            for model, L, seconds in zip(table["model"], table["L"], table[target])
        ]
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", default=RECIPES, help="built-in card names or card files (RECIPES)")
    args = parser.parse_args()
    found, walls = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for recipe in args.recipes:
            out, memory, walls[Path(recipe).stem] = run_measured(recipe, Path(scratch))
            found += rows(Path(recipe).stem, read_record(out), memory)
    table = with_ratios(pd.DataFrame(found))
    out = fresh_current("samplers")
    figures = [
        figure(f"{row['recipe']}/{column}", row[column], run=row["sampler"])
        for row in table.to_dict("records")
        for column in table.columns
        if column not in ("recipe", "model", "L", "sampler") and pd.notna(row[column])
    ]
    first = found[0]
    card = {
        "name": "samplers",
        "description": __doc__.split("\n\n")[0],
        "lattice": {"shape": [int(table["L"].max())] * 2},
        "hamiltonian": None,
        "run": {"sampler": first["sampler"], "seed": 0, "output": str(out)},
        "recipes": list(args.recipes),
    }
    write_record(
        out,
        job="benchmark",
        card=card,
        stages={"sampling": sum(walls.values())},
        figures=figures,
        details={"table": found, "recipe_wall_s": walls},
    )
    shown = table.set_index(["model", "L", "sampler"])[
        [
            "target_accept",
            "setup_s",
            "ess_per_s_abs_m",
            *[f"seconds_to_{n}" for n in TARGETS],
            "speedup_over_cluster",
            "speedup_over_nuts",
            "worst_abs_z",
            "peak_memory_gib",
        ]
    ]
    publish(
        out,
        "# Time to independent samples of |m|, set-up included\n\n"
        + markdown_table(shown)
        + "\n\n"
        + markdown_table(table.set_index(["model", "L", "sampler"])[[c for c in table.columns if c.startswith("ess_")]])
        + "\n",
    )


if __name__ == "__main__":
    main()
