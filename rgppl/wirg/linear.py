"""The linear algebra every WIRG fit shares: moments accumulated over the data in chunks, and the
diagonally preconditioned solve of a positive (semi)definite system.

Score matching, moment matching and gradient matching all reduce to ``A theta = b`` with ``A`` and ``b``
averages over the data.  They are summed chunk by chunk (one jitted pass per chunk, in float64 on the
host), so memory does not grow with the ensemble; ``A`` mixes features of very different sizes, so the
system ``(P A P) theta' = P b``, ``theta = P theta'`` with ``P = diag(A)^{-1/2}`` is solved instead and
its condition number reported (Marchand et al.'s preconditioning).
"""

import numpy as np

from rgppl.errors import InputError
from rgppl.mesh import gather, shard_batch


def chunks(n: int, chunk: int) -> list[slice]:
    """Slices covering ``range(n)``: full chunks, then the remainder (compiled once more at its size)."""
    bounds = list(range(0, n - n % chunk + 1, chunk)) + ([n] if n % chunk else [])
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def accumulate(moments, *arrays, chunk: int = 64) -> tuple[np.ndarray, ...]:
    """The sums over the data of every output of the jitted ``moments(*chunk_of_each_array)``, in float64.

    Each chunk is sharded over the device mesh (:mod:`rgppl.mesh`), so the sums in ``moments`` reduce across
    devices."""
    total = None
    for part in chunks(len(arrays[0]), chunk):
        values = gather(moments(*shard_batch([a[part] for a in arrays], part.stop - part.start)))
        values = [np.asarray(v, np.float64) for v in values]
        total = values if total is None else [t + v for t, v in zip(total, values)]
    return tuple(total)


def solve_preconditioned(ansatz, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """``A^{-1} b`` for a positive (semi)definite ``A`` over the ansatz's features and ``b`` a vector or a matrix of
    columns, through the diagonally preconditioned system; returns the solution and the system's condition number."""
    diag = np.diag(a)
    if not np.all(diag > 0):
        dead = [ansatz.feature_names()[i] for i in np.flatnonzero(~(diag > 0))]
        raise InputError(
            "data", f"features {dead} never vary", "fields that vary at every scale (the ensemble is degenerate)"
        )
    precondition = 1 / np.sqrt(diag)
    system = precondition[:, None] * a * precondition[None, :]
    eigenvalues = np.linalg.eigvalsh(system)
    rows = precondition.reshape(-1, *([1] * (np.ndim(b) - 1)))  # scales the rows of b, a vector or a matrix
    return rows * np.linalg.solve(system, rows * b), float(eigenvalues[-1] / eigenvalues[0])
