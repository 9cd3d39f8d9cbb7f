"""kill -9 in the middle of a run, then ``--resume``: the draws equal an uninterrupted run's, bit for bit.

Each case starts ``rgppl run`` in a subprocess, waits until its checkpoint holds the stage named, sends SIGKILL,
resumes in-process, and compares the result with a run that was never interrupted.  Slow: a minute or two each.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rgppl import checkpoints
from rgppl.cli import main

pytestmark = pytest.mark.slow

HEAD = (  # a checkpoint every checkpoint_every units, so that the kill falls inside the stage
    'name = "killed"\n[lattice]\nshape = [{L}, {L}]\n[hamiltonian]\npreset = "{preset}"\n'
    '[run]\nsampler = "{sampler}"\ncheckpoint_seconds = 0\n'
)
# stage: (card, checkpoint the stage writes, the phase (index) it has reached when the kill comes, the draws compared)
CASES = {
    "nuts warm-up": (
        HEAD.format(L=8, preset="phi4_hopping", sampler="nuts")
        + "[nuts]\nchains = 2\nwarmup = 3000\nsamples = 100\ncheckpoint_every = 50\n",
        "checkpoint",
        0,
        "posterior.nc",
    ),
    "nuts sampling": (
        HEAD.format(L=8, preset="phi4_hopping", sampler="nuts")
        + "[nuts]\nchains = 2\nwarmup = 100\nsamples = 3000\ncheckpoint_every = 50\n",
        "checkpoint",
        1,
        "posterior.nc",
    ),
    "flow training": (
        HEAD.format(L=4, preset="free_field", sampler="neuralrg")
        + "[flow]\nwidth = 8\ncouplings = 2\n[svi]\nsteps = 3000\nbatch = 32\ncheckpoint_every = 50\n"
        "[free_energy]\nsamples = 256\n[mis]\nchains = 2\nsamples = 100\n[neutra]\nchains = 2\n"
        "warmup = 20\nsamples = 20\n[nuts]\nchains = 2\nwarmup = 20\nsamples = 20\n",
        "svi_checkpoint",
        0,
        "mis/posterior.nc",
    ),
    "wirg generation": (
        HEAD.format(L=16, preset="phi4_hopping", sampler="wirg")
        + "[cluster]\nchains = 2\nwarmup = 50\nsamples = 100\nthin = 2\n[fit]\nmirror_images = true\n"
        "ml_iterations = 0\n[generator]\nsamples = 400\nwarmup = 2000\nsteps = 50\n",
        "generate_checkpoint",
        0,
        "wirg/posterior.nc",
    ),
}


def _phase(checkpoint: Path) -> int:
    """The index of the phase a checkpoint was written in (-1 while there is none)."""
    try:
        return checkpoints.saved_meta(checkpoint)["phase"]
    except (OSError, TypeError, ValueError):  # not yet there, or not yet complete
        return -1


def _phi(path: Path) -> np.ndarray:
    return xr.load_datatree(path, engine="h5netcdf").posterior["phi"].values


@pytest.mark.parametrize("stage", list(CASES))
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_draws(stage, tmp_path, monkeypatch):
    card_text, checkpoint, phase, compared = CASES[stage]
    monkeypatch.chdir(tmp_path)  # a WIRG card caches its ensembles under ./results
    card = tmp_path / "card.toml"
    card.write_text(card_text)
    assert main(["run", str(card), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "rgppl.cli", "run", str(card), "--out", str(killed), "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    deadline = time.monotonic() + 600
    while _phase(killed / checkpoint) < phase:
        assert process.poll() is None, f"the run ended before its {phase} checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / compared).exists()  # it was killed before its results
    assert main(["run", str(card), "--out", str(killed), "--resume", "--quiet"]) == 0
    np.testing.assert_array_equal(_phi(killed / compared), _phi(tmp_path / "whole" / compared))
