"""Where the fields of a WIRG card come from: the training ensemble and an independent reference.

A ``[data]`` table of a card chooses one of three sources:

* none given: the cluster sampler of the card's Hamiltonian (``[cluster]``): training fields with seed
  ``run.seed``, the reference with seed ``run.seed + 1`` (both cached on disk);
* ``path``: a user's ensemble (``.npy``, ``.npz``, netCDF).  With a Hamiltonian the reference is still its
  cluster ensemble; without one (real maps of unknown energy) the last ``holdout`` fraction of the fields is
  kept apart as the reference and the rest trained on;
* ``surrogate = "lognormal"``: exact draws of the long-tailed surrogate of weak-lensing maps
  (:mod:`rgppl.surrogates`, parameters ``slope``, ``k0``, ``sigma``): ``fields`` to train on (seed ``run.seed``)
  and as many independent ones (seed ``run.seed + 1``) as the reference.  It has no Hamiltonian.
"""

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from rgppl.diagnostics import make_datatree
from rgppl.ensembles import load_ensemble, reference_ensemble
from rgppl.errors import require, require_integer, require_types
from rgppl.surrogates import lognormal_fields

SURROGATES = ("lognormal",)
DEFAULT_HOLDOUT = 0.25


@dataclass(frozen=True)
class DataSource:
    """The ``[data]`` table of a card: the training fields of a WIRG card (see the module docstring), and of a
    NeuralRG card's maximum-likelihood and mixed objectives (``path`` only); ``path`` is resolved by the card."""

    path: Path | None = None
    surrogate: str | None = None
    fields: int = 4000
    slope: float = 2.5
    k0: float = 0.1
    sigma: float = 0.8
    holdout: float | None = None

    def __post_init__(self):
        require_types(self, "data")
        require(
            self.path is None or self.surrogate is None,
            "data",
            "both path and surrogate",
            "give either path = 'fields.npy' (your fields) or surrogate = 'lognormal', not both",
        )
        require(
            self.surrogate is None or self.surrogate in SURROGATES,
            "data.surrogate",
            self.surrogate,
            f"valid surrogates are {list(SURROGATES)}",
        )
        require_integer("data.fields", self.fields, 4)
        for name in ("slope", "k0", "sigma"):
            value = getattr(self, name)
            require(value > 0, f"data.{name}", value, "a positive number")
        if self.holdout is not None:
            require(
                self.path is not None,
                "data.holdout",
                self.holdout,
                "a held-out reference is taken from a user's ensemble only: give data.path too",
            )
            require(
                0 < self.holdout < 1, "data.holdout", self.holdout, "a fraction strictly between 0 and 1, e.g. 0.25"
            )

    def check(self, hamiltonian) -> None:
        """Refuse combinations that leave the training data or the reference undefined."""
        if hamiltonian is None:
            require(
                self.path is not None or self.surrogate is not None,
                "hamiltonian",
                None,
                "a card without [hamiltonian] trains on data: give [data] path = 'fields.npy' or "
                "surrogate = 'lognormal'",
            )
        else:
            require(
                self.surrogate is None,
                "data.surrogate",
                self.surrogate,
                "surrogate fields have no Hamiltonian: drop the [hamiltonian] table",
            )
            require(
                self.holdout is None,
                "data.holdout",
                self.holdout,
                "with a Hamiltonian the reference is its cluster ensemble: drop data.holdout",
            )

    def load(self, lattice, hamiltonian, cluster, seed: int, *, progress: bool = True) -> tuple:
        """The training fields and the reference ensemble, both as DataTrees (``posterior.phi[chain, draw, L, L]``;
        the cluster sampler's chains are kept, so that the training fields' own ESS is known)."""
        if self.surrogate is not None:
            draw = [
                np.asarray(
                    lognormal_fields(
                        jax.random.PRNGKey(s),
                        lattice.shape[0],
                        self.fields,
                        slope=self.slope,
                        k0=self.k0,
                        sigma=self.sigma,
                    )
                )
                for s in (seed, seed + 1)
            ]
            return _independent(draw[0]), _independent(draw[1])
        if self.path is not None and hamiltonian is None:
            fields, holdout = load_ensemble(self.path, lattice), self.holdout or DEFAULT_HOLDOUT
            kept = int(round(len(fields) * (1 - holdout)))
            require(
                2 <= kept <= len(fields) - 2,
                "data.holdout",
                holdout,
                f"a fraction that leaves at least two of the {len(fields)} fields on each side",
            )
            return _independent(fields[:kept]), _independent(fields[kept:])
        if self.path is not None:
            training = _independent(load_ensemble(self.path, lattice))
        else:
            training = reference_ensemble(hamiltonian, cluster, seed=seed, progress=progress)
        return training, reference_ensemble(hamiltonian, cluster, seed=seed + 1, progress=progress)


def _independent(fields: np.ndarray):
    """A DataTree of fields taken as independent (one chain), with the observables that need no Hamiltonian."""
    return make_datatree(None, fields[None])


def field_array(dt) -> np.ndarray:
    """The fields of a DataTree as one array ``[n, L, L]`` (chains one after the other)."""
    phi = dt.posterior["phi"].values
    return phi.reshape(-1, *phi.shape[-2:])
