"""A flow card's samplers against an independent reference run of the same model, from their two records.

For each observable, each sampler run of the first record (MIS, NeuTra, NUTS) against the reference record's
run (a cluster-sampler card): both means with their MCSEs and ``z = (mean - reference) / hypot(mcse, mcse_ref)``.

    python benchmarks/against_reference.py results/current/phi4_qft_neuralrg_L32 results/current/phi4_qft_cluster_L32
"""

import argparse
import math

from rgppl.record import find_figure, read_record

OBSERVABLES = ("abs_m", "m2", "e", "chi", "binder")


def table(flow: dict, reference: dict) -> str:
    """The markdown table: one row per observable, one column per sampler run of ``flow``."""
    runs = sorted({entry["run"] for entry in flow["figures"] if entry.get("run")})
    (reference_run,) = {entry["run"] for entry in reference["figures"] if entry.get("run")}
    lines = [
        f"| observable | {reference_run} | " + " | ".join(f"{run} (z)" for run in runs) + " |",
        "|---" * (len(runs) + 2) + "|",
    ]
    for name in OBSERVABLES:
        ref = find_figure(reference, name, reference_run)
        cells = []
        for run in runs:
            ours = find_figure(flow, name, run)
            z = (ours["value"] - ref["value"]) / math.hypot(ours["stderr"], ref["stderr"])
            cells.append(f"{ours['value']:.5g} ± {ours['stderr']:.2g} ({z:+.1f})")
        lines.append(f"| {name} | {ref['value']:.5g} ± {ref['stderr']:.2g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flow", help="results directory of the flow card's run")
    parser.add_argument("reference", help="results directory of the reference run")
    args = parser.parse_args()
    print(table(read_record(args.flow), read_record(args.reference)))
