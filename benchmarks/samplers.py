"""Time to independent samples, set-up included: every sampler of the recipes given, on one machine, in one run.

A physicist choosing a sampler asks how long until N independent samples, set-up included.  Each recipe (a
built-in card or a card file) runs through ``rgppl run`` in a child process whose peak resident memory is
measured.  From each record, per sampler run:

* set-up seconds, what the run pays before its first kept draw: for one sampler, the sampling stage's wall time
  less its measured sampling (compilation and warm-up); for a flow or WIRG run, the data and training or
  fitting stages as well (a WIRG card's data stage also draws the reference ensemble, so it is an upper bound);
* NUTS's (or NeuTra's) target acceptance, where the run has one;
* ESS bulk and tail of |m|, m^2 and the energy density e (ArviZ), and the seconds of sampling they took;
* the worst |z| of the run's figures against an exact or independent value, and of its |m|, m^2 and e against
  the cluster run on the same model and lattice (:func:`with_cluster_checks`), an independent algorithm that
  ``benchmarks/cluster_check.py`` checks against HMC;
* seconds to 10^3, 10^4 and 10^5 independent samples of |m|: set-up + N / (ESS of |m| per second of sampling);
* that time for 10^4 samples over the cluster sampler's and NUTS's on the same model and lattice, where the
  recipes hold them; the fastest sound run of each (:func:`fastest_runs`), so NUTS at its best target acceptance of
  those the recipes try.

Each finished recipe is kept in ``WORK`` until the record is written: ``--resume`` after a kill reruns only the
recipes not yet finished, and keeps a finished one only if it ran this (clean) commit on this machine.

    python benchmarks/samplers.py                    # RECIPES, the record's; writes results/current/samplers/
    python benchmarks/samplers.py --resume           # the same after a kill, from the recipes already finished
    python benchmarks/samplers.py phi4_wirg ising_dual_tc_L8          # any recipes given
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from record import fresh_current  # benchmarks/record.py

from rgppl.record import figure, provenance, read_record, write_record
from rgppl.report import markdown_table

CARDS = Path("benchmarks/cards")  # run from the repository root
WORK = Path("benchmarks/results/work/samplers")  # the finished recipes of a run not yet recorded (git ignores it)
RECIPES = (  # phi^4 in hopping form at beta = 0.68, then the continuous Ising dual at T_c, by side
    *(str(CARDS / f"samplers_{sampler}_L16.toml") for sampler in ("nuts", "cluster")),
    "phi4_hopping_neuralrg_L16",
    str(CARDS / "samplers_nuts_L32.toml"),
    "phi4_hopping_cluster_L32",
    "phi4_hopping_neuralrg_L32",
    "phi4_wirg",
    *(str(CARDS / f"samplers_{sampler}_L64.toml") for sampler in ("nuts", "cluster")),
    str(CARDS / "phi4_wirg_L64.toml"),
    *(str(CARDS / f"{card}_L128.toml") for card in ("samplers_cluster", "phi4_wirg")),
    "ising_dual_tc_L8",
    str(CARDS / "samplers_cluster_ising_L8.toml"),
    "ising_dual_neuralrg_L8",
    *(
        recipe
        for L in (16, 32)
        for recipe in (
            *(str(CARDS / f"samplers_{sampler}_ising_L{L}.toml") for sampler in ("nuts", "cluster")),
            f"ising_dual_neuralrg_L{L}",
        )
    ),
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


def run_measured(card: str, work: Path) -> tuple[Path, float, float]:
    """Run ``card`` into ``work`` in a child process; its results directory, peak memory in GiB and wall seconds
    (the process's whole life: imports, compilation, every stage), also kept in ``measured.json`` beside its
    record, which marks the recipe finished."""
    out = work / Path(card).stem
    shutil.rmtree(out, ignore_errors=True)  # what a killed run left
    out.mkdir(parents=True)
    memory = out / "maxrss"
    command = [sys.executable, "-c", CHILD, str(memory), "run", card, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"recipe {card} failed; the recipes finished before it are kept in {work}")
    measured = {"peak_memory_gib": int(memory.read_text()) / 2**20, "wall_s": time.perf_counter() - start}
    (out / "measured.json").write_text(json.dumps(measured))
    return out, measured["peak_memory_gib"], measured["wall_s"]


def finished(card: str, work: Path, here: dict) -> tuple[Path, float, float] | None:
    """What :func:`run_measured` returned for ``card`` in ``work``, if it finished there on this machine from this
    clean commit (``here``, :func:`rgppl.record.provenance`); else None."""
    out = work / Path(card).stem
    if not (out / "measured.json").exists():
        return None
    source = read_record(out)["provenance"]
    if here["commit"] is None or here["dirty"] or source["dirty"]:
        return None
    if (source["commit"], source["machine"]) != (here["commit"], here["machine"]):
        return None
    measured = json.loads((out / "measured.json").read_text())
    return out, measured["peak_memory_gib"], measured["wall_s"]


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
            row[f"mean_{name}"] = mine[name]["value"] if name in mine else None
            row[f"stderr_{name}"] = mine[name]["stderr"] if name in mine else None
        row["ess_per_s_abs_m"] = rate
        for n in TARGETS:
            row[f"seconds_to_{n}"] = setup + n / rate
        out.append(row)
    return out


def with_cluster_checks(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``worst_abs_z_vs_cluster``: of each run but the cluster sampler's, the worst
    ``|z| = |x - x_c| / sqrt(s^2 + s_c^2)`` of |m|, m^2 and e (means ``x`` with ArviZ's MCSE ``s``) against the
    cluster run on the same model and lattice, where there is one: an independent algorithm, itself checked against
    HMC (``benchmarks/cluster_check.py``) and against exact values where they are known."""
    cluster = table[table["sampler"] == "cluster"].set_index(["model", "L"])
    worst = []
    for row in table.to_dict("records"):
        key = (row["model"], row["L"])
        if row["sampler"] == "cluster" or key not in cluster.index:
            worst.append(None)
            continue
        theirs = cluster.loc[key]
        z = [
            abs(row[f"mean_{name}"] - theirs[f"mean_{name}"])
            / (row[f"stderr_{name}"] ** 2 + theirs[f"stderr_{name}"] ** 2) ** 0.5
            for name in OBSERVABLES
            if pd.notna(row[f"mean_{name}"]) and pd.notna(theirs[f"mean_{name}"])
        ]
        worst.append(max(z) if z else None)
    return table.assign(worst_abs_z_vs_cluster=worst)


def worst_z(table: pd.DataFrame) -> pd.Series:
    """Each run's worst |z| of all its checks (exact or independent values, and the cluster run), 0 if it has none."""
    checks = [column for column in ("worst_abs_z", "worst_abs_z_vs_cluster") if column in table]
    return table[checks].astype(float).max(axis=1).fillna(0.0)


def fastest_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The run of each sampler, model and lattice that reaches 10^4 samples first of those that are sound (worst
    |z| of :func:`worst_z` below ``SOUND_Z``), or of all its runs if none is: a faster run whose draws miss an
    exact or independent value (NUTS at a low target acceptance, whose ESS overstates what its draws hold) is no
    baseline."""
    target = f"seconds_to_{TARGETS[1]}"
    unsound = worst_z(table) >= SOUND_Z
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
    parser.add_argument("--resume", action="store_true", help=f"keep the recipes a killed run finished in {WORK}")
    args = parser.parse_args()
    if not args.resume:
        shutil.rmtree(WORK, ignore_errors=True)
    here, found, walls, dates = provenance(), [], {}, {}
    for number, recipe in enumerate(args.recipes, 1):
        kept = finished(recipe, WORK, here) if args.resume else None
        print(f"[{number}/{len(args.recipes)}] {recipe}" + (" (finished before)" if kept else ""), flush=True)
        out, memory, walls[Path(recipe).stem] = kept or run_measured(recipe, WORK)
        record = read_record(out)
        dates[Path(recipe).stem] = record["provenance"]["date"]
        found += rows(Path(recipe).stem, record, memory)
    checked = with_cluster_checks(pd.DataFrame(found))
    table = with_ratios(checked.copy())
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
        details={"table": checked.to_dict("records"), "recipe_wall_s": walls, "recipe_dates": dates},
    )
    shutil.rmtree(WORK)  # recorded: the runs' fields are not kept
    shown = table.set_index(["model", "L", "sampler"])[
        [
            "target_accept",
            "setup_s",
            "ess_per_s_abs_m",
            *[f"seconds_to_{n}" for n in TARGETS],
            "speedup_over_cluster",
            "speedup_over_nuts",
            "worst_abs_z",
            "worst_abs_z_vs_cluster",
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
