"""Refresh the current record of recipes: run each card through ``rgppl run`` and keep what it recorded.

A recipe is a model card: a built-in one (``rgppl cards``) or a card file.  Each runs into a scratch directory;
when all have run, each run's ``record.json``, ``summary.md``, ``comparison.md``, ``fidelity.csv``, ``latents.md``,
page (``index.html``) and figures (``*.png``) become ``benchmarks/results/current/<name>/``, after the run they
replace has moved to
``benchmarks/results/archive/<name>/<date>-<commit>/``, and the index is regenerated (``benchmarks/index.py``).
Run it from a clean checkout, so that every record names the commit it ran (changes under
``benchmarks/results/`` do not make a checkout dirty: they are results, not code).

    python benchmarks/record.py phi4_wirg ising_dual_neuralrg_L8
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from index import CURRENT, write_index  # benchmarks/index.py, beside this script

from rgppl.cli import main as rgppl
from rgppl.record import Stopwatch, figure, read_record
from rgppl.wirg.fit import fit_wirg
from rgppl.wirg.sources import field_array

ARCHIVE = CURRENT.parent / "archive"
KEPT = ("record.json", "summary.md", "comparison.md", "fidelity.csv", "latents.md", "index.html", "*.png")


def archive(name: str) -> Path | None:
    """Move the current run of ``name`` under ``archive/<name>/<date>-<commit>/``; its new place, if there was one."""
    current = CURRENT / name
    if not (current / "record.json").exists():
        return None
    source = read_record(current)["provenance"]
    target = ARCHIVE / name / f"{source['date'][:10]}-{(source['commit'] or 'uncommitted')[:10]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(current, target)
    return target


def fresh_current(name: str) -> Path:
    """A new, empty ``current/<name>/`` for a benchmark's record, the run before it archived (:func:`archive`)."""
    archive(name)
    out = CURRENT / name
    out.mkdir(parents=True)
    return out


def cell_figures(table, label=str) -> list[dict]:
    """One figure per finite cell of ``table``: named ``<label(index)>/<column>``, of run ``label(index)``, with
    its standard error from the column ``<column>_stderr`` where that holds a finite value."""
    known = lambda value: value if value is not None and np.isfinite(value) else None
    return [
        figure(f"{label(index)}/{column}", value, known(row.get(f"{column}_stderr")), run=label(index))
        for index, row in table.iterrows()
        for column, value in row.items()
        if np.isfinite(value) and not column.endswith("_stderr")
    ]


def fitted_wirg(card) -> tuple:
    """A WIRG card's data and fit, made as its job makes them (:func:`rgppl.jobs.wirg.run_wirg`), without progress:
    ``(training, reference, fields, model, seconds)``, ``seconds`` the wall times of the stages ``data`` and
    ``fitting``."""
    clock = Stopwatch()
    with clock.stage("data"):
        training, reference = card.source.load(card.lattice, card.hamiltonian, card.cluster, card.seed, progress=False)
        fields = field_array(training)
    with clock.stage("fitting"):
        model = fit_wirg(fields, card.fit, seed=card.seed, progress=False)
    return training, reference, fields, model, clock.seconds


def run(card: str, scratch: Path) -> Path:
    """Run the recipe ``card`` (a built-in card's name or a card file) into ``scratch``; its results directory."""
    out = scratch / Path(card).stem
    if rgppl(["run", card, "--out", str(out), "--quiet"]) != 0:
        raise SystemExit(f"recipe {card} failed; the current records are left as they were")
    return out


def keep(out: Path) -> Path:
    """Make the run in ``out`` the current one of its recipe, the one before archived."""
    name = out.name
    archived = archive(name)
    current = CURRENT / name
    current.mkdir(parents=True)
    for pattern in KEPT:
        for path in out.glob(pattern):
            shutil.copy2(path, current / path.name)
    print(f"{name}: {current}" + (f" (the run before is in {archived})" if archived else ""))
    return current


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", help="built-in card names or card files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs = [
            run(card, Path(scratch)) for card in args.recipes
        ]  # all first: the checkout is unchanged while they run
        for out in runs:
            keep(out)
    write_index()


if __name__ == "__main__":
    main()
