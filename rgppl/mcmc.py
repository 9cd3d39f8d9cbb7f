"""Baseline sampling: NumPyro's NUTS on any rgppl Hamiltonian, chunked for progress and checkpoints.

The run is NumPyro's NUTS kernel driven by one loop: ``NUTS.init`` (per chain), then the kernel's own
transition ``NUTS.sample`` in a ``lax.scan`` of ``checkpoint_every`` draws, over all chains at once
(``vmap``, "vectorized") or one after the other (``lax.map``, "sequential"), compiled once per run and
called chunk after chunk: first through the ``warmup`` transitions, in which the kernel adapts its step size
and mass matrix (diagonal, or dense with ``dense_mass``), then through the draws.  The transitions are
NumPyro's, so the draws are exactly those of ``MCMC.run`` from the same key.  (``MCMC`` itself is not used:
called per chunk it compiles every multi-chain chunk afresh, as its cache of compiled samplers is bypassed
under ``vmap``/``lax.map`` (19 s a chunk for a NeuTra model on 16 x 16), and each of its compiled loops
keeps ~460 memory mappings for the life of the process, so a long run, or many runs, reached the kernel's
``vm.max_map_count`` (65530) and aborted in LLVM.)

The chunks run in :func:`rgppl.loop.run_phases`: after every chunk of warm-up or of draws, the draws so far
and the complete sampler state are written to a checkpoint (:mod:`rgppl.checkpoints`: Orbax, no pickle), so
an interrupted run resumes where it stopped, within the warm-up too, and produces exactly the draws an
uninterrupted run would have.  A non-finite energy (warm-up included) or draw stops the run with a message;
the last good checkpoint is kept.
"""

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.infer import NUTS
from numpyro.infer.util import potential_energy

from rgppl.diagnostics import make_datatree
from rgppl.errors import SamplingDiverged, require, require_integer, require_seed, require_types
from rgppl.loop import Phase, run_phases
from rgppl.mesh import gather

CHAIN_METHODS = ("vectorized", "sequential")
EXTRA_FIELDS = ("num_steps", "diverging", "accept_prob", "potential_energy", "energy")


@dataclass(frozen=True)
class NUTSSettings:
    """What a NUTS run does.  ``checkpoint_every`` draws per chain run at a time, after which a checkpoint may be
    written (:mod:`rgppl.loop`);
    ``dense_mass`` adapts a full covariance as the mass matrix (NumPyro's ``dense_mass``) instead of a diagonal."""

    chains: int = 4
    warmup: int = 500
    samples: int = 1000
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: str = "vectorized"
    checkpoint_every: int = 250

    def __post_init__(self):
        require_types(self, "nuts")
        for name in ("chains", "warmup", "samples", "max_tree_depth", "checkpoint_every"):
            require_integer(f"nuts.{name}", getattr(self, name), 0 if name == "warmup" else 1)
        require(0 < self.target_accept < 1, "nuts.target_accept", self.target_accept, "a number in (0, 1)")
        require(self.chain_method in CHAIN_METHODS, "nuts.chain_method", self.chain_method, f"one of {CHAIN_METHODS}")


def _batched_by_chain(settings: NUTSSettings) -> bool:
    """Whether the chains share one vmapped transition ("vectorized") rather than each its own ("sequential")."""
    return settings.chains > 1 and settings.chain_method == "vectorized"


def _initial_state(kernel, settings: NUTSSettings, key, name: str):
    """``NUTS.init`` for every chain, as ``MCMC`` does it: a state with the chains on its leading axis."""
    keys = jax.random.split(key, settings.chains) if settings.chains > 1 else key[None]
    try:
        if _batched_by_chain(settings):  # NumPyro then vmaps the kernel's transition
            return kernel.init(keys, settings.warmup, None, (), {})
        states = [kernel.init(one, settings.warmup, None, (), {}) for one in keys]
    except RuntimeError as error:
        if "valid initial parameters" not in str(error):
            raise
        raise SamplingDiverged(
            f"NUTS could not start: the energy of {name} or its gradient is not finite at any initial "
            "point tried (uniform in [-2, 2] per site). Check the terms, in particular custom ones."
        ) from None
    return jax.tree.map(lambda *leaves: np.stack(leaves), *states)


def _compiled_chunk(kernel, settings: NUTSSettings):
    """``chunk(state, n) -> (state, draws)``: ``n`` NUTS transitions of every chain, compiled once per ``n``.

    ``state`` holds the chains on its leading axis; ``draws`` are ``phi`` (the model's constrained value, a
    deterministic site of a reparameterised model included) and ``EXTRA_FIELDS``, each ``[chain, draw, ...]``.
    """
    postprocess = kernel.postprocess_fn((), {})
    record = lambda state: {
        "phi": postprocess(state.z)["phi"],
        "step_size": state.adapt_state.step_size,
        **{k: getattr(state, k) for k in EXTRA_FIELDS},
    }

    def scan(state, n: int, record):
        def transition(state, _):
            state = kernel.sample(state, (), {})
            return state, record(state)

        return lax.scan(transition, state, None, length=n)

    def chunk(state, n: int):
        if _batched_by_chain(settings):
            state, draws = scan(state, n, jax.vmap(record))
            return state, jax.tree.map(lambda v: v.swapaxes(0, 1), draws)
        return lax.map(lambda one: scan(one, n, record), state)

    return jax.jit(chunk, static_argnums=1)


HINT = "Check the couplings (is the energy bounded below?) or lower the step size via a higher target_accept."
STUCK_DRAWS = 10  # a chain every transition of which diverges over a chunk this long is stopped
PROBES = 32  # points one step from a diverging chain at which its energy and gradient are measured


def _probe(model):
    """``probe(z, step, key) -> finite[PROBES]``, compiled once per run: whether the energy and its gradient are
    finite at ``PROBES`` points one step size from one chain's unconstrained state ``z``."""
    energy = jax.value_and_grad(lambda point: potential_energy(model, (), {}, point))

    def probe(z, step, key):
        def one(key):
            value, grad = energy(jax.tree.map(lambda v: v + step * jax.random.normal(key, v.shape, v.dtype), z))
            return jnp.isfinite(value) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)]))

        return jax.vmap(one)(jax.random.split(key, PROBES))

    return jax.jit(probe)


def _stopping_on_non_finite(chunk, model):
    """``chunk`` that stops the run (:class:`SamplingDiverged`) where NumPyro would go on.  NumPyro counts a proposal
    of non-finite energy as a divergence, rejects it and continues; so after a chunk with divergences the energy and
    its gradient are measured one step from each chain that diverged, and any non-finite value stops the run.  A
    chain whose every transition of a chunk of at least ``STUCK_DRAWS`` diverged, though they are finite, has a
    collapsed step size and stops too."""

    probe = _probe(model)

    def checked(state, n: int):
        state, draws = chunk(state, n)
        diverging = gather(draws["diverging"])
        for chain in np.flatnonzero(diverging.any(axis=1)):
            step = float(gather(state.adapt_state.step_size).reshape(-1)[chain])
            z = jax.tree.map(lambda v: v[chain], gather(state.z))
            bad = int(PROBES - np.sum(np.asarray(probe(z, step, jax.random.PRNGKey(int(chain))))))
            if bad:
                raise SamplingDiverged(
                    f"NUTS chain {chain} diverged, and the energy or its gradient is not finite at {bad} of {PROBES} "
                    f"points one step ({step:.3g}) from it: a term is NaN or infinite over part of the field space. "
                    "Check the terms, custom ones in particular."
                )
            if n >= STUCK_DRAWS and diverging[chain].all():
                raise SamplingDiverged(
                    f"all {n} NUTS transitions of chain {chain} in a row diverged, though the energy "
                    f"and its gradient are finite one step ({step:.3g}) from it: the step size "
                    f"collapsed. {HINT}"
                )
        return state, draws

    return checked


def _live_figures(draws: dict) -> dict:
    return {
        "divergent": int(draws["diverging"].sum()),
        "accept": f"{draws['accept_prob'].mean():.2f}",
        "steps": f"{draws['num_steps'].mean():.0f}",
    }


def run_nuts(
    hamiltonian,
    settings: NUTSSettings = NUTSSettings(),
    *,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    model=None,
    label: str = "nuts",
    fingerprint: str = "",
):
    """Sample ``p(phi) ∝ exp(-E(phi))`` with NUTS; return a DataTree (see :mod:`rgppl.diagnostics`).

    ``checkpoint`` is a directory written after every chunk of warm-up and of draws
    (:func:`rgppl.loop.run_phases`); with ``resume=True`` an existing checkpoint of the same model, seed and
    settings is continued exactly, from within the warm-up too (``samples`` may be larger than the
    checkpoint's, extending a finished run).  One root key ``PRNGKey(seed)``.

    ``model`` replaces ``hamiltonian.model`` by a reparameterised model of the same field (e.g. the
    NeuTra model of :mod:`rgppl.infer.neutra`, where ``phi`` is a deterministic site); ``label``
    names the sampler and ``fingerprint`` identifies the reparameterisation in checkpoints.
    """
    kernel = NUTS(
        model or hamiltonian.model,
        target_accept_prob=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
        dense_mass=settings.dense_mass,
    )
    meta = {
        "hamiltonian": hamiltonian.describe(),
        "seed": seed,
        "sampler": label,
        "settings": asdict(settings),
        "fingerprint": fingerprint,
    }
    state = _initial_state(kernel, settings, jax.random.PRNGKey(require_seed(seed)), hamiltonian.name)
    chunk = _stopping_on_non_finite(_compiled_chunk(kernel, settings), model or hamiltonian.model)
    size = min(settings.checkpoint_every, settings.samples)
    phases = [
        Phase(
            "warmup",
            settings.warmup,
            size,
            chunk,
            finite=("potential_energy",),
            summed=("num_steps",),
            postfix=_live_figures,
        ),
        Phase(
            "sampling",
            settings.samples,
            size,
            chunk,
            keep=True,
            finite=("phi", "potential_energy"),
            postfix=_live_figures,
        ),
    ]
    _, done = run_phases(
        phases,
        state,
        label=f"{label} {hamiltonian.name}",
        batch=settings.chains,
        meta=meta,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        hint=HINT,
    )
    draws = done.draws
    tree_depth = np.log2(draws["num_steps"]).astype(int) + 1  # as ArviZ's from_numpyro derives it
    sample_stats = {  # under ArviZ's names, so that az.bfmi and plot_energy work
        "n_steps": draws["num_steps"],
        "tree_depth": tree_depth,
        "reached_max_tree_depth": tree_depth >= settings.max_tree_depth,
        "diverging": draws["diverging"],
        "acceptance_rate": draws["accept_prob"],
        "step_size": draws["step_size"],
        "energy": draws["energy"],
        "lp": -draws["potential_energy"],
    }
    attrs = {
        "sampler": label,
        "seed": seed,
        "gradient_evaluations": int(draws["num_steps"].sum()),
        "warmup_gradient_evaluations": int(done.totals.get("warmup_num_steps", 0)),
        "warmup_time_s": done.seconds.get("warmup", 0.0),
        "sampling_time_s": done.seconds["sampling"],
        "devices": done.devices,
        **{
            f"nuts_{k}": int(v) if isinstance(v, bool) else v for k, v in asdict(settings).items()
        },  # netCDF has no bool
    }
    return make_datatree(hamiltonian, draws["phi"], sample_stats=sample_stats, attrs=attrs)
