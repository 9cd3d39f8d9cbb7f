"""Fitting the wavelet conditional energies, one scale at a time, by score matching.

For ``p(v) ~ exp(-theta . U(v))`` over the free variables ``v`` of a scale (Hyvarinen 2005; the score
matching estimator of Marchand et al.'s later code), the loss is quadratic in ``theta``:

    J(theta) = E_data[ 1/2 |grad_v ln p|^2 + Laplacian_v ln p ] = 1/2 theta^T A theta - b^T theta,
    A = E_data[ grad_v U  grad_v U^T ],   b = E_data[ Laplacian_v U ],

so ``theta = A^{-1} b`` in closed form.  ``A`` mixes features of very different sizes; with the diagonal
preconditioner ``P = diag(A)^{-1/2}`` the system ``(P A P) theta' = P b``, ``theta = P theta'`` is solved
in float64 and the condition number of ``P A P`` is reported.  The data are accumulated in chunks
(one jitted gradient-and-Laplacian pass per chunk), so memory does not grow with the ensemble.

Each scale is written to ``checkpoint_dir`` as soon as it is fitted; a rerun with the same data and
settings loads the scales already done (resume after an interruption), a different one is refused.
"""

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rgppl.errors import InputError, require, require_integer
from rgppl.lattice import Lattice
from rgppl.wavelets import filters
from rgppl.wirg.ansatz import ScaleAnsatz
from rgppl.wirg.model import ScaleFit, WIRGModel, pyramid

SUPPORT_MARGIN = 0.1  # the sampler's support: the data range widened by this fraction on each side
CENTRE_QUANTILES = (0.001, 0.999)  # the sigmoid centres span these quantiles of the data


@dataclass(frozen=True)
class FitSettings:
    """How to fit: the wavelet, the number of ``levels`` (``None``: down to ``1 x 1``), and per scale the
    window ``radius`` of the quadratic couplings and the number of sigmoid ``potentials``.

    ``radius`` and ``potentials`` are an integer for every scale or a tuple with one entry per scale,
    finest conditional first and the coarsest energy last (``levels + 1`` entries).
    """

    wavelet: str = "db4"
    levels: int | None = None
    radius: int | tuple = 2
    potentials: int | tuple = 24
    chunk: int = 64

    def __post_init__(self):
        filters(self.wavelet)
        if self.levels is not None:
            require_integer("fit.levels", self.levels, 1)
        require_integer("fit.chunk", self.chunk, 1)

    def per_scale(self, name: str, levels: int) -> tuple:
        """``radius`` or ``potentials`` as one value per scale (finest first, coarsest energy last)."""
        value = getattr(self, name)
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * (levels + 1)
        require(len(values) == levels + 1, f"fit.{name}", value,
                f"an integer, or a list of {levels + 1} integers (the {levels} conditionals, finest first, then the coarsest energy)")
        for v in values:
            require_integer(f"fit.{name}", v, 0)
        return values


def _sigmoid_grid(values, count: int) -> tuple:
    """``count`` centres evenly spaced over the data's central quantiles, each as wide as the spacing."""
    if count == 0:
        return (), ()
    lo, hi = np.quantile(np.asarray(values), CENTRE_QUANTILES)
    centres = np.linspace(lo, hi, count)
    width = (hi - lo) / max(count - 1, 1)
    return tuple(float(c) for c in centres), (float(width),) * count


def _support(values) -> tuple:
    lo, hi = float(np.min(values)), float(np.max(values))
    margin = SUPPORT_MARGIN * (hi - lo)
    return lo - margin, hi + margin


def _chunks(n: int, chunk: int):
    """Slices covering ``range(n)``: full chunks, then the remainder (compiled once more at its size)."""
    bounds = list(range(0, n - n % chunk + 1, chunk)) + ([n] if n % chunk else [])
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def score_moments(ansatz: ScaleAnsatz, coarse, free, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``A = E[grad U grad U^T]`` and ``b = E[Laplacian U]`` over the data pairs, in float64."""
    k = ansatz.n_params

    @jax.jit
    def moments(c, f):
        grads = jax.vmap(ansatz.feature_gradients)(c, f).reshape(len(f), k, -1)
        return jnp.einsum("nki,nli->kl", grads, grads), jnp.sum(jax.vmap(ansatz.feature_laplacians)(c, f), axis=0)

    a, b = np.zeros((k, k)), np.zeros(k)
    for part in _chunks(len(free), chunk):
        da, db = moments(coarse[part], free[part])
        a, b = a + np.asarray(da, np.float64), b + np.asarray(db, np.float64)
    return a / len(free), b / len(free)


def solve_score_matching(ansatz: ScaleAnsatz, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """``theta = A^{-1} b`` through the diagonally preconditioned system; returns ``theta`` and its condition number."""
    diag = np.diag(a)
    if not np.all(diag > 0):
        dead = [ansatz.feature_names()[i] for i in np.flatnonzero(~(diag > 0))]
        raise InputError("data", f"features {dead} never vary", "fields that vary at every scale (the ensemble is degenerate)")
    precondition = 1 / np.sqrt(diag)
    system = precondition[:, None] * a * precondition[None, :]
    eigenvalues = np.linalg.eigvalsh(system)
    return precondition * np.linalg.solve(system, precondition * b), float(eigenvalues[-1] / eigenvalues[0])


def score_matching(ansatz: ScaleAnsatz, coarse, free, chunk: int = 64) -> tuple[np.ndarray, dict]:
    """Closed-form score matching of ``ansatz`` on data pairs ``(coarse[n], free[n])``.

    Returns ``theta`` and a report: ``n_params``, ``condition`` (of the preconditioned system),
    ``loss`` (the score-matching loss at the optimum, per free variable) and ``time_s``.
    """
    start = time.perf_counter()
    a, b = score_moments(ansatz, coarse, free, chunk)
    theta, condition = solve_score_matching(ansatz, a, b)
    report = {
        "n_params": ansatz.n_params,
        "condition": condition,
        "loss": float(-0.5 * b @ theta / np.prod(ansatz.free_shape)),
        "time_s": time.perf_counter() - start,
    }
    return theta, report


def score_matching_errors(ansatz: ScaleAnsatz, theta, coarse, free, chunk: int = 64) -> np.ndarray:
    """Standard errors of score-matching ``theta`` for independent data pairs, by the M-estimator sandwich
    ``Var theta = A^{-1} Cov[psi_n] A^{-1} / n`` with ``psi_n = A_n theta - b_n`` the per-pair estimating equation."""
    k = ansatz.n_params
    theta32 = jnp.asarray(theta, jnp.float32)

    @jax.jit
    def residuals(c, f):
        grads = jax.vmap(ansatz.feature_gradients)(c, f).reshape(len(f), k, -1)
        return jnp.einsum("nki,ni->nk", grads, jnp.einsum("nki,k->ni", grads, theta32)) - jax.vmap(
            ansatz.feature_laplacians)(c, f)

    psi = np.concatenate([np.asarray(residuals(coarse[part], free[part]), np.float64)
                          for part in _chunks(len(free), chunk)])
    a, _ = score_moments(ansatz, coarse, free, chunk)
    a_inv = np.linalg.inv(a)
    covariance = a_inv @ np.cov(psi, rowvar=False) @ a_inv / len(psi)
    return np.sqrt(np.diag(covariance))


def fit_scale(ansatz_args: dict, potentials: int, coarse, free, finer, chunk: int) -> ScaleFit:
    """One scale: sigmoid grid and support from ``finer`` (the field the potential acts on), then score matching."""
    centres, widths = _sigmoid_grid(finer, potentials)
    ansatz = ScaleAnsatz(**ansatz_args, centres=centres, widths=widths)
    theta, report = score_matching(ansatz, coarse, free, chunk)
    spread = np.asarray(jnp.std(free, axis=(0, 2, 3)), np.float64)
    return ScaleFit(ansatz, theta, spread, _support(finer), {**report, "side": ansatz.side, "iterations": 1})


def data_fingerprint(fields) -> str:
    return hashlib.sha256(np.ascontiguousarray(fields).tobytes()).hexdigest()[:16]


def fit_wirg(fields, settings: FitSettings = FitSettings(), *, checkpoint_dir=None, progress: bool = True) -> WIRGModel:
    """Fit every scale of the wavelet conditional model to ``fields[n, L, L]``.

    The fields are measured in units of their root mean square (``model.unit``).  With
    ``checkpoint_dir``, each scale is saved once fitted and reloaded on a rerun with the same data and
    settings.
    """
    fields = np.asarray(fields, np.float32)
    require(fields.ndim == 3 and len(fields) >= 2, "data", f"shape {fields.shape}", "an ensemble of fields [n, L, L], n >= 2")
    L = Lattice(fields.shape[1:]).require_power_of_two("the wavelet hierarchy")
    top = int(np.log2(L))
    levels = top if settings.levels is None else settings.levels
    require(levels <= top, "fit.levels", levels, f"at most log2(L) = {top} for L = {L}")
    radius, potentials = settings.per_scale("radius", levels), settings.per_scale("potentials", levels)
    unit = float(np.sqrt(np.mean(fields.astype(np.float64) ** 2)))
    require(np.isfinite(unit) and unit > 0, "data", f"root mean square {unit}", "fields that are finite and not all zero")
    coarse, details = pyramid(fields / unit, settings.wavelet, levels)
    meta = {"data": data_fingerprint(fields), "settings": asdict(settings)}
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)

    scales = []
    bar = tqdm(range(levels + 1), desc="WIRG fit", unit="scale", disable=not progress)
    for j in bar:  # j = 0 .. levels-1: the conditional of scale j + 1 (finest first); j = levels: the coarsest energy
        coarsest = j == levels
        path = directory / f"scale_{j + 1 if not coarsest else 'top'}.npz" if directory is not None else None
        if path is not None and path.exists():
            scale, saved = ScaleFit.load(path)
            if {k: saved[k] for k in meta} != meta:
                raise InputError("resume", str(path), "this fit was made from other data or settings; "
                                 "fit afresh in a new directory")
        else:
            args = {"side": L >> (j if coarsest else j + 1), "radius": radius[j], "wavelet": settings.wavelet, "coarsest": coarsest}
            if coarsest:
                top_field = coarse[levels]
                scale = fit_scale(args, potentials[j], jnp.zeros_like(top_field), top_field[:, None], top_field, settings.chunk)
            else:
                scale = fit_scale(args, potentials[j], coarse[j + 1], details[j], coarse[j], settings.chunk)
            if path is not None:
                scale.save(path, meta)
        scales.append(scale)
        bar.set_postfix(side=scale.ansatz.side, condition=f"{scale.report['condition']:.3g}")
    return WIRGModel(L=L, wavelet=settings.wavelet, unit=unit, scales=tuple(scales[::-1]))
