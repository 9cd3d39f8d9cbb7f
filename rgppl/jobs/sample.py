"""The sampling job of a model card: one sampler (``nuts`` or ``cluster``) on the card's Hamiltonian.

``rgppl run CARD`` with ``sampler = "nuts"`` or ``"cluster"`` samples with checkpoints after every chunk
(the Orbax directory ``checkpoint``; ``--resume`` continues it), then writes the DataTree (``posterior.nc``),
the summary against the exact values where known (``summary.md/csv``), the figures and ``record.json``.
"""

from rgppl.ensembles import run_cluster
from rgppl.exact import exact_observables
from rgppl.mcmc import run_nuts
from rgppl.record import Stopwatch, table_figures, write_record
from rgppl.report import CHECKPOINT, run_cost, write_run

SAMPLERS = {"nuts": (run_nuts, "nuts"), "cluster": (run_cluster, "cluster")}  # sampler: (run, its card section)
WRITES = "posterior.nc, summary.md, summary.csv, trace.png, distributions.png, fields.png, record.json"


def run_sample(card, out, *, resume: bool = False, progress: bool = True) -> dict:
    """Run the card's sampler into ``out``; return the record (also ``record.json``)."""
    h, clock = card.hamiltonian, Stopwatch()
    sampler, section = SAMPLERS[card.sampler]
    with clock.stage("sampling"):
        dt = sampler(
            h, getattr(card, section), seed=card.seed, checkpoint=out / CHECKPOINT, resume=resume, progress=progress
        )
    with clock.stage("evaluation"):
        exact = exact_observables(h)
        table = write_run(
            dt, out, exact=exact, name=card.name, description=card.description, spectrum=h.quadratic_spectrum()
        )
    return write_record(
        out,
        job="sample",
        card=card.resolved(),
        stages=clock.seconds,
        figures=table_figures(table, run=card.sampler),
        details={"cost": run_cost(dt), "exact": exact},
    )
