"""The record's provenance, its figures, and the atomic writer and fingerprint every file of a run goes through."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rgppl
from rgppl.record import figure, find_figure, provenance, table_figures
from rgppl.storage import atomic_write, atomic_write_text, fingerprint


def test_provenance_names_the_commit_that_ran_the_versions_and_the_machine():
    found = provenance()
    source = Path(rgppl.__file__).parent
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "record.py"], cwd=source, capture_output=True)
    if tracked.returncode == 0:  # a checkout: the commit is HEAD's
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True).stdout.strip()
        assert found["commit"] == head and isinstance(found["dirty"], bool)
    else:  # an installed copy: no commit is claimed
        assert found["commit"] is None and found["dirty"] is None
    assert found["versions"]["rgppl"] == rgppl.__version__
    assert found["machine"]["cores"] >= 1 and found["machine"]["devices"][0].startswith("cpu:0")


def test_figures_carry_their_reference_and_z():
    assert figure("m2", 1.1, 0.05, reference=1.0)["z"] == pytest.approx(2.0)
    assert figure("m2", 1.1, None, reference=1.0)["z"] is None  # no error bar, no z
    assert figure("x", float("nan"))["value"] is None  # JSON has no NaN
    table = pd.DataFrame(
        {"mean": [0.5, 0.7], "mcse": [0.1, 0.1], "ess_bulk": [100.0, 200.0], "exact": [0.4, np.nan]},
        index=pd.MultiIndex.from_tuples([("m2", "nuts"), ("m2", "mis")], names=["observable", "run"]),
    )
    record = {"figures": table_figures(table)}
    assert find_figure(record, "m2", "nuts")["z"] == pytest.approx(1.0)
    assert find_figure(record, "m2", "mis")["reference"] is None and find_figure(record, "m2", "mis")["ess_bulk"] == 200
    with pytest.raises(KeyError, match="m2"):
        find_figure(record, "m4")


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = atomic_write_text(tmp_path / "summary.md", "old")

    def fails_halfway(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, fails_halfway)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]
    atomic_write(tmp_path / "a.npz", lambda tmp: np.savez(tmp, x=np.arange(3)))  # writers that append suffixes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "summary.md"]


def test_fingerprints_tell_arrays_and_settings_apart():
    a = np.arange(6, dtype=np.float32)
    assert fingerprint(a) == fingerprint(a.copy()) != fingerprint(a + 1)
    assert fingerprint({"x": 1, "y": 2}) == fingerprint({"y": 2, "x": 1}) != fingerprint({"x": 1, "y": 3})
