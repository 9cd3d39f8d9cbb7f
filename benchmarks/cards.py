"""Run every built-in model card through the ``rgppl`` command and tabulate what it measured against the
exact values (where known): mean ± MCSE, exact, z = (mean - exact)/MCSE, bulk ESS, ESS per second and per
1000 gradient evaluations.

    python benchmarks/cards.py                      # all cards in models/
    python benchmarks/cards.py ising_dual_tc_L8     # some of them
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from rgppl.cli import BUILT_IN_CARDS, main as rgppl
from rgppl.record import read_record
from rgppl.report import markdown_table

RESULTS = Path(__file__).parent / "results"
SHOWN = ("m2", "spin_m2", "spin_binder", "binder", "e", "abs_m", "chi")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cards", nargs="*", default=sorted(p.stem for p in BUILT_IN_CARDS.glob("*.toml")))
    args = parser.parse_args()
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.cards:
            out = Path(scratch) / name
            if rgppl(["run", name, "--out", str(out), "--quiet"]) != 0:
                raise SystemExit(f"card {name} failed")
            record = read_record(out)
            figures = {entry["name"]: entry for entry in record["figures"]}
            for observable in SHOWN:
                entry = figures.get(observable)
                if entry is None:
                    continue
                rows.append({
                    "card": name,
                    "observable": observable,
                    "mean": entry["value"],
                    "mcse": entry["stderr"],
                    "exact": entry["reference"],
                    "z": entry["z"],
                    "ess_bulk": entry["ess_bulk"],
                    "ess_per_s": entry["ess_per_s"],
                    "ess_per_1k_grad": entry.get("ess_per_1k_grad"),
                    "r_hat": entry["r_hat"],
                })
    table = pd.DataFrame(rows).set_index(["card", "observable"])
    text = f"{markdown_table(table)}\n\n[{len(args.cards)} cards, total {time.perf_counter() - start:.0f} s]"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cards.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
