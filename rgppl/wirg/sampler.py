"""Coarse-to-fine generation from a fitted wavelet conditional model, by batched MALA (or HMC) per scale.

Marchand et al. (PRX 13, 041038): draw ``phi_J ~ p_J``, then for ``j = J .. 1`` draw
``phibar_j ~ pbar_j(. | phi_j)`` and reconstruct ``phi_{j-1} = G^T phi_j + Gbar^T phibar_j``.  Every
conditional covers one octave, so its Hessian stays well conditioned at criticality and a short
chain equilibrates: the cost per independent field is ``O(N)`` per scale, with no critical slowing down.

Each scale runs one Metropolis-adjusted Langevin chain per field (all fields at once, ``vmap``),
preconditioned by the data's spread ``s_c`` of each free channel, its drift truncated (MALTA; Roberts & Tweedie 1996):

    v' = v - (eps^2 / 2) S^2 grad E(v) + eps S xi,   accept with min{1, exp(-E(v') + E(v)) q(v | v') / q(v' | v)},

started at a draw of the data's Gaussian conditional (:mod:`rgppl.wirg.gaussian`; the paper starts at ``v = 0``,
which leaves the fine scales' details hundreds of steps to grow to their size).  With ``leapfrog > 1`` a step is
a Hamiltonian trajectory of that many such moves (:func:`hmc_step`), whose momentum carries it further per gradient
on the conditional's soft directions, adapted to acceptance 0.651 instead.  Moves that take the reconstructed
field out of the data's range (where the fitted potential is not defined) are rejected.  ``eps`` starts at
``d^(-1/6)`` for ``d`` free variables and is adapted during warm-up, ``ln eps += (acceptance - 0.574) / sqrt(block)``
after every block (0.574 is the MALA optimum), and then frozen; the chains are then run ``steps`` more steps, over
which the acceptance and the integrated autocorrelation time of the conditional energy are measured.
The last state of every chain is the generated field.  Each scale is one phase of rgppl's run loop
(:mod:`rgppl.loop`): a checkpoint after every scale, exact resume, and a stop on non-finite values.
"""

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from rgppl.diagnostics import make_datatree
from rgppl.errors import require, require_integer, require_seed, require_types
from rgppl.loop import Phase, run_phases
from rgppl.mesh import gather
from rgppl.storage import fingerprint
from rgppl.wavelets import idwt2

MALA_TARGET_ACCEPTANCE = 0.574
HMC_TARGET_ACCEPTANCE = 0.651
MAX_DRIFT = 2.0  # a half kick, per coordinate, in momentum standard deviations at most (MALTA's truncated drift)
SCALE_STATISTICS = ("step_size", "acceptance", "tau_energy")  # what sample_scale reports of each scale


@dataclass(frozen=True)
class GeneratorSettings:
    """``samples`` generated fields in all (each the last state of an independent chain of its own, as a flow's
    draws are counted in all and a Markov chain's per chain), reported as ``groups`` groups (the DataTree's
    ``chain`` axis); per scale ``warmup`` adapted steps (in blocks of ``adapt_every``) and ``steps`` measured ones,
    each of ``leapfrog`` leapfrog steps (HMC; one is MALA).  The defaults are the recipe of the ``phi4_wirg`` card,
    whose record gives its fidelity.

    ``warmup`` must cover the chains' relaxation from the Gaussian start.  ``benchmarks/wirg_relaxation.py`` measures
    it per scale by each channel's mean square: on the ``phi4_wirg`` card the slowest (the finest) settles after 190
    steps, against 365 from zero.  The spectrum within a scale relaxes more slowly, and a bias of a given size shows
    the more, the larger the lattice.  ``benchmarks/wirg_super_resolution.py`` measures it: at L = 64, fields drawn
    from the training fields' ``phi_1`` miss the reference at a worst |z| of 4.76 with these defaults and 2.17 (the
    training fields' own level) with 1200 warm-up steps, at three times the cost; HMC with ``leapfrog = 4`` and 75
    warm-up steps reaches 1.95 at MALA's cost.  From scratch the 16x16 -> 32x32 conditional's model error dominates
    either way (docs/notes/2026-12-07-wirg-hmc.md), so the default stays MALA."""

    samples: int = 1024
    groups: int = 4
    warmup: int = 300
    steps: int = 100
    adapt_every: int = 10
    leapfrog: int = 1

    def __post_init__(self):
        require_types(self, "generator")
        for name, minimum in (
            ("samples", 1),
            ("groups", 1),
            ("warmup", 0),
            ("steps", 1),
            ("adapt_every", 1),
            ("leapfrog", 1),
        ):
            require_integer(f"generator.{name}", getattr(self, name), minimum)
        require(
            self.samples % self.groups == 0,
            "generator.samples",
            self.samples,
            f"a multiple of generator.groups = {self.groups}",
        )


class ChainState(NamedTuple):
    """A chain's state: position, energy and gradient of the energy."""

    position: jax.Array
    energy: jax.Array
    grad: jax.Array


def chain_init(value_and_grad, position) -> ChainState:
    """A chain's state at ``position``, with its energy and gradient."""
    return ChainState(position, *value_and_grad(position))


def target_acceptance(leapfrog: int) -> float:
    """The acceptance that the step size is adapted to: MALA's optimum 0.574 for one leapfrog step (Roberts &
    Rosenthal 1998), HMC's 0.651 for more (Beskos et al. 2013)."""
    return MALA_TARGET_ACCEPTANCE if leapfrog == 1 else HMC_TARGET_ACCEPTANCE


def hmc_step(key, state: ChainState, value_and_grad, step_size, spread, leapfrog: int = 1):
    """One preconditioned Hamiltonian Monte Carlo step of ``leapfrog`` leapfrog steps on the energy
    ``value_and_grad: v -> (E, dE/dv)`` (``E = inf`` where the target vanishes); returns the new state and whether
    the move was accepted.  One leapfrog step is MALA, with the same draws.

    The momentum ``r ~ N(0, 1)`` is in units of ``spread`` (the mass matrix ``diag(1 / s^2)``): a drift moves
    ``v += eps s r``, a half kick ``r -= (eps / 2) s dE/dv``, and the move is accepted with
    ``min{1, exp(E(v) + r^2/2 - E(v') - r'^2/2)}``.  Each half kick is clipped to ``MAX_DRIFT`` per coordinate, which
    for one leapfrog step is the truncated drift of MALTA (Roberts & Tweedie 1996).  In the bulk of the distribution
    the kicks are a fraction of the momentum and the step is plain HMC; where the energy is steep (a potential's
    wall) the unclipped kick would throw every proposal out of the support, and a chain started there would never
    move.  A clipped leapfrog step is still a volume-preserving, reversible map (each kick depends on the position
    only), so the chain stays exact.  A trajectory that passes where the target vanishes is rejected."""
    momentum_key, accept_key = jax.random.split(key)

    def kick(momentum, grad):
        return momentum - jnp.clip(0.5 * step_size * spread * grad, -MAX_DRIFT, MAX_DRIFT)

    def leap(carry, _):  # half kick, drift, half kick
        position, momentum, _, grad, inside = carry
        momentum = kick(momentum, grad)
        position = position + step_size * spread * momentum
        energy, grad = value_and_grad(position)
        return (position, kick(momentum, grad), energy, grad, inside & jnp.isfinite(energy)), None

    start = jax.random.normal(momentum_key, state.position.shape, state.position.dtype)
    first = (state.position, start, state.energy, state.grad, jnp.bool_(True))
    position, momentum, energy, grad, inside = jax.lax.scan(leap, first, None, length=leapfrog)[0]
    log_ratio = state.energy - energy + 0.5 * (jnp.sum(start**2) - jnp.sum(momentum**2))
    accept = (jnp.log(jax.random.uniform(accept_key)) < log_ratio) & inside
    new = ChainState(position, energy, grad)
    return jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state), accept


class ScaleParams(NamedTuple):
    """What a scale's chains need besides its (static) ansatz: ``theta``, the per-channel ``spread`` and the
    ``support`` interval, as arrays so that a new fit does not recompile the sampler."""

    theta: jax.Array
    spread: jax.Array
    support: jax.Array

    @classmethod
    def of(cls, scale) -> "ScaleParams":
        """The arrays of a fitted scale."""
        return cls(
            jnp.asarray(scale.theta, jnp.float32),
            jnp.asarray(scale.spread, jnp.float32),
            jnp.asarray(scale.support, jnp.float32),
        )


@lru_cache(maxsize=64)
def conditional_chains(ansatz, warmup: int, steps: int, adapt_every: int, record_every: int = 0, leapfrog: int = 1):
    """One HMC chain (of ``leapfrog`` leapfrog steps a step; MALA for one) per coarse field at one scale, jitted once
    per ansatz and lengths:
    ``(key, coarse[n], free[n], params, log_step) -> (free[n], log_step, acceptance[n, steps],
    energy[n, steps], features[n, steps // record_every, K] or None)``.

    The chains start at ``free`` and adapt ``log_step`` for ``warmup`` steps, then run ``steps`` with it fixed,
    recording the features every ``record_every`` of those steps (never if 0).
    """
    blocks, target = -(-warmup // adapt_every), target_acceptance(leapfrog)

    def chain(key, state, coarse, params, step_size, length, record):
        value_and_grad = ansatz.conditional_energy(params.theta, coarse, params.support)
        spread = params.spread[:, None, None]

        def body(state, k):
            state, accept = hmc_step(k, state, value_and_grad, step_size, spread, leapfrog)
            return state, (accept, state.energy)

        if not record:
            state, (accept, energy) = jax.lax.scan(body, state, jax.random.split(key, length))
            return state, (accept, energy, None)

        def recorded(state, k):
            state, (accept, energy) = jax.lax.scan(body, state, jax.random.split(k, record))
            return state, (accept, energy, ansatz.features(coarse, state.position))

        state, (accept, energy, features) = jax.lax.scan(recorded, state, jax.random.split(key, length // record))
        return state, (accept.reshape(-1), energy.reshape(-1), features)

    def run(key, coarse, free, params, log_step):
        n = len(coarse)
        state = jax.vmap(lambda c, f: chain_init(ansatz.conditional_energy(params.theta, c, params.support), f))(
            coarse, free
        )
        chains = jax.vmap(chain, in_axes=(0, 0, 0, None, None, None, None))

        def adapt(carry, block):
            state, log_step = carry
            state, (accepted, *_) = chains(
                jax.random.split(block[0], n), state, coarse, params, jnp.exp(log_step), adapt_every, 0
            )
            return (state, log_step + (jnp.mean(accepted) - target) / jnp.sqrt(block[1] + 1.0)), None

        warmup_key, sample_key = jax.random.split(key)
        (state, log_step), _ = jax.lax.scan(
            adapt, (state, log_step), (jax.random.split(warmup_key, blocks), jnp.arange(blocks, dtype=jnp.float32))
        )
        state, (accepted, energy, features) = chains(
            jax.random.split(sample_key, n), state, coarse, params, jnp.exp(log_step), steps, record_every
        )
        return state.position, log_step, accepted, energy, features

    return jax.jit(run)


def initial_log_step(ansatz) -> jax.Array:
    """``ln eps`` of the MALA scaling ``d^(-1/6)`` for ``d`` free variables (a standard Gaussian's optimum)."""
    return -jnp.log(jnp.float32(np.prod(ansatz.free_shape))) / 6


def integrated_time(trace) -> float:
    """Integrated autocorrelation time (in steps) of ``trace[chain, step]``.

    Every chain has its own coarse field, hence its own target: each chain is standardised by its own mean
    and standard deviation before ArviZ's bulk ESS is taken over all of them, ``tau = size / ESS``.
    """
    trace = np.asarray(trace, np.float64)
    spread = trace.std(axis=1, keepdims=True)
    trace = (trace - trace.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    ess = float(xr.DataArray(trace, dims=("chain", "draw")).azstats.ess())
    return trace.size / ess


START_TRIES = 4  # draws of the Gaussian start per chain; the first whose finer field lies in the support is taken


def start_inside(scale, key, coarse, fallback) -> jax.Array:
    """A draw of ``scale.start`` for each chain whose finer field lies in the support (a Gaussian's tails leave the
    data's range, where the energy is +inf, in 10-20 % of the draws on phi^4's fine scales): the first inside of
    ``START_TRIES``, or ``fallback`` if none is."""
    drawn = jnp.stack([scale.start.draw(k, coarse) for k in jax.random.split(key, START_TRIES)])
    finer = jax.vmap(jax.vmap(scale.ansatz.finer_field), in_axes=(None, 0))(coarse, drawn)
    inside = jnp.all((finer >= scale.support[0]) & (finer <= scale.support[1]), axis=(-2, -1))
    first = jnp.argmax(inside, axis=0)
    chosen = jnp.take_along_axis(drawn, first[None, :, None, None, None], axis=0)[0]
    return jnp.where(jnp.any(inside, axis=0)[:, None, None, None], chosen, fallback)


def sample_scale(key, scale, coarse, settings: GeneratorSettings) -> tuple[jax.Array, dict]:
    """Draw the free variables of ``scale`` for every coarse field ``coarse[n]``, starting at a draw of the data's
    Gaussian conditional (at 0 for a scale fitted without one); returns them and the scale's statistics (step size,
    acceptance, autocorrelation time of the energy)."""
    ansatz, n = scale.ansatz, len(coarse)
    start_key, key = jax.random.split(key)
    start = jnp.zeros((n, *ansatz.free_shape), jnp.float32)
    if scale.start is not None:
        start = start_inside(scale, start_key, coarse, start)
    run = conditional_chains(ansatz, settings.warmup, settings.steps, settings.adapt_every, leapfrog=settings.leapfrog)
    free, log_step, accepted, trace, _ = run(key, coarse, start, ScaleParams.of(scale), initial_log_step(ansatz))
    log_step, acceptance, trace = gather((log_step, jnp.mean(accepted), trace[: min(n, 64)]))
    return free, {
        "step_size": float(np.exp(log_step)),
        "acceptance": float(acceptance),
        "tau_energy": integrated_time(trace),
    }


def model_fingerprint(model) -> str:
    """A short hash of a fitted model's parameters: a generator's checkpoint resumes only on it."""
    return fingerprint(np.concatenate([np.ravel(scale.theta) for scale in model.scales]))


def _conditioning(model, coarse, fields: int) -> tuple[int, jax.Array | None]:
    """The scale to start from and the standardised coarse fields, for ``coarse`` in the fitted field's units."""
    if coarse is None:
        return 0, None
    coarse = np.asarray(coarse, np.float32)
    coarse = np.broadcast_to(coarse, (fields, *coarse.shape[-2:])) if coarse.ndim == 2 else coarse
    sides = {scale.ansatz.side: index for index, scale in enumerate(model.scales) if not scale.ansatz.coarsest}
    require(
        coarse.ndim == 3
        and coarse.shape[0] == fields
        and coarse.shape[1] == coarse.shape[2]
        and coarse.shape[1] in sides,
        "coarse",
        f"shape {coarse.shape}",
        f"coarse fields phi_j of shape (m, m) or ({fields}, m, m) with m in {sorted(sides)}",
    )
    require(bool(np.all(np.isfinite(coarse))), "coarse", "non-finite values", "finite coarse fields")
    return sides[coarse.shape[1]], jnp.asarray(coarse / model.unit)


def generate(
    model,
    hamiltonian,
    settings: GeneratorSettings = GeneratorSettings(),
    *,
    seed: int = 0,
    data=None,
    coarse=None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
):
    """Generate ``settings.samples`` fields coarse to fine; returns a DataTree.

    ``posterior.phi[chain, draw, x, y]`` holds the fields in the data's units with the scalar observables
    of ``hamiltonian`` (``None`` for data without a known energy: the moments of the mean only); each draw
    is an independent chain's last state.  ``attrs["gradient_evaluations"]`` counts the conditional gradients
    in full-field equivalents (weighted by each scale's share of the sites); ``attrs["scales"]`` is the
    per-scale record (JSON) and ``observed_data.phi`` the training ``data`` if given.  With ``coarse`` (a
    coarse field ``phi_j`` of the fitted field ``model.transform.forward(phi)``, in its units, as
    :func:`~rgppl.wirg.pyramid` gives it, one for all fields or one per field) only the finer scales are drawn:
    super-resolution, the generated fields' coarse part is ``coarse``.  With ``checkpoint`` the fields are saved
    after every scale; ``resume`` continues from there.
    """
    if hamiltonian is not None:
        require(
            model.L == hamiltonian.lattice.shape[0],
            "hamiltonian.lattice",
            hamiltonian.lattice.shape,
            f"the model was fitted on {model.L} x {model.L} fields",
        )
    checkpoint = None if checkpoint is None else Path(checkpoint)
    first, fields = _conditioning(model, coarse, settings.samples)
    identity = model_fingerprint(model) + ("" if fields is None else fingerprint(fields))
    described = None if hamiltonian is None else hamiltonian.describe()
    meta = {
        "hamiltonian": described,
        "seed": seed,
        "sampler": "wirg",
        "settings": asdict(settings),
        "fingerprint": identity,
    }
    keys = jax.random.split(jax.random.key(require_seed(seed)), len(model.scales))

    def scale_phase(index: int) -> Phase:
        scale = model.scales[index]

        def advance(fields, n):
            free, stats = sample_scale(keys[index], scale, fields, settings)
            fields = free[:, 0] if index == 0 else idwt2(fields, free, model.wavelet)
            return fields, {"free": free, **{k: np.array(v) for k, v in stats.items()}}

        live = lambda out: {"acceptance": f"{float(out['acceptance']):.2f}", "tau": f"{float(out['tau_energy']):.1f}"}
        side = scale.ansatz.side
        return Phase(
            f"scale {index} ({side}x{side})", 1, 1, advance, finite=("free",), summed=SCALE_STATISTICS, postfix=live
        )

    if fields is None:  # the coarsest energy is drawn with nothing to condition on
        side = model.scales[0].ansatz.side
        fields = jnp.zeros((settings.samples, side, side), jnp.float32)
    phases = [scale_phase(index) for index in range(first, len(model.scales))]
    fields, done = run_phases(
        phases,
        fields,
        label="WIRG generate",
        batch=settings.samples,
        meta=meta,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        hint="Check the fit's report (condition numbers, losses).",
    )
    records = [
        {
            "side": model.scales[i].ansatz.side,
            **{k: done.totals[f"{phase.name}_{k}"] for k in SCALE_STATISTICS},  # one chunk: the sum is the value
            "gradient_evaluations": settings.samples * (settings.warmup + settings.steps) * settings.leapfrog,
            "free_variables": int(np.prod(model.scales[i].ansatz.free_shape)),
            "time_s": done.seconds[phase.name],
        }
        for i, phase in zip(range(first, len(model.scales)), phases, strict=True)
    ]
    phi = gather(model.restore(fields)).astype(np.float32)
    attrs = {
        "sampler": "wirg",
        "sampling_time_s": sum(record["time_s"] for record in records),
        "devices": done.devices,
        "gradient_evaluations": int(sum(r["gradient_evaluations"] * r["free_variables"] for r in records) / model.L**2),
        "scales": json.dumps(records),
        **{f"generator_{k}": v for k, v in asdict(settings).items()},
    }
    dt = make_datatree(hamiltonian, phi.reshape(settings.groups, -1, *phi.shape[1:]), attrs=attrs)
    if data is not None:
        dt["observed_data"] = xr.DataTree(xr.Dataset({"phi": (("sample", "x", "y"), np.asarray(data, np.float32))}))
    return dt
