"""The cost of a run at this commit against the same run at an earlier one: built-in cards run end to end with
``rgppl run CARD --quiet``, each in a fresh process, the two commits alternated pair by pair so that a drift of the
machine's speed falls on both.

The earlier commit is checked out into a temporary git worktree and run with this interpreter.  Each run's
record gives its sampling stage; the wall time is the whole process (start-up, compilation, evaluation and
checkpoints included), as a user waits for it.  The default earlier commit, ``bf273ab``, is the last before the
device mesh (:mod:`rgppl.mesh`) and the Orbax checkpoints (:mod:`rgppl.checkpoints`), so the ratio is what those
cost a one-device run.

    python benchmarks/overhead.py                       # writes benchmarks/results/current/overhead/
    python benchmarks/overhead.py --before 5cce21a --pairs 5 --cards free_field_L16
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from record import cell_figures, fresh_current  # benchmarks/record.py

from rgppl.record import write_record
from rgppl.report import markdown_table

ROOT = Path(__file__).resolve().parents[1]
CARDS = ["phi4_hopping_L16", "ising_dual_tc_L8", "phi4_hopping_cluster_L32"]


def timed_run(source: Path, card: str, out: Path) -> dict:
    """``rgppl run card`` with the package at ``source``: its wall time and its record's sampling stage."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rgppl.cli", "run", card, "--out", str(out), "--quiet"],
        cwd=out.parent,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    record = json.loads((out / "record.json").read_text())
    return {"wall_s": wall, "sampling_s": record["stages"]["sampling"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="bf273ab", help="the earlier commit")
    parser.add_argument("--cards", nargs="+", default=CARDS, help="built-in cards to run")
    parser.add_argument("--pairs", type=int, default=5, help="runs of each card at each commit")
    args = parser.parse_args()
    before = subprocess.run(
        ["git", "rev-parse", args.before], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    start, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as scratch:
        earlier = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(earlier), before], cwd=ROOT, check=True)
        try:
            for card in args.cards:
                for pair in range(args.pairs):
                    for commit, source in (("before", earlier), ("now", ROOT)):
                        out = Path(scratch) / f"{card}-{commit}-{pair}"
                        rows.append({"card": card, "commit": commit, "pair": pair, **timed_run(source, card, out)})
                        print(rows[-1], flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)], cwd=ROOT, check=True)
    runs = pd.DataFrame(rows)
    paired = runs.pivot_table(index=["card", "pair"], columns="commit", values=["wall_s", "sampling_s"])
    table = pd.DataFrame(
        {
            f"{stage}_{commit}": paired[(stage, commit)].groupby("card").median()
            for stage in ("wall_s", "sampling_s")
            for commit in ("before", "now")
        }
    )
    for stage in ("wall_s", "sampling_s"):  # the median of the pairs' ratios: now / before
        ratio = (paired[(stage, "now")] / paired[(stage, "before")]).groupby("card")
        table[f"{stage}_ratio"], table[f"{stage}_ratio_min"] = ratio.median(), ratio.min()
        table[f"{stage}_ratio_max"] = ratio.max()
    pooled = {  # every pair of every card: the geometric mean of now / before, with its standard error
        stage: np.log(paired[(stage, "now")] / paired[(stage, "before")]) for stage in ("wall_s", "sampling_s")
    }
    for stage in pooled:
        table[f"{stage}_ratio_stderr"] = np.nan  # known for the pooled row only
    table.loc["all_cards"] = {
        **{f"{stage}_ratio": np.exp(logs.mean()) for stage, logs in pooled.items()},
        **{
            f"{stage}_ratio_stderr": np.exp(logs.mean()) * logs.std(ddof=1) / np.sqrt(len(logs))
            for stage, logs in pooled.items()
        },
    }
    out = fresh_current("overhead")
    figures = cell_figures(table)
    write_record(
        out,
        job="benchmark",
        card={
            "name": "overhead",
            "description": __doc__.split("\n\n")[0],
            "lattice": {"shape": [16, 16]},
            "hamiltonian": None,
            "run": {"sampler": "nuts", "seed": 0, "output": str(out)},  # the first card's
            "before": before,
            "cards": args.cards,
            "pairs": args.pairs,
        },
        stages={"sampling": time.perf_counter() - start},
        figures=figures,
        details={"runs": rows},
    )
    shown = table[
        ["wall_s_before", "wall_s_now", "wall_s_ratio", "sampling_s_before", "sampling_s_now", "sampling_s_ratio"]
    ]
    publish(
        out,
        f"# A run now against the same run at {before[:7]}\n\n"
        f"Each built-in card run end to end {args.pairs} times at each commit, alternated. `wall_s`: the whole "
        "process, median; `sampling_s`: the record's sampling stage, median; `ratio`: now / before, the median of "
        "the pairs' ratios; `all_cards`: the geometric mean of every pair's ratio, ± its standard error in the "
        "record.\n\n" + markdown_table(shown) + "\n",
    )


if __name__ == "__main__":
    main()
