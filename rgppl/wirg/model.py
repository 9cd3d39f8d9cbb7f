"""A fitted wavelet conditional RG model: one energy per scale, saved and loaded as plain ``.npz`` files.

``p(phi_0) = p_J(phi_J) prod_{j=1..J} pbar_j(phibar_j | phi_j)`` (Marchand et al., PRX 13, 041038),
with every field in units of ``unit`` (the root mean square of the fitted field), so that the sigmoid centres
and the parameters are O(1) at every lattice size.  The fitted field is the data after a pointwise
``transform`` (:mod:`rgppl.wirg.transform`; the identity unless the fit asks for one).  ``scales[0]`` is
the coarsest energy ``E_J``, then the conditionals from coarse to fine (``scales[-1]`` is ``j = 1``), the
order in which the generator visits them; ``free_energies`` are the conditionals' normalisers
(:mod:`rgppl.wirg.free_energy`).
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rgppl.storage import atomic_write
from rgppl.wirg.ansatz import ScaleAnsatz
from rgppl.wirg.gaussian import GaussianStart
from rgppl.wirg.transform import Identity, ShiftedLog

SUPPORT_MARGIN = 0.1  # a scale's support: the data range widened by this fraction on each side


def data_support(values) -> tuple[float, float]:
    """The interval a fitted potential is trusted on: the range of ``values`` widened by ``SUPPORT_MARGIN``."""
    lo, hi = float(np.min(values)), float(np.max(values))
    margin = SUPPORT_MARGIN * (hi - lo)
    return lo - margin, hi + margin


@dataclass(frozen=True, eq=False)
class ScaleFit:
    """One scale's fitted energy ``theta . U`` with what the sampler needs to know about its data.

    ``spread`` is the data's standard deviation of each free channel (the sampler's preconditioner);
    ``support`` the interval the field the potential acts on must stay in (the data range, widened);
    ``report`` the fit's record: parameters, condition number, loss, iterations, time; ``start`` the data's
    Gaussian conditional the generator's chains start from (:mod:`rgppl.wirg.gaussian`; ``None``: at 0).
    """

    ansatz: ScaleAnsatz
    theta: np.ndarray
    spread: np.ndarray
    support: tuple
    report: dict = field(default_factory=dict)
    start: GaussianStart | None = None

    def save(self, path: Path, meta: dict) -> None:
        """Write this scale and the run's ``meta`` (what it was fitted from) to ``path`` atomically."""
        record = {**meta, "ansatz": asdict(self.ansatz), "support": list(self.support), "report": self.report}
        start = {} if self.start is None else {f"start_{k}": v for k, v in self.start._asdict().items()}
        atomic_write(
            path,
            lambda tmp: np.savez(tmp, meta=np.array(json.dumps(record)), theta=self.theta, spread=self.spread, **start),
        )

    @classmethod
    def load(cls, path: Path) -> tuple["ScaleFit", dict]:
        """The scale saved at ``path`` and the meta it was saved with."""
        with np.load(path, allow_pickle=False) as data:
            record = json.loads(str(data["meta"]))
            ansatz = record["ansatz"]
            ansatz = ScaleAnsatz(**{k: tuple(v) if isinstance(v, list) else v for k, v in ansatz.items()})
            start = GaussianStart(data["start_gain"], data["start_noise"]) if "start_gain" in data else None
            scale = cls(ansatz, data["theta"], data["spread"], tuple(record["support"]), record["report"], start)
        return scale, record


@dataclass(frozen=True, eq=False)
class WIRGModel:
    """The fitted hierarchy: ``scales`` from the coarsest energy to the finest conditional, and
    ``free_energies``, the fitted ``Ftilde_j`` of each conditional in the same order (``scales[1:]``).

    The scales act on ``x = transform(phi) / unit`` (:meth:`standardise`), fields ``phi`` in the data's units."""

    L: int
    wavelet: str
    unit: float
    scales: tuple
    free_energies: tuple = ()
    transform: Identity | ShiftedLog = Identity()

    def standardise(self, phi):
        """The field the scales act on, ``x = transform(phi) / unit``, of fields ``phi`` in data units."""
        return self.transform.forward(phi) / self.unit

    def restore(self, x):
        """Fields in data units, ``phi = transform^-1(unit x)``."""
        return self.transform.inverse(x * self.unit)

    @property
    def levels(self) -> int:
        """The number of wavelet levels, ``log2 L``."""
        return len(self.scales) - 1

    @property
    def n_params(self) -> int:
        """The number of parameters over all scales."""
        return sum(scale.ansatz.n_params for scale in self.scales)

    def report(self) -> list[dict]:
        """One row per scale: side, parameters, condition number, loss, iterations, time."""
        return [scale.report for scale in self.scales]
