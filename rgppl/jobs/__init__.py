"""What a model card runs.  Each job takes a validated :class:`~rgppl.cards.Card` and an output directory,
writes its results there and returns its record (``record.json``, :mod:`rgppl.record`).  Nothing else in
rgppl knows about cards' jobs.

* ``nuts``, ``cluster``: :func:`~rgppl.jobs.sample.run_sample`;
* ``neuralrg``: :func:`~rgppl.jobs.neuralrg.run_neuralrg` (train a flow, bound the free energy, sample);
* ``wirg``: :func:`~rgppl.jobs.wirg.run_wirg` (fit scale by scale, generate, compare).
"""

from rgppl.jobs import neuralrg, sample, wirg

JOBS = {  # card sampler: (job, what it writes)
    "nuts": (sample.run_sample, sample.WRITES),
    "cluster": (sample.run_sample, sample.WRITES),
    "neuralrg": (neuralrg.run_neuralrg, neuralrg.WRITES),
    "wirg": (wirg.run_wirg, wirg.WRITES),
}

__all__ = ["JOBS"]
