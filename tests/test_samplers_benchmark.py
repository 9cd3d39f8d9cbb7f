"""The samplers benchmark's checks against the cluster run, and what it keeps of a killed run
(``benchmarks/samplers.py``)."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from rgppl.record import provenance, write_record

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))  # the scripts import each other from there
from samplers import SOUND_Z, fastest_runs, finished, with_cluster_checks  # noqa: E402


def _run(sampler, seconds, abs_m, stderr, worst_abs_z=None):
    """A row of the benchmark's table: only |m| measured (m^2 and e not)."""
    return {
        "model": "phi4_hopping",
        "L": 16,
        "sampler": sampler,
        "seconds_to_10000": seconds,
        "worst_abs_z": worst_abs_z,
        **{f"mean_{name}": None for name in ("m2", "e")},
        **{f"stderr_{name}": None for name in ("m2", "e")},
        "mean_abs_m": abs_m,
        "stderr_abs_m": stderr,
    }


def test_each_run_is_checked_against_the_cluster_run_and_a_biased_one_is_no_baseline():
    runs = pd.DataFrame(
        [
            _run("cluster", 50.0, 1.00, 0.003),
            _run("nuts", 20.0, 1.05, 0.004),  # faster, but 5 % off the cluster run: z = 0.05 / 0.005 = 10
            _run("nuts", 60.0, 1.002, 0.004),  # z = 0.4
        ]
    )
    checked = with_cluster_checks(runs)
    assert checked["worst_abs_z_vs_cluster"].tolist()[1:] == pytest.approx([10.0, 0.4])
    assert pd.isna(checked["worst_abs_z_vs_cluster"][0])  # the cluster run is the reference, not checked here
    chosen = fastest_runs(checked).set_index("sampler")["seconds_to_10000"]
    assert chosen["nuts"] == 60.0 and chosen["cluster"] == 50.0
    assert SOUND_Z < 10.0


def _finished_run(work: Path, recipe: str, **changed) -> dict:
    """A recipe's run in ``work`` as :func:`samplers.run_measured` leaves it, its provenance ``changed``; returns
    the provenance of this process (clean)."""
    out = work / recipe
    out.mkdir()
    write_record(out, job="sample", card={"name": recipe}, stages={}, figures=[])
    record = json.loads((out / "record.json").read_text())
    here = {**record["provenance"], "commit": "a" * 40, "dirty": False}
    record["provenance"] = {**here, **changed}
    (out / "record.json").write_text(json.dumps(record))
    (out / "measured.json").write_text(json.dumps({"peak_memory_gib": 1.5, "wall_s": 12.0}))
    return here


def test_a_resumed_run_keeps_only_the_recipes_finished_by_this_clean_commit_on_this_machine(tmp_path):
    here = _finished_run(tmp_path, "mine")
    assert finished("cards/mine.toml", tmp_path, here) == (tmp_path / "mine", 1.5, 12.0)
    assert finished("cards/never_run.toml", tmp_path, here) is None
    _finished_run(tmp_path, "older", commit="b" * 40)
    assert finished("older", tmp_path, here) is None
    _finished_run(tmp_path, "elsewhere", machine={**here["machine"], "cpu": "another CPU"})
    assert finished("elsewhere", tmp_path, here) is None
    _finished_run(tmp_path, "edited", dirty=True)
    assert finished("edited", tmp_path, here) is None
    assert finished("mine", tmp_path, {**here, "dirty": True}) is None  # this checkout has changes
    assert set(provenance()) >= set(here)  # the fields compared are the ones a record holds
