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

After every chunk of draws the draws so far and the complete sampler state are written atomically to an
``.npz`` checkpoint (arrays only, no pickle), so an interrupted run resumes where it stopped and produces
exactly the draws an uninterrupted run would have.  Non-finite draws or energies stop the run with a
message; the last good checkpoint is kept.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np
from jax import lax
from numpyro.infer import NUTS
from tqdm.auto import tqdm

from rgppl import checkpoints
from rgppl.diagnostics import make_datatree
from rgppl.errors import SamplingDiverged, require, require_integer

CHAIN_METHODS = ("vectorized", "sequential")
EXTRA_FIELDS = ("num_steps", "diverging", "accept_prob", "potential_energy", "energy")


@dataclass(frozen=True)
class NUTSSettings:
    """What a NUTS run does.  ``checkpoint_every`` is the number of draws per chain between checkpoints;
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
        for name in ("chains", "warmup", "samples", "max_tree_depth", "checkpoint_every"):
            require_integer(f"nuts.{name}", getattr(self, name), 0 if name == "warmup" else 1)
        require(isinstance(self.dense_mass, bool), "nuts.dense_mass", self.dense_mass, "true or false")
        require(0 < self.target_accept < 1, "nuts.target_accept", self.target_accept, "a number in (0, 1)")
        require(self.chain_method in CHAIN_METHODS, "nuts.chain_method", self.chain_method, f"one of {CHAIN_METHODS}")


def _save_checkpoint(path: Path, meta: dict, state, draws: dict) -> None:
    leaves = jax.tree_util.tree_leaves(state)
    checkpoints.save(path, meta, {**{f"state_{i}": leaf for i, leaf in enumerate(leaves)},
                                  **{f"draws_{k}": v for k, v in draws.items()}})


def _load_checkpoint(path: Path, meta: dict, template) -> tuple:
    saved, arrays = checkpoints.load(path, meta)
    treedef = jax.tree_util.tree_structure(template)
    leaves = [arrays[f"state_{i}"] for i in range(treedef.num_leaves)]
    draws = {k[len("draws_"):]: v for k, v in arrays.items() if k.startswith("draws_")}
    return jax.tree_util.tree_unflatten(treedef, leaves), draws, saved["draws_done"]


def _check_finite(draws: dict, chunk: int, checkpoint: Path | None) -> None:
    bad = [k for k in ("phi", "potential_energy") if not np.all(np.isfinite(draws[k]))]
    if bad:
        kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was requested"
        raise SamplingDiverged(
            f"NUTS produced non-finite {' and '.join(bad)} in sampling chunk {chunk}; {kept}. "
            "Check the couplings (is the energy bounded below?) or lower the step size via a higher target_accept."
        )


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
    record = lambda state: {"phi": postprocess(state.z)["phi"], "step_size": state.adapt_state.step_size,
                            **{k: getattr(state, k) for k in EXTRA_FIELDS}}

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


def run_nuts(hamiltonian, settings: NUTSSettings = NUTSSettings(), *, seed: int = 0, checkpoint=None,
             resume: bool = False, progress: bool = True, model=None, label: str = "nuts", fingerprint: str = ""):
    """Sample ``p(phi) ∝ exp(-E(phi))`` with NUTS; return a DataTree (see :mod:`rgppl.diagnostics`).

    ``checkpoint`` is an ``.npz`` path written after every chunk; with ``resume=True`` an existing
    checkpoint of the same model, seed and settings is continued (``samples`` may be larger than
    the checkpoint's, extending a finished run).  One root key ``PRNGKey(seed)``.

    ``model`` replaces ``hamiltonian.model`` by a reparameterised model of the same field (e.g. the
    NeuTra model of :mod:`rgppl.infer.neutra`, where ``phi`` is a deterministic site); ``label``
    names the sampler and ``fingerprint`` identifies the reparameterisation in checkpoints.
    """
    kernel = NUTS(model or hamiltonian.model, target_accept_prob=settings.target_accept,
                  max_tree_depth=settings.max_tree_depth, dense_mass=settings.dense_mass)
    meta = {"hamiltonian": hamiltonian.describe(), "seed": seed, "sampler": label, "settings": asdict(settings),
            "fingerprint": fingerprint}
    checkpoint = Path(checkpoint) if checkpoint else None
    state = _initial_state(kernel, settings, jax.random.PRNGKey(seed), hamiltonian.name)
    chunk, size = _compiled_chunk(kernel, settings), min(settings.checkpoint_every, settings.samples)
    draws, done, times = {}, 0, {"warmup_time_s": 0.0, "sampling_time_s": 0.0}
    bar = lambda phase, total, initial=0: tqdm(total=total, initial=initial, desc=f"{label} {phase} {hamiltonian.name}",
                                               disable=not progress, unit="draw")

    if resume and checkpoint and checkpoint.exists():
        state, draws, done = _load_checkpoint(checkpoint, meta, state)
        warmup_steps = int(draws.pop("warmup_num_steps"))
        times = {k: float(draws.pop(k)) for k in times}
    else:
        start, warmup_steps, warmed = time.perf_counter(), 0, 0
        with bar("warmup", settings.warmup) as progress_bar:
            while warmed < settings.warmup:
                n = min(size, settings.warmup - warmed)
                state, new = chunk(state, n)
                warmup_steps, warmed = warmup_steps + int(new["num_steps"].sum()), warmed + n
                progress_bar.update(n)
        times["warmup_time_s"] = time.perf_counter() - start

    with bar("sampling", settings.samples, done) as progress_bar:
        while done < settings.samples:
            n = min(size, settings.samples - done)
            start = time.perf_counter()
            state, new = chunk(state, n)
            new = {k: np.asarray(v) for k, v in new.items()}
            times["sampling_time_s"] += time.perf_counter() - start
            _check_finite(new, done // size, checkpoint)
            draws = {k: np.concatenate([draws[k], v], axis=1) if k in draws else v for k, v in new.items()}
            done += n
            if checkpoint:
                extra = {"warmup_num_steps": np.array(warmup_steps), **{k: np.array(v) for k, v in times.items()}}
                _save_checkpoint(checkpoint, {**meta, "draws_done": done}, state, {**draws, **extra})
            progress_bar.set_postfix(divergent=int(draws["diverging"].sum()), accept=f"{draws['accept_prob'].mean():.2f}",
                                     steps=f"{draws['num_steps'].mean():.0f}")
            progress_bar.update(n)

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
        "warmup_gradient_evaluations": warmup_steps,
        **times,
        **{f"nuts_{k}": int(v) if isinstance(v, bool) else v for k, v in asdict(settings).items()},  # netCDF has no bool
    }
    return make_datatree(hamiltonian, draws["phi"], sample_stats=sample_stats, attrs=attrs)
