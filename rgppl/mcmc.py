"""Baseline sampling: NumPyro's NUTS on any rgppl Hamiltonian, chunked for progress and checkpoints.

Warm-up runs once (step size and mass matrix adaptation: diagonal, or dense with ``dense_mass``); the
sampling phase then runs in chunks of ``checkpoint_every`` draws.  After every chunk the draws so far
and the complete sampler state are written atomically to an ``.npz`` checkpoint (arrays only, no
pickle), so an interrupted run resumes where it stopped and produces exactly the draws an
uninterrupted run would have.  With more than one chain NumPyro compiles each chunk afresh (its cache
of compiled samplers is bypassed under ``vmap``/``lax.map``), and every compiled executable keeps its
memory mappings until JAX's caches are cleared: about 500 per chunk, so a long run would exhaust the
kernel's limit (``vm.max_map_count``, 65530) and abort in LLVM ("Unable to allocate section memory").
The caches are therefore cleared after every chunk of a multi-chain run (a single chain's compiled
sampler is cached by NumPyro and reused from chunk to chunk).
Non-finite draws or energies stop the run with a message; the last good checkpoint is kept.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS
from tqdm.auto import tqdm

from rgppl import checkpoints
from rgppl.diagnostics import make_datatree
from rgppl.errors import SamplingDiverged, require, require_integer

CHAIN_METHODS = ("vectorized", "sequential", "parallel")
EXTRA_FIELDS = ("num_steps", "diverging", "accept_prob", "potential_energy")


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
    chunk = min(settings.checkpoint_every, settings.samples)
    mcmc = MCMC(kernel, num_warmup=settings.warmup, num_samples=chunk, num_chains=settings.chains,
                chain_method=settings.chain_method, progress_bar=False)
    meta = {"hamiltonian": hamiltonian.describe(), "seed": seed, "sampler": label, "settings": asdict(settings),
            "fingerprint": fingerprint}
    checkpoint = Path(checkpoint) if checkpoint else None
    key = jax.random.PRNGKey(seed)
    draws, done, times = {}, 0, {"warmup_time_s": 0.0, "sampling_time_s": 0.0}

    if resume and checkpoint and checkpoint.exists():
        keys = jax.random.split(key, settings.chains) if settings.chains > 1 else key
        template = kernel.init(keys, settings.warmup, None, (), {})
        state, draws, done = _load_checkpoint(checkpoint, meta, template)
        warmup_steps = int(draws.pop("warmup_num_steps"))
        times = {k: float(draws.pop(k)) for k in times}
    else:
        start = time.perf_counter()
        mcmc.progress_bar = progress  # NumPyro's own bar for the warm-up; the chunks below have ours
        try:
            mcmc.warmup(key, extra_fields=("num_steps",), collect_warmup=True)
        except RuntimeError as error:
            if "valid initial parameters" not in str(error):
                raise
            raise SamplingDiverged(
                f"NUTS could not start: the energy of {hamiltonian.name} or its gradient is not finite at any initial "
                "point tried (uniform in [-2, 2] per site). Check the terms, in particular custom ones."
            ) from None
        mcmc.progress_bar = False
        times["warmup_time_s"] = time.perf_counter() - start
        warmup_steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
        state = mcmc.last_state

    bar = tqdm(total=settings.samples, initial=done, desc=f"{label} {hamiltonian.name}", disable=not progress, unit="draw")
    while done < settings.samples:
        mcmc.num_samples = min(chunk, settings.samples - done)
        mcmc.post_warmup_state = state
        start = time.perf_counter()
        mcmc.run(state.rng_key, extra_fields=EXTRA_FIELDS)
        new = {"phi": mcmc.get_samples(group_by_chain=True)["phi"], **mcmc.get_extra_fields(group_by_chain=True)}
        new = {k: np.asarray(v) for k, v in new.items()}  # (chain, draw, ...) for any number of chains
        times["sampling_time_s"] += time.perf_counter() - start
        _check_finite(new, done // chunk, checkpoint)
        draws = {k: np.concatenate([draws[k], v], axis=1) if k in draws else v for k, v in new.items()}
        state, done = mcmc.last_state, done + mcmc.num_samples
        if settings.chains > 1:  # release the chunk's compiled sampler (see the module docstring)
            jax.clear_caches()
        if checkpoint:
            extra = {"warmup_num_steps": np.array(warmup_steps), **{k: np.array(v) for k, v in times.items()}}
            _save_checkpoint(checkpoint, {**meta, "draws_done": done}, state, {**draws, **extra})
        bar.set_postfix(divergent=int(draws["diverging"].sum()), accept=f"{draws['accept_prob'].mean():.2f}",
                        steps=f"{draws['num_steps'].mean():.0f}")
        bar.update(mcmc.num_samples)
    bar.close()

    sample_stats = {
        "n_steps": draws["num_steps"],
        "diverging": draws["diverging"],
        "acceptance_rate": draws["accept_prob"],
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
