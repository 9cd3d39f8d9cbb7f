"""A card run by two ``jax.distributed`` processes on localhost, one CPU device each (Gloo collectives), into one
output directory as on a cluster's shared filesystem: the same draws as one process, each process writing its own
shards of the checkpoint, the results reported by process 0 only, and a resume that both processes take up."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from rgppl.record import read_record
from tests.test_cards import NEURALRG, WIRG

CARD = """
name = "two_processes"
[lattice]
shape = 8
[hamiltonian]
preset = "phi4_hopping"
beta = 0.68
[run]
sampler = "cluster"
seed = 5
[cluster]
chains = 8
warmup = 20
samples = {samples}
checkpoint_every = 20
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def rgppl(*args, env=None) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from rgppl.cli import main; sys.exit(main(sys.argv[1:]))", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def in_two_processes(card, out, *extra) -> list[str]:
    """Run ``card`` as processes 0 and 1 of one distributed run into ``out``; return what each printed."""
    port = free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
            "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(rank),
        }
        processes.append(rgppl("run", str(card), "--out", str(out), "--quiet", *extra, env=env))
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        outputs.append(output)
    return outputs


def draws(out):
    tree = xr.open_datatree(out / "posterior.nc")
    return tree.posterior.phi.values, tree.attrs["devices"]


def test_two_processes_share_the_chains_write_from_process_0_and_resume_together_with_one_process_draws(tmp_path):
    card = tmp_path / "card.toml"
    card.write_text(CARD.format(samples=40))
    single = rgppl("run", str(card), "--out", str(tmp_path / "single"), "--quiet", env=os.environ)
    assert single.wait(timeout=300) == 0
    shared = tmp_path / "shared"
    card.write_text(CARD.format(samples=20))
    printed = in_two_processes(card, shared)
    assert "wrote" in printed[0] and "wrote" not in printed[1]  # process 0 writes the results and reports them
    (step,) = (shared / "checkpoint").iterdir()  # each process wrote its own chains' shards of the state
    assert {p.name for p in (step / "state").glob("ocdbt.process_*")} == {"ocdbt.process_0", "ocdbt.process_1"}
    card.write_text(CARD.format(samples=40))  # the finished run extended: both read the checkpoint
    in_two_processes(card, shared, "--resume")
    phi, devices = draws(shared)
    reference, one = draws(tmp_path / "single")
    assert (devices, one) == (2, 1)  # the chains were split over the two processes' devices
    np.testing.assert_array_equal(phi, reference)


@pytest.mark.slow
@pytest.mark.parametrize("card", [WIRG.replace("shape = [4, 4]", "shape = [8, 8]"), NEURALRG], ids=["wirg", "neuralrg"])
def test_a_wirg_and_a_neuralrg_card_run_in_two_processes(tmp_path, monkeypatch, card):
    """Every stage of the two other jobs (the reference ensemble, the fit, the generator; training, free energy,
    MIS, NeuTra and NUTS) on two processes: the run finishes and process 0 writes its record."""
    monkeypatch.chdir(tmp_path)  # the reference ensembles are cached under ./results/ensembles
    path = tmp_path / "card.toml"
    path.write_text(card)
    in_two_processes(path, tmp_path / "run")
    assert read_record(tmp_path / "run")["card"]["run"]["sampler"] in ("wirg", "neuralrg")
