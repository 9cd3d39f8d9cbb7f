"""Throughput against the number of devices: the cluster sampler, NUTS, flow training and the WIRG fit and
generator on a mesh of 1, 2 and 4 devices (:mod:`rgppl.mesh`).

Each layout runs in a fresh process with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``.  Emulated CPU
devices share this machine's cores, so on a CPU the figure is the mesh's overhead, not a speed-up; on a
multi-GPU node the same command measures the speed-up.  Every workload has a fixed seed and is timed whole
(compilation included, as a user waits for it), with the time of its sampling or training stage beside it:

* ``cluster``: phi^4 hopping at beta = 0.68, L = 32, 16 chains, 100 warm-up and 200 kept sweeps;
* ``nuts``: the same model at L = 16, 8 chains, 100 warm-up and 100 kept draws;
* ``training``: a NeuralRG flow on the Ising dual at T_c, L = 8, 100 steps of batch 256;
* ``wirg_fit`` and ``wirg_generate``: a fit on 1024 free-field fields at L = 32, then 512 generated fields.
* ``checkpoint``: the cluster workload with an Orbax checkpoint every 20 draws (15 of them, the state sharded over
  the devices; ``checkpoint_seconds = 0``), compiled beforehand; its stage is its wall time less that of the same
  run without checkpoints.

    python benchmarks/scaling.py            # writes benchmarks/results/current/scaling/ (record and page)
    python benchmarks/scaling.py --devices 1 2 4 8
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial

import jax
import numpy as np
import pandas as pd
from index import publish  # benchmarks/index.py, beside this script
from record import fresh_current  # benchmarks/record.py

from rgppl import (
    WIRG,
    ClusterSettings,
    FitSettings,
    FlowSettings,
    GeneratorSettings,
    NUTSSettings,
    SVISettings,
    fit_wirg,
    ising_dual,
    phi4_hopping,
    sample,
    train_flow,
)
from rgppl.exact import free_field_spectrum, sample_gaussian_field
from rgppl.record import figure, write_record
from rgppl.report import markdown_table

UNITS = {
    "cluster": "draws",
    "nuts": "draws",
    "training": "flow draws",
    "wirg_fit": "fields",
    "wirg_generate": "fields",
    "checkpoint": "checkpoints",
}


def workloads() -> dict:
    """``{name: {units, wall_s, stage_s, devices}}`` of every workload on this process's devices."""
    results = {}

    def timed(name, run, units, stage):
        start = time.perf_counter()
        out = run()
        wall = time.perf_counter() - start
        seconds, devices = stage(out)
        results[name] = {"units": units, "wall_s": wall, "stage_s": seconds, "devices": devices}
        return out

    mesh = len(jax.devices())  # training and the fit reduce over the whole mesh
    from_attrs = lambda dt: (dt.attrs["sampling_time_s"], dt.attrs["devices"])  # noqa: E731
    chains = (
        ("cluster", phi4_hopping(32), ClusterSettings(chains=16, warmup=100, samples=200)),
        ("nuts", phi4_hopping(16), NUTSSettings(chains=8, warmup=100, samples=100)),
    )
    for name, hamiltonian, settings in chains:
        run = partial(sample, hamiltonian, settings, seed=0, progress=False)
        timed(name, run, settings.chains * settings.samples, from_attrs)
    checkpointed = replace(chains[0][2], checkpoint_every=20)
    run = partial(sample, chains[0][1], checkpointed, seed=0, checkpoint_seconds=0, progress=False)
    run()  # compiled for chunks of 20 draws; with a checkpoint after each
    start = time.perf_counter()
    run()
    without = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        dt = run(checkpoint=f"{scratch}/checkpoint")
        wall = time.perf_counter() - start
    saves = (checkpointed.warmup + checkpointed.samples) // checkpointed.checkpoint_every
    results["checkpoint"] = {"units": saves, "wall_s": wall, "stage_s": wall - without, "devices": dt.attrs["devices"]}
    svi = SVISettings(steps=100, batch=256, report_every=50, checkpoint_every=100)
    timed(
        "training",
        lambda: train_flow(ising_dual(8), FlowSettings(), svi, seed=0, progress=False),
        svi.steps * svi.batch,
        lambda trained: (trained.training_time_s, mesh),
    )
    data = np.asarray(sample_gaussian_field(jax.random.PRNGKey(0), free_field_spectrum((32, 32), 0.5), (1024,)))
    model = timed(
        "wirg_fit",
        lambda: fit_wirg(data, FitSettings(radius=1, potentials=4), progress=False),
        len(data),
        lambda model: (sum(scale.report["time_s"] for scale in model.scales), mesh),
    )
    generator = GeneratorSettings(samples=512)
    timed(
        "wirg_generate",
        partial(sample, None, WIRG(model, generator), seed=0, progress=False),
        generator.samples,
        from_attrs,
    )
    return results


def on_devices(n: int) -> dict:
    """:func:`workloads` in a fresh process with ``n`` emulated host devices (on a GPU node: its GPUs)."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
    done = subprocess.run([sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run on {n} devices failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4], help="device counts to run on")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(workloads()))
        return
    start = time.perf_counter()
    rows = [
        {"workload": name, "devices_asked": n, **result} for n in args.devices for name, result in on_devices(n).items()
    ]
    table = pd.DataFrame(rows)
    table["unit"] = table["workload"].map(UNITS)
    table["per_s"] = table["units"] / table["stage_s"]
    one = table[table["devices_asked"] == args.devices[0]].set_index("workload")
    table["throughput_ratio"] = table["per_s"] / table["workload"].map(one["per_s"])
    table["wall_ratio"] = table["workload"].map(one["wall_s"]) / table["wall_s"]
    out = fresh_current("scaling")
    figures = [
        figure(f"{row['workload']}/{column}_{row['devices_asked']}", row[column], run=row["workload"])
        for row in table.to_dict("records")
        for column in ("per_s", "throughput_ratio", "wall_s", "wall_ratio")
    ]
    card = {
        "name": "scaling",
        "description": __doc__.split("\n\n")[0],
        "lattice": {"shape": [32, 32]},
        "hamiltonian": None,
        "run": {"sampler": "cluster", "seed": 0, "output": str(out)},  # the first workload
        "devices": args.devices,
    }
    write_record(
        out,
        job="benchmark",
        card=card,
        stages={"sampling": time.perf_counter() - start},
        figures=figures,
        details={"table": rows},
    )
    shown = table.set_index(["workload", "devices_asked"])[
        ["devices", "unit", "per_s", "throughput_ratio", "stage_s", "wall_s", "wall_ratio"]
    ]
    publish(
        out,
        "# Throughput against the number of devices\n\n"
        "`devices`: how many devices the batch was split over (read from the arrays; the mesh's size for "
        "training and the fit). `per_s`: units per second of the sampling, training or fitting stage; "
        "`throughput_ratio` against the first layout. `wall_s`: the whole call, compilation included.\n\n"
        + markdown_table(shown)
        + "\n",
    )


if __name__ == "__main__":
    main()
