"""Fitting the wavelet conditional energies, one scale at a time, by score matching.

For ``p(v) ~ exp(-theta . U(v))`` over the free variables ``v`` of a scale (Hyvarinen 2005; the score
matching estimator of Marchand et al.'s later code), the loss is quadratic in ``theta``:

    J(theta) = E_data[ 1/2 |grad_v ln p|^2 + Laplacian_v ln p ] = 1/2 theta^T A theta - b^T theta,
    A = E_data[ grad_v U  grad_v U^T ],   b = E_data[ Laplacian_v U ],

so ``theta = A^{-1} b`` in closed form.  It is then optionally refined by maximum likelihood (moment
matching with MALA model averages), as in the paper.  ``A`` mixes features of very different sizes; with the diagonal
preconditioner ``P = diag(A)^{-1/2}`` the system ``(P A P) theta' = P b``, ``theta = P theta'`` is solved
in float64 and the condition number of ``P A P`` is reported.  The data are accumulated in chunks
(one jitted gradient-and-Laplacian pass per chunk), so memory does not grow with the ensemble.

Every conditional's free energy is fitted with it (:mod:`rgppl.wirg.free_energy`).  Each scale is written
to ``checkpoint_dir`` as soon as it is fitted; a rerun with the same data and
settings loads the scales already done (resume after an interruption), a different one is refused.
"""

import json
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rgppl.ensembles import checked_ensemble
from rgppl.errors import InputError, SamplingDiverged, require, require_integer, require_seed, require_types
from rgppl.lattice import Lattice
from rgppl.mesh import gather, shard_batch
from rgppl.storage import fingerprint
from rgppl.wavelets import filters, idwt2, pyramid
from rgppl.wirg.ansatz import ScaleAnsatz, sigmoid_grid
from rgppl.wirg.free_energy import fit_free_energy
from rgppl.wirg.gaussian import GaussianStart
from rgppl.wirg.linear import accumulate, chunks, solve_preconditioned
from rgppl.wirg.model import ScaleFit, WIRGModel, data_support
from rgppl.wirg.sampler import ScaleParams, conditional_chains, initial_log_step
from rgppl.wirg.transform import TRANSFORMS, make_transform

PER_SCALE = ("radius", "potentials", "pair_potentials")  # the settings given per scale or once for all


@dataclass(frozen=True)
class FitSettings:
    """How to fit: the wavelet, the number of ``levels`` (``None``: down to ``1 x 1``), and per scale the
    window ``radius`` of the quadratic couplings and the number of sigmoid ``potentials``.

    Haar is the default: for nearest-neighbour Hamiltonians its finest conditional lies exactly in the
    radius-1 family, and on phi^4 at beta = 0.68, L = 16 it reproduced <phi^2> to 0.3 % where db4 at the same
    radius was 1.9 % off (the longer db4 filters couple details further than the window reaches).

    ``pair_potentials`` adds that many sigmoid potentials of neighbouring pairs' half sums, and as many of their half
    differences (:class:`~rgppl.wirg.ansatz.ScaleAnsatz`), beyond the paper's family, to the conditionals of the
    coarse-grained scales: an integer gives them to every conditional but the finest (the microscopic one, which a
    nearest-neighbour Hamiltonian's quadratic couplings and site potential already hold) whose finer field has side 4
    or more; a tuple may give them to the finest too.  The coarsest energy and the ``1 x 1`` conditional take none
    (a tuple's entries there are 0): on a ring of two sites the pairs repeat, and a half difference's potentials are
    linearly dependent.  On the ``phi4_wirg`` card they take the worst |z| of the generated fields from 5.1 to 3.4
    (spectrum bins at |k| = 1.5-3.2 from 3.2-5.1 to 1.7-3.4, the energy density from 4.5 to 3.3); on the finest
    scale too they change nothing and double its generation time.  A conditional's free energy
    (:func:`~rgppl.wirg.free_energy.fit_free_energy`) has the scale's site potentials and no pairs: with
    ``potentials = 0`` it is quadratic and cannot hold the pairs' part, and the microscopic energy is off (on the
    free field at L = 8, inpainting misses the exact conditional at z = 29, against 3.4 with 12 site potentials).
    ``radius``, ``potentials`` and ``pair_potentials`` are an integer for every scale or a tuple with one entry per
    scale, finest conditional first and the coarsest energy last (``levels + 1`` entries).  ``mirror_images`` adds the
    mirror image ``-phi`` of every field, for models with the ``phi -> -phi`` symmetry (phi^4, Ising): the
    sigmoid grid and the fitted energy are then symmetric too (after maximum likelihood by
    :func:`mirror_symmetric`).  After score matching, the scales whose coarse
    field has side at most ``ml_max_side`` (the same scales on every lattice) are refined by ``ml_iterations``
    maximum-likelihood steps, with model moments from ``ml_steps`` MALA steps (after ``ml_burn_in`` more) on up to
    ``ml_fields`` training coarse fields, the features recorded every ``ml_record_every`` steps
    (:func:`refine_maximum_likelihood`).
    A coarse scale's chain has few variables, so it is cheap and many chains are needed to measure its moments;
    the fine scales, whose score-matching fit is already close, are left as they are.

    The defaults are the recipe of the ``phi4_wirg`` card, whose record gives its fidelity against an
    independent ensemble (radius 2, 12 site potentials, 8 pair potentials of each kind on the coarse-grained
    conditionals, 4 ML iterations on the scales of side <= 4 with 8000 chains, each
    measuring the moments over 200 steps after 100).  Without the refinement (``ml_iterations = 0``) the fit takes a
    sixth of the time, and the spectrum's lowest bins come out 2-4 % low (z = -3.7 at L = 32).

    ``transform = "shifted_log"`` fits the model to ``ln(phi + shift)`` instead of ``phi``, for long-tailed data
    bounded below (:mod:`rgppl.wirg.transform`); ``shift`` is then a number above ``-min(data)``, or ``None`` for
    the shift that leaves the logged pixels without skewness.
    """

    wavelet: str = "haar"
    levels: int | None = None
    radius: int | tuple = 2
    potentials: int | tuple = 12
    pair_potentials: int | tuple = 8
    batch: int = 64
    mirror_images: bool = False
    ml_iterations: int = 4
    ml_max_side: int = 4
    ml_burn_in: int = 100
    ml_steps: int = 200
    ml_fields: int = 8000
    ml_record_every: int = 4
    transform: str = "none"
    shift: float | None = None

    def __post_init__(self):
        require_types(self, "fit")
        filters(self.wavelet)
        require(self.transform in TRANSFORMS, "fit.transform", self.transform, f"one of {list(TRANSFORMS)}")
        if self.shift is not None:
            require(
                self.transform == "shifted_log", "fit.shift", self.shift, "a shift only with transform = 'shifted_log'"
            )
        require(
            not (self.mirror_images and self.transform != "none"),
            "fit.mirror_images",
            self.mirror_images,
            f"false with transform = '{self.transform}' (skewed data have no phi -> -phi symmetry)",
        )
        if self.levels is not None:
            require_integer("fit.levels", self.levels, 1)
        for name, minimum in (
            ("batch", 1),
            ("ml_iterations", 0),
            ("ml_max_side", 1),
            ("ml_burn_in", 0),
            ("ml_steps", 2),
            ("ml_fields", 2),
            ("ml_record_every", 1),
        ):
            require_integer(f"fit.{name}", getattr(self, name), minimum)
        require(
            self.ml_steps % self.ml_record_every == 0 and self.ml_steps >= 2 * self.ml_record_every,
            "fit.ml_steps",
            self.ml_steps,
            f"a multiple of fit.ml_record_every = {self.ml_record_every}, "
            "at least twice it (two recorded states per chain)",
        )

    def resolved_levels(self, L: int) -> int:
        """The number of levels on an ``L x L`` lattice, with the per-scale settings checked against it."""
        top = int(np.log2(L))
        levels = top if self.levels is None else self.levels
        require(levels <= top, "fit.levels", levels, f"at most log2(L) = {top} for L = {L}")
        for name in PER_SCALE:
            self.per_scale(name, levels)
        self.pair_counts(L, levels)
        return levels

    def per_scale(self, name: str, levels: int) -> tuple:
        """``radius``, ``potentials`` or ``pair_potentials``, one value per scale: finest conditional first, the
        coarsest energy last."""
        value, count = getattr(self, name), levels + 1
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
        require(
            len(values) == count,
            f"fit.{name}",
            value,
            f"an integer, or a list of {count} integers (the {levels} conditionals, finest first, then the "
            "coarsest energy)",
        )
        for v in values:
            require_integer(f"fit.{name}", v, 0)
        return values

    def pair_counts(self, L: int, levels: int) -> tuple:
        """``pair_potentials`` per scale (finest first), 0 where a scale takes none: the coarsest energy, the
        conditionals of a ``1 x 1`` coarse field and, unless a tuple says otherwise, the finest conditional."""
        pairs = self.per_scale("pair_potentials", levels)
        given = isinstance(self.pair_potentials, (tuple, list))
        takes = tuple(j < levels and L >> (j + 1) >= 2 and (j > 0 or given) for j in range(levels + 1))
        require(
            not given or all(t or not n for t, n in zip(takes, pairs)),
            "fit.pair_potentials",
            self.pair_potentials,
            f"0 at the scales that take no pair potentials (the coarsest energy and 1 x 1 coarse fields): "
            f"{[n if t else 0 for t, n in zip(takes, pairs)]}",
        )
        return tuple(n if t else 0 for t, n in zip(takes, pairs))

    def ml_iterations_at(self, side: int) -> int:
        """The maximum-likelihood iterations of the scale whose coarse field has side ``side``."""
        return self.ml_iterations if side <= self.ml_max_side else 0


@lru_cache(maxsize=64)
def _score_passes(ansatz: ScaleAnsatz):
    """Jitted once per ansatz: the chunk sums ``(sum_n A_n, sum_n b_n)`` of score matching and, given ``theta``,
    the per-pair estimating equations ``psi_n = A_n theta - b_n``."""
    grams, laplacians = jax.vmap(ansatz.feature_gram), jax.vmap(ansatz.feature_laplacians)

    @jax.jit
    def moments(c, f):
        return jnp.sum(grams(c, f), axis=0), jnp.sum(laplacians(c, f), axis=0)

    @jax.jit
    def residuals(theta, c, f):
        return grams(c, f) @ theta - laplacians(c, f)

    return moments, residuals


def score_moments(ansatz: ScaleAnsatz, coarse, free, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``A = E[grad U grad U^T]`` and ``b = E[Laplacian U]`` over the data pairs, in float64."""
    a, b = accumulate(_score_passes(ansatz)[0], coarse, free, chunk=chunk)
    return a / len(free), b / len(free)


def score_matching(ansatz: ScaleAnsatz, coarse, free, chunk: int = 64) -> tuple[np.ndarray, dict]:
    """Closed-form score matching of ``ansatz`` on data pairs ``(coarse[n], free[n])``.

    Returns ``theta`` and a report: ``n_params``, ``condition`` (of the preconditioned system),
    ``loss`` (the score-matching loss at the optimum, per free variable) and ``time_s``.
    """
    start = time.perf_counter()
    a, b = score_moments(ansatz, coarse, free, chunk)
    theta, condition = solve_preconditioned(ansatz, a, b)
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
    residuals = _score_passes(ansatz)[1]
    theta32 = jnp.asarray(theta, jnp.float32)
    psi = np.concatenate(
        [np.asarray(residuals(theta32, coarse[part], free[part]), np.float64) for part in chunks(len(free), chunk)]
    )
    a, _ = score_moments(ansatz, coarse, free, chunk)
    a_inv = np.linalg.inv(a)
    covariance = a_inv @ np.cov(psi, rowvar=False) @ a_inv / len(psi)
    return np.sqrt(np.diag(covariance))


GUARD_NOISE = 2  # a point is taken back when its mismatch lies this many noise floors above the lowest one measured


def mismatch_noise(ansatz: ScaleAnsatz, fisher, chain_means, data_features) -> float:
    """``tr(F^{-1} Sigma_d)``, the mean mismatch ``d^T F^{-1} d`` that the noise of ``d`` alone gives, where ``d``
    is the mean over chains of the paired differences ``chain_means[i] - data_features[i]`` (one chain per
    training coarse field, taken as independent) and ``Sigma_d`` their covariance over the number of chains.
    Where the chains include mirror images of the same fields they are not independent, and the floor is an
    overestimate: on the ``phi4_wirg`` card the converged mismatch sits at 0.05-0.5 of it."""
    paired = chain_means - data_features
    centred = paired - paired.mean(axis=0)
    covariance = centred.T @ centred / (len(paired) * (len(paired) - 1))
    return float(np.trace(solve_preconditioned(ansatz, fisher, covariance)[0]))


def refine_maximum_likelihood(
    key, scale: ScaleFit, coarse, free, settings: FitSettings, iterations: int, fields: int
) -> ScaleFit:
    """Maximum-likelihood refinement of a fitted scale by moment matching (Marchand et al.).

    For the exponential family ``pbar(v | c) ~ exp(-theta . U)`` the gradient of the mean log-likelihood is
    ``d = <U>_model - <U>_data`` and its Hessian is minus the Fisher matrix ``F = E_c[Cov(U | c)]``, so each of the
    ``iterations`` takes the Newton step ``theta += F^{-1} d``.  The model averages come from persistent MALA chains,
    one per training coarse field (the first ``fields``), started at the data's own details (samples of the true
    conditional).  After every step the chains run ``ml_burn_in`` steps, then ``ml_steps`` steps whose features,
    recorded every ``ml_record_every``, give ``d`` and ``F`` (the within-chain covariance).

    ``F`` must come from a window long against the features' autocorrelation: a window of 40 steps measures half of
    ``Cov(U | c)`` (its trace; less along the slow directions), the Newton steps then overshoot and the mismatch
    ``d^T F^{-1} d`` grows from step to step.  So the steps are guarded, as a damped Newton method on the mismatch:
    a point whose mismatch lies more than ``GUARD_NOISE`` noise floors (:func:`mismatch_noise`) above the lowest
    one measured is taken back, the next step starts again from the last point kept, and the steps are halved (at
    every point taken back, for the rest of the refinement).  Each iterate carries the noise of its moments, so the
    returned ``theta`` is the mean of the second half of the iterates (Polyak-Ruppert averaging).  The record gains
    ``ml_mismatch``, the mismatch at each point measured, ``ml_mismatch_noise``, its noise floor there, and
    ``ml_taken_back``, the points taken back (by iteration, from 0).
    """
    start = time.perf_counter()
    n = min(len(free), fields)
    coarse, state = coarse[:n], free[:n]
    data_features = np.asarray(jax.vmap(scale.ansatz.features)(coarse, state), np.float64)
    run = conditional_chains(scale.ansatz, settings.ml_burn_in, settings.ml_steps, 10, settings.ml_record_every)
    theta, log_step = np.asarray(scale.theta, np.float64), initial_log_step(scale.ansatz)
    kept, lowest, damping = None, np.inf, 1.0  # kept: the last point kept, its theta and Newton step
    iterates, mismatch, noise, taken_back = [], [], [], []
    for iteration, iteration_key in enumerate(jax.random.split(key, iterations)):
        params = ScaleParams.of(replace(scale, theta=theta))
        arguments = shard_batch((iteration_key, coarse, state, params, log_step), n)  # one layout: compiled once
        state, log_step, _, _, features = run(*arguments)
        features = np.asarray(gather(features), np.float64)
        chain_means = features.mean(axis=1)
        centred = features - chain_means[:, None]
        fisher = np.einsum("nsk,nsl->kl", centred, centred) / (n * (features.shape[1] - 1))
        difference = chain_means.mean(axis=0) - data_features.mean(axis=0)
        if not (np.all(np.isfinite(fisher)) and np.all(np.diag(fisher) > 0)):
            raise SamplingDiverged(
                f"the maximum-likelihood chains at the {scale.ansatz.side}x{scale.ansatz.side} scale "
                "did not explore the conditional (features non-finite or frozen); fit with "
                "ml_iterations = 0"
            )
        step, _ = solve_preconditioned(scale.ansatz, fisher, difference)
        if not np.all(np.isfinite(step)):
            raise SamplingDiverged(
                f"maximum-likelihood refinement at the {scale.ansatz.side}x{scale.ansatz.side} scale "
                "produced non-finite parameters; fit with ml_iterations = 0 or more data"
            )
        mismatch.append(float(difference @ step))
        noise.append(mismatch_noise(scale.ansatz, fisher, chain_means, data_features))
        if mismatch[-1] <= lowest + GUARD_NOISE * noise[-1]:
            kept, lowest = (theta, step), min(lowest, mismatch[-1])
        else:  # the step to this point overshot
            taken_back.append(iteration)
            damping /= 2
        theta = kept[0] + damping * kept[1]
        iterates.append(theta)
    report = {
        **scale.report,
        "iterations": 1 + iterations,
        "ml_mismatch": mismatch,
        "ml_mismatch_noise": noise,
        "ml_taken_back": taken_back,
        "time_s": scale.report["time_s"] + time.perf_counter() - start,
    }
    return replace(scale, theta=np.mean(iterates[len(iterates) // 2 :], axis=0), report=report)


def potential_grids(finer, potentials: int, pair_potentials: int) -> dict:
    """The sigmoid grids of a :class:`ScaleAnsatz` from the data's finer fields ``finer[n, x, y]``: ``potentials``
    over the sites' values, ``pair_potentials`` over the neighbouring pairs' half sums and as many over their half
    differences (both directions)."""
    finer = np.asarray(finer)
    grids = {"": sigmoid_grid(finer, potentials), "sum_": ((), ()), "difference_": ((), ())}
    if pair_potentials:
        for name, sign in (("sum_", 1), ("difference_", -1)):
            halves = np.stack([(finer + sign * np.roll(finer, -1, axis=axis)) / 2 for axis in (-2, -1)])
            grids[name] = sigmoid_grid(halves, pair_potentials)
    return {f"{name}{part}": grid[i] for name, grid in grids.items() for i, part in enumerate(("centres", "widths"))}


def fit_scale(
    key, ansatz_args: dict, potentials: tuple[int, int], coarse, free, finer, settings: FitSettings
) -> ScaleFit:
    """One scale: the sigmoid grids (``potentials`` = site and pair counts) and support from ``finer`` (the field
    the potentials act on), score matching, then the maximum-likelihood refinement ``settings`` gives a scale of its
    side; the data's Gaussian conditional (:mod:`rgppl.wirg.gaussian`) is kept as the generator's starting point."""
    ansatz = ScaleAnsatz(**ansatz_args, **potential_grids(finer, *potentials))
    theta, report = score_matching(ansatz, coarse, free, settings.batch)
    spread = np.asarray(jnp.std(free, axis=(0, 2, 3)), np.float64)
    report = {**report, "side": ansatz.side, "iterations": 1}
    scale = ScaleFit(ansatz, theta, spread, data_support(finer), report, GaussianStart.fit(coarse, free))
    iterations = settings.ml_iterations_at(ansatz.side)
    if not iterations:
        return scale
    scale = refine_maximum_likelihood(key, scale, coarse, free, settings, iterations, settings.ml_fields)
    return replace(scale, theta=mirror_symmetric(ansatz, scale.theta)) if settings.mirror_images else scale


def mirror_symmetric(ansatz: ScaleAnsatz, theta) -> np.ndarray:
    """The part of ``theta`` whose energy is even under ``phi -> -phi``, for sigmoid grids symmetric about 0.

    The quadratic features are even.  A sigmoid of the mirrored field is ``sigmoid((-x - c_k) / w) =
    1 - sigmoid((x - c_{K-1-k}) / w)`` when the centres are symmetric, so the mirrored energy has the potential
    weights ``-theta_{K-1-k}`` (up to a constant) and the even part ``(theta_k - theta_{K-1-k}) / 2``; the same
    holds within each group of pair potentials (a pair's half sum and half difference change sign with the field).
    Score matching on mirrored data gives it already; maximum likelihood's Monte Carlo moments are symmetric only on
    average, and their odd part would tilt the energy's two wells (at the coarsest scale, the sign of the
    magnetisation)."""
    theta = np.asarray(theta, np.float64).copy()
    for part in ansatz.potential_slices():
        theta[part] = 0.5 * (theta[part] - theta[part][::-1])
    return theta


def exact_quadratic_theta(ansatz: ScaleAnsatz, energy, unit: float) -> tuple[np.ndarray, float]:
    """The finest-scale parameters of a quadratic microscopic energy ``E(phi)`` (a free field, say), with
    fields in units of ``unit``: the Hessian of ``E(unit * (G^T phi_1 + Gbar^T phibar_1))`` in the details,
    expanded by least squares on the (constant) Hessians of the quadratic features.  Returns ``theta`` and
    the relative residual, the part of the exact conditional the window does not reach (0 when it is in
    the family).  For an ansatz without sigmoid potentials."""
    require(
        ansatz.n_params == ansatz.n_quadratic and not ansatz.coarsest,
        "ansatz",
        ansatz,
        "a conditional ansatz without potentials",
    )
    m = ansatz.side
    split = m * m

    def hessian(fn):
        h = jax.hessian(lambda v: fn(v[:split].reshape(m, m), v[split:].reshape(3, m, m)))(jnp.zeros(4 * split))
        return np.asarray(h, np.float64)[..., split:, :]  # rows: the free details

    exact = hessian(lambda c, f: energy(unit * idwt2(c, f, ansatz.wavelet)))
    features = hessian(ansatz.features).reshape(ansatz.n_params, -1).T
    theta, *_ = np.linalg.lstsq(features, exact.ravel(), rcond=None)
    residual = np.linalg.norm(features @ theta - exact.ravel()) / np.linalg.norm(exact)
    return theta, float(residual)


DATA_PER_PARAMETER = 2  # at every scale, data values (fields x free variables per field) per parameter, at least


def _require_enough_fields(n: int, L: int, levels: int, radius: tuple, potentials: tuple, settings: FitSettings):
    """Refuse an ensemble too small to determine every scale's score-matching system: ``A`` is a mean of ``n`` outer
    products of rank at most the scale's free variables per field, so it has full rank only if ``n`` times those
    reach the parameters; ``DATA_PER_PARAMETER`` times as many are required.  The coarsest scales bind.
    ``potentials[j]`` holds scale ``j``'s counts of site and of pair potentials."""
    needs = []  # (fields needed, side, parameters, free variables per field) of every scale
    for j in range(levels + 1):
        side = L >> min(j + 1, levels)
        sites, pairs = potentials[j]
        ansatz = ScaleAnsatz(side=side, radius=radius[j], wavelet=settings.wavelet, coarsest=j == levels)
        parameters = ansatz.n_quadratic + sites + 2 * pairs  # pairs: half sums and half differences
        free = int(np.prod(ansatz.free_shape))
        needs.append((-(-DATA_PER_PARAMETER * parameters // free), side, parameters, free))
    needed, side, parameters, free = max(needs)
    mirrored = " (mirror images included)" if settings.mirror_images else ""
    require(
        n >= needed,
        "data",
        f"{n} fields{mirrored}",
        f"at least {needed} fields: the {side}x{side} scale has {parameters} parameters and {free} free variables "
        f"per field, and score matching needs {DATA_PER_PARAMETER} data values per parameter",
    )


def fit_wirg(
    fields, settings: FitSettings = FitSettings(), *, seed: int = 0, checkpoint_dir=None, progress: bool = True
) -> WIRGModel:
    """Fit every scale of the wavelet conditional model to ``fields[n, L, L]``.

    The fields, after ``settings.transform``, are measured in units of their root mean square
    (``model.unit``).  With ``checkpoint_dir``, each scale is saved once fitted and reloaded on a rerun with
    the same data and settings.
    """
    fields = checked_ensemble(fields)
    L = Lattice(fields.shape[1:]).require_power_of_two("the wavelet hierarchy")
    levels = settings.resolved_levels(L)
    radius, sites = settings.per_scale("radius", levels), settings.per_scale("potentials", levels)
    potentials = tuple(zip(sites, settings.pair_counts(L, levels), strict=True))
    transform = make_transform(settings.transform, settings.shift, fields)
    _require_enough_fields(len(fields) * (2 if settings.mirror_images else 1), L, levels, radius, potentials, settings)
    fitted_fields = np.asarray(transform.forward(fields), np.float32)
    unit = float(np.sqrt(np.mean(fitted_fields.astype(np.float64) ** 2)))
    require(unit > 0, "data", f"root mean square {unit}", "fields that are not all zero")
    standardised = fitted_fields / unit
    if settings.mirror_images:
        standardised = np.concatenate([standardised, -standardised])
    coarse, details = pyramid(standardised, settings.wavelet, levels)
    meta = json.loads(json.dumps({"data": fingerprint(fields), "settings": asdict(settings), "seed": seed}))
    keys = jax.random.split(jax.random.key(require_seed(seed)), levels + 1)
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)

    def fitted(name: str, fit) -> ScaleFit:
        """The fit saved as ``name`` in ``checkpoint_dir`` (checked against this run), or ``fit()`` saved there."""
        path = directory / f"{name}.npz" if directory is not None else None
        if path is not None and path.exists():
            scale, saved = ScaleFit.load(path)
            if {k: saved[k] for k in meta} != meta:
                raise InputError(
                    "resume", str(path), "this fit was made from other data or settings; fit afresh in a new directory"
                )
            return scale
        scale = fit()
        if path is not None:
            scale.save(path, meta)
        return scale

    scales, free_energies = [], []
    bar = tqdm(range(levels + 1), desc="WIRG fit", unit="scale", disable=not progress)
    for j in bar:  # j = 0 .. levels-1: the conditional of scale j + 1 (finest first); j = levels: the coarsest energy
        args = {
            "side": L >> min(j + 1, levels),
            "radius": radius[j],
            "wavelet": settings.wavelet,
            "coarsest": j == levels,
        }
        if j == levels:
            top = coarse[levels]
            scale = fitted(
                "scale_top",
                lambda: fit_scale(keys[j], args, potentials[j], jnp.zeros_like(top), top[:, None], top, settings),
            )
        else:
            scale = fitted(
                f"scale_{j + 1}",
                lambda: fit_scale(keys[j], args, potentials[j], coarse[j + 1], details[j], coarse[j], settings),
            )
            free_energies.append(
                fitted(
                    f"free_energy_{j + 1}",
                    lambda: fit_free_energy(scale, coarse[j + 1], details[j], sites[j], settings.batch),
                )
            )
        scales.append(scale)
        bar.set_postfix(side=scale.ansatz.side, condition=f"{scale.report['condition']:.3g}")
    return WIRGModel(
        L=L,
        wavelet=settings.wavelet,
        unit=unit,
        scales=tuple(scales[::-1]),
        free_energies=tuple(free_energies[::-1]),
        transform=transform,
    )
