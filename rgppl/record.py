"""The record of a run: one ``record.json`` in one schema, with the provenance that makes a figure reproducible.

Every ``rgppl run`` writes ``record.json`` beside its results.  Its schema is
``rgppl/schemas/record.schema.json`` (JSON Schema 2020-12; :func:`schema`), and it holds

* ``card``: the resolved card, every setting with its default filled in (:meth:`rgppl.cards.Card.resolved`);
* ``provenance``: the git commit of the rgppl source that ran and whether it had uncommitted changes, the
  versions of Python, jax, jaxlib, numpyro, arviz and rgppl, the machine (CPU model, cores, memory, JAX
  devices) and the date (UTC);
* ``stages``: the wall time of each stage in seconds (``data``, ``training`` or ``fitting``, ``sampling``,
  ``evaluation``; only those the job has);
* ``figures``: every figure the run printed, each with its standard error and, where known, the exact or
  reference value it is judged against and ``z = (value - reference) / stderr`` (:func:`table_figures`);
* ``details``: what a job reports beyond figures (per-scale tables, training monitors, ...).

A figure is a recipe plus a commit: the record carries both.
"""

import json
import math
import os
import platform
import subprocess
import time
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from rgppl.storage import atomic_write_text

RECORD = "record.json"
SCHEMA_ID = "rgppl.record/1"
VERSIONED = ("jax", "jaxlib", "numpyro", "arviz", "rgppl")


@cache
def schema() -> dict:
    """The record's JSON Schema, shipped with the package."""
    return json.loads((Path(__file__).parent / "schemas" / "record.schema.json").read_text(encoding="utf-8"))


def _git(*args: str) -> str | None:
    """``git args`` in the directory of the rgppl source that is running (None outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


RESULTS = "benchmarks/results"  # recorded results, not code: a change there leaves the checkout clean


def provenance() -> dict:
    """Commit, versions, machine and date of the process that is running (see the module docstring)."""
    import jax  # the devices are the ones this run used; importing jax is the caller's cost already

    tracked = _git("ls-files", "--error-unmatch", Path(__file__).name)  # not an installed copy inside some repo
    commit = _git("rev-parse", "HEAD") if tracked else None
    status = (
        _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", f":(top,exclude){RESULTS}")
        if commit
        else None
    )
    return {
        "commit": commit,
        "dirty": None if status is None else status != "",
        "versions": {"python": platform.python_version(), **{name: metadata.version(name) for name in VERSIONED}},
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "platform": platform.platform(),
            "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()],
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class Stopwatch:
    """Wall time per stage: ``with clock.stage("training"): ...``; a stage entered twice adds up."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        """Time the ``with`` block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _number(value):
    """A finite float, or None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def figure(
    name: str,
    value,
    stderr=None,
    *,
    reference=None,
    reference_source: str | None = None,
    run: str | None = None,
    z=None,
    **extra,
) -> dict:
    """One figure: ``value ± stderr``, judged against ``reference`` (from ``reference_source``) by
    ``z = (value - reference) / stderr`` where both are known, or by the ``z`` given (a comparison whose
    reference has its own error); ``extra`` numbers (ESS, R-hat, ...) ride along."""
    value, stderr, reference, z = _number(value), _number(stderr), _number(reference), _number(z)
    if z is None and None not in (value, stderr, reference) and stderr > 0:
        z = (value - reference) / stderr
    entry = {"name": name, "value": value, "stderr": stderr, "reference": reference, "z": z}
    if run is not None:
        entry["run"] = run
    if reference is not None:
        entry["reference_source"] = reference_source or "exact"
    return {**entry, **{key: _number(v) for key, v in extra.items()}}


TABLE_COLUMNS = {"mean": "value", "mcse_mean": "stderr", "mcse": "stderr", "exact": "reference"}


def table_figures(table: pd.DataFrame, run: str | None = None) -> list[dict]:
    """The rows of a :func:`rgppl.diagnostics.summary` table (one run) or a :func:`~rgppl.diagnostics.compare`
    table (index ``(observable, run)``) as figures, the exact value as their reference."""
    figures = []
    for index, row in table.iterrows():
        name, label = index if isinstance(index, tuple) else (index, run)
        values = {TABLE_COLUMNS.get(column, column): row[column] for column in table.columns if column != "z"}
        figures.append(
            figure(
                name,
                values.pop("value"),
                values.pop("stderr", None),
                reference=values.pop("reference", None),
                run=label,
                **values,
            )
        )
    return figures


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return _json_ready(value.tolist())
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_record(out, *, job: str, card: dict, stages: dict, figures: list[dict], details: dict | None = None) -> dict:
    """Write ``out/record.json`` atomically and return it."""
    record = _json_ready(
        {
            "schema": SCHEMA_ID,
            "job": job,
            "card": card,
            "provenance": provenance(),
            "stages": {name: seconds for name, seconds in stages.items()},
            "figures": figures,
            "details": details or {},
        }
    )
    atomic_write_text(Path(out) / RECORD, json.dumps(record, indent=2) + "\n")
    return record


def read_record(path) -> dict:
    """The record at ``path`` (a ``record.json`` or the run directory holding it)."""
    path = Path(path)
    return json.loads((path / RECORD if path.is_dir() else path).read_text(encoding="utf-8"))


def find_figure(record: dict, name: str, run: str | None = None) -> dict:
    """The figure called ``name`` (of ``run``, where the record has several runs); a KeyError names what exists."""
    for entry in record["figures"]:
        if entry["name"] == name and (run is None or entry.get("run") == run):
            return entry
    known = sorted({(entry["name"], entry.get("run")) for entry in record["figures"]}, key=str)
    raise KeyError(f"no figure {name!r}" + (f" of run {run!r}" if run else "") + f"; the record has {known}")
