"""The Metropolized independence sampler (MIS) with a trained flow as its proposal.

Proposals ``x' ~ q`` do not depend on the chain's state; ``x'`` is accepted with probability
``min(1, exp(w(x') - w(x)))`` with ``w = -E - ln q`` (Li & Wang 2018; reference sheet §3), so the
chain is exact for ``p ∝ exp(-E)`` whatever ``q`` is, and efficient when ``q`` is close to ``p``.
``init``/``step`` are pure functions over a NamedTuple state (BlackJAX style) and vmap over chains;
proposals are drawn in chunks and the accept/reject decisions run in one ``lax.scan`` per chunk, driven by
rgppl's one run loop (:mod:`rgppl.loop`).
"""

from dataclasses import asdict, dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rgppl.diagnostics import make_datatree
from rgppl.errors import SamplingDiverged, require_integer, require_seed, require_types
from rgppl.loop import Phase, run_phases


@dataclass(frozen=True)
class MISSettings:
    """``chains`` independent chains of ``samples`` draws each (after ``warmup`` discarded steps), advanced
    ``checkpoint_every`` proposals per chain at a time (one batch of flow draws), after which a checkpoint may be
    written (:mod:`rgppl.loop`)."""

    chains: int = 4
    warmup: int = 100
    samples: int = 5000
    checkpoint_every: int = 1000

    def __post_init__(self):
        require_types(self, "mis")
        for name in ("chains", "samples", "checkpoint_every"):
            require_integer(f"mis.{name}", getattr(self, name), 1)
        require_integer("mis.warmup", self.warmup, 0)


class MISState(NamedTuple):
    """An independence-Metropolis chain: the current field and its log weight."""

    x: jax.Array  # the current field
    log_weight: jax.Array  # w(x) = -E(x) - ln q(x)


class MISInfo(NamedTuple):
    """One step's outcome: whether it moved, and its acceptance probability."""

    is_accepted: jax.Array
    acceptance_rate: jax.Array  # min(1, exp(w' - w))


def init(x, log_weight) -> MISState:
    """The sampler's state at field ``x`` with log weight ``-E(x) - ln q(x)``."""
    return MISState(x, log_weight)


def step(key, state: MISState, proposal: jax.Array, proposal_log_weight: jax.Array) -> tuple[MISState, MISInfo]:
    """One independence Metropolis step towards ``proposal`` (a draw of the flow) with its log weight."""
    log_ratio = proposal_log_weight - state.log_weight
    accept = jnp.log(jax.random.uniform(key)) < log_ratio
    new = MISState(jnp.where(accept, proposal, state.x), jnp.where(accept, proposal_log_weight, state.log_weight))
    return new, MISInfo(accept, jnp.minimum(1.0, jnp.exp(log_ratio)))


@jax.jit
def _chain_segment(keys, state: MISState, proposals, log_weights):
    """Scan ``step`` over proposals ``[steps, chains, ...]`` for all chains at once."""

    def one(state, inputs):
        key, x, w = inputs
        state, info = jax.vmap(step)(jax.random.split(key, x.shape[0]), state, x, w)
        return state, (state.x, info)

    return jax.lax.scan(one, state, (keys, proposals, log_weights))


def run_mis(
    trained,
    settings: MISSettings = MISSettings(),
    *,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
):
    """Sample ``p ∝ exp(-E)`` with the flow of ``trained`` as independence proposal; return a DataTree.

    ``sample_stats`` has ``is_accepted`` and ``acceptance_rate`` per draw; attributes record the
    acceptance, the flow evaluations and zero gradient evaluations (the sampler needs none).  The chains
    advance ``checkpoint_every`` proposals at a time in :func:`rgppl.loop.run_phases`: ``warmup`` discarded
    steps, then the ``samples`` kept; ``checkpoint`` (a directory) is written after every such chunk and
    ``resume=True`` continues it exactly, with the same flow only (its parameters' fingerprint).
    """
    h = trained.hamiltonian
    key_start, key_run = jax.random.split(jax.random.PRNGKey(require_seed(seed)))
    x0, _, w0 = trained.draw(key_start, settings.chains)

    def advance(state, n):
        key, chains = state
        key, key_propose, key_accept = jax.random.split(key, 3)
        x, _, w = trained.draw(key_propose, n * settings.chains)
        broken = int(np.sum(~np.isfinite(w)) + np.sum(~np.all(np.isfinite(x), axis=(-2, -1))))
        if broken:  # a proposal of NaN weight would be rejected silently, and the chain go on
            raise SamplingDiverged(
                f"{broken} of the flow's {len(w)} proposals have a non-finite field or weight "
                "-E - ln q: the flow or the energy is broken there. Check the flow's training."
            )
        shape = (n, settings.chains)
        chains, (fields, info) = _chain_segment(
            jax.random.split(key_accept, n),
            chains,
            jnp.asarray(x).reshape(*shape, *h.lattice.shape),
            jnp.asarray(w).reshape(shape),
        )
        return (key, chains), {"phi": fields.swapaxes(0, 1), **{k: v.swapaxes(0, 1) for k, v in info._asdict().items()}}

    live = lambda out: {"accept": f"{np.mean(out['is_accepted']):.3f}"}
    every = settings.checkpoint_every
    phases = [
        Phase("warmup", settings.warmup, every, advance, finite=("phi",), postfix=live),
        Phase("sampling", settings.samples, every, advance, keep=True, finite=("phi",), postfix=live),
    ]
    meta = {
        "hamiltonian": h.describe(),
        "seed": seed,
        "sampler": "mis",
        "settings": asdict(settings),
        "fingerprint": trained.fingerprint,
    }
    _, done = run_phases(
        phases,
        (key_run, init(jnp.asarray(x0), jnp.asarray(w0))),
        label=f"MIS {h.name}",
        batch=settings.chains,
        meta=meta,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        hint="The flow's draws or the energy are not finite: check the flow.",
    )
    draws = done.draws
    attrs = {
        "sampler": "mis",
        "seed": seed,
        "gradient_evaluations": 0,
        "sampling_time_s": done.seconds["sampling"],
        "warmup_time_s": done.seconds.get("warmup", 0.0),
        "flow_evaluations": (settings.warmup + settings.samples) * settings.chains,
        "devices": done.devices,
        "acceptance": float(draws["is_accepted"].mean()),
        **{f"mis_{k}": v for k, v in asdict(settings).items()},
    }
    return make_datatree(
        h, draws["phi"], sample_stats={k: draws[k] for k in ("is_accepted", "acceptance_rate")}, attrs=attrs
    )
