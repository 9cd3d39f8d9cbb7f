"""Reference ensembles for phi^4-type Hamiltonians that physicists trust at criticality.

For ``E = -J sum_<xy> phi_x phi_y + sum_x v(phi_x)`` with even ``v`` and ``J >= 0`` (every Hamiltonian
built from gradient, hopping, mass, quartic and double-well terms), one *sweep* is

1. a checkerboard Metropolis update of every site, ``phi_x -> phi_x + step xi`` with
   ``Delta E = v(phi'_x) - v(phi_x) - J (phi'_x - phi_x) sum_{y ~ x} phi_y``, then
2. a Swendsen-Wang update of the embedded Ising signs (Brower & Tamayo, PRL 62, 1087 (1989)): with
   ``phi_x = s_x |phi_x|`` the signs form an Ising model with couplings ``J |phi_x| |phi_y|``; each link
   with ``s_x = s_y`` is frozen with probability ``1 - exp(-2 J |phi_x phi_y|)`` and every cluster of
   frozen links flips its sign with probability 1/2.

The cluster moves remove most of the critical slowing down of the magnetisation.  Clusters are
labelled in JAX by min-label propagation with pointer jumping.  Chains are vmapped; sweeps are a
``lax.scan``.  The step size is adapted during warm-up only, towards an acceptance of 0.5.

The continuous Ising dual (Li & Wang 2018, eq. 8) has an exact cluster sampler of its own: Swendsen-Wang
sweeps of its Ising spins, each field drawn given the spins (:func:`ising_dual_draw`).
"""

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from rgppl.diagnostics import make_datatree
from rgppl.errors import InputError, SamplingDiverged, require, require_integer, require_seed, require_types
from rgppl.hamiltonians import IsingDual
from rgppl.lattice import apply_circulant
from rgppl.loop import Phase, run_phases
from rgppl.mesh import gather
from rgppl.storage import atomic_write_netcdf, fingerprint

ADAPT_BLOCK = 50
METROPOLIS_TARGET_ACCEPTANCE = 0.5


@dataclass(frozen=True)
class ClusterSettings:
    """A cluster-sampler run: ``samples`` draws per chain, one every ``thin`` sweeps, after ``warmup`` sweeps;
    ``checkpoint_every`` draws per chain at a time, after which a checkpoint may be written (:mod:`rgppl.loop`)."""

    chains: int = 4
    warmup: int = 500
    samples: int = 1000
    thin: int = 1
    checkpoint_every: int = 100

    def __post_init__(self):
        require_types(self, "cluster")
        for name in ("chains", "warmup", "samples", "thin", "checkpoint_every"):
            require_integer(f"cluster.{name}", getattr(self, name), 0 if name == "warmup" else 1)


def all_neighbour_sum(phi):
    """``sum_{y ~ x} phi_y`` over all four neighbours (both links counted on a size-2 axis)."""
    return sum(jnp.roll(phi, shift, axis) for shift in (1, -1) for axis in (-2, -1))


def cluster_labels(bond_x, bond_y):
    """Connected components of the periodic lattice graph of active links.

    ``bond_x[i, j]`` joins ``(i, j)`` and ``(i+1, j)``; ``bond_y[i, j]`` joins ``(i, j)`` and ``(i, j+1)``.
    Returns, per site, the smallest flat index in its component.
    """
    shape = bond_x.shape
    sentinel = bond_x.size

    def propagate(labels):
        candidates = [
            labels,
            jnp.where(bond_x, jnp.roll(labels, -1, 0), sentinel),
            jnp.where(jnp.roll(bond_x, 1, 0), jnp.roll(labels, 1, 0), sentinel),
            jnp.where(bond_y, jnp.roll(labels, -1, 1), sentinel),
            jnp.where(jnp.roll(bond_y, 1, 1), jnp.roll(labels, 1, 1), sentinel),
        ]
        smallest = jnp.min(jnp.stack(candidates), axis=0)
        return smallest.ravel()[smallest]  # pointer jumping: my label's label is in my component too

    def not_done(state):
        labels, previous = state
        return jnp.any(labels != previous)

    start = jnp.arange(bond_x.size).reshape(shape)
    labels, _ = jax.lax.while_loop(not_done, lambda s: (propagate(s[0]), s[0]), (propagate(start), start))
    return labels


def metropolis_sweep(key, phi, J, site_energy, step_size):
    """Checkerboard Metropolis over all sites (even lattice sides); returns the field, the acceptance and the number
    of proposals whose energy change was not finite (rejected, and a sign that the site potential is broken)."""
    x, y = jnp.indices(phi.shape)
    colours = (x + y) % 2
    accepted, non_finite = 0.0, 0
    for colour in (0, 1):
        key, k_step, k_accept = jax.random.split(key, 3)
        proposal = phi + step_size * jax.random.normal(k_step, phi.shape, phi.dtype)
        delta = site_energy(proposal) - site_energy(phi) - J * (proposal - phi) * all_neighbour_sum(phi)
        mine = colours == colour
        accept = (jnp.log(jax.random.uniform(k_accept, phi.shape)) < -delta) & mine
        phi = jnp.where(accept, proposal, phi)
        accepted += jnp.sum(accept)
        non_finite += jnp.sum(~jnp.isfinite(delta) & mine)
    return phi, accepted / phi.size, non_finite


def swendsen_wang(key, phi, J):
    """One Swendsen-Wang update of the embedded Ising signs of ``phi``."""
    k_x, k_y, k_flip = jax.random.split(key, 3)
    spins, magnitude = phi >= 0, jnp.abs(phi)

    def frozen(axis, k):
        same = spins == jnp.roll(spins, -1, axis)
        probability = 1.0 - jnp.exp(-2.0 * J * magnitude * jnp.roll(magnitude, -1, axis))
        return same & (jax.random.uniform(k, phi.shape) < probability)

    labels = cluster_labels(frozen(0, k_x), frozen(1, k_y))
    flip = jax.random.bernoulli(k_flip, 0.5, (phi.size,))[labels]
    return jnp.where(flip, -phi, phi)


def sweep(key, phi, J, site_energy, step_size):
    """A Metropolis sweep followed by a Swendsen-Wang update."""
    k_local, k_cluster = jax.random.split(key)
    phi, acceptance, non_finite = metropolis_sweep(k_local, phi, J, site_energy, step_size)
    return swendsen_wang(k_cluster, phi, J), acceptance, non_finite


def _sweeps(hamiltonian, key, phi, step_size, count: int):
    """``count`` sweeps of one chain; returns the field, the mean Metropolis acceptance and the number of proposals
    with a non-finite energy change."""
    J, site_energy = hamiltonian.phi4_form()

    def body(phi, k):
        phi, acceptance, non_finite = sweep(k, phi, J, site_energy, step_size)
        return phi, (acceptance, non_finite)

    phi, (acceptance, non_finite) = jax.lax.scan(body, phi, jax.random.split(key, count))
    return phi, acceptance.mean(), non_finite.sum()


@partial(jax.jit, static_argnums=4)
def _adapt(hamiltonian, keys, phi, step_size, count: int):
    return jax.vmap(lambda k, p, s: _sweeps(hamiltonian, k, p, s, count))(keys, phi, step_size)


@partial(jax.jit, static_argnums=(4, 5))
def _draws(hamiltonian, keys, phi, step_size, thin: int, chunk: int):
    """``chunk`` draws per chain, ``thin`` sweeps apart, for every chain (vmapped)."""

    def chain(key, phi, step_size):
        def body(phi, k):
            phi, acceptance, non_finite = _sweeps(hamiltonian, k, phi, step_size, thin)
            return phi, (phi, acceptance, non_finite)

        return jax.lax.scan(body, phi, jax.random.split(key, chunk))

    return jax.vmap(chain)(keys, phi, step_size)


def _require_finite_proposals(non_finite, hamiltonian) -> None:
    """Stop the run (:class:`SamplingDiverged`; the loop keeps the last checkpoint) if any proposed site value had a
    non-finite energy change: Metropolis would reject it silently and the chain would stop moving there."""
    count = int(np.sum(non_finite))
    if count:
        raise SamplingDiverged(
            f"{count} Metropolis proposals of {hamiltonian.name} had a non-finite energy change: the "
            "site potential is NaN or infinite over part of the field's range. Check the terms."
        )


def check_cluster_model(hamiltonian) -> None:
    """Raise :class:`InputError` unless the cluster sampler applies: a single Ising-dual term, or phi^4 form with
    ``J >= 0`` on even sides."""
    if ising_dual_only(hamiltonian):
        return
    require(
        hamiltonian.term("ising_dual") is None,
        "hamiltonian.terms",
        [t.describe() for t in hamiltonian.terms],
        "a single ising_dual term (drawn through its spins), or E = -J sum_<xy> phi_x phi_y + sum_x v(phi_x)",
    )
    J, _ = hamiltonian.phi4_form()
    require(
        float(J) >= 0,
        "hamiltonian.terms",
        float(J),
        "the Swendsen-Wang embedding needs a ferromagnetic coupling J >= 0",
    )
    require(
        all(side % 2 == 0 for side in hamiltonian.lattice.shape),
        "lattice.shape",
        list(hamiltonian.lattice.shape),
        "the checkerboard update needs even lattice sides",
    )


def spin_sweeps(key, spins, beta, count: int):
    """``count`` Swendsen-Wang sweeps of Ising spins ``s = +-1`` at coupling ``beta`` (:func:`swendsen_wang`
    with ``|s| = 1`` freezes like links with probability ``1 - exp(-2 beta)``)."""
    return jax.lax.scan(lambda s, k: (swendsen_wang(k, s, beta), None), spins, jax.random.split(key, count))[0]


def ising_dual_draw(term, lattice, thin: int):
    """One draw of the continuous Ising dual through its spins (Li & Wang 2018, eq. 8): ``(spins, key) ->
    (spins, x)``, ``thin`` Swendsen-Wang sweeps then ``x = A s + A^{1/2} xi`` by FFT, which is exact given ``s``:
    ``p(x) = sum_s p_Ising(s) Normal(x; A s, A)``."""
    eigenvalues = term.a_eigenvalues(lattice)

    def draw(spins, key):
        k_sweeps, k_noise = jax.random.split(key)
        spins = spin_sweeps(k_sweeps, spins, term.beta, thin)
        noise = jax.random.normal(k_noise, spins.shape)
        return spins, apply_circulant(spins, eigenvalues) + apply_circulant(noise, jnp.sqrt(eigenvalues))

    return draw


@partial(jax.jit, static_argnums=3)
def _spin_warmup(hamiltonian, keys, spins, count: int):
    """``count`` Swendsen-Wang sweeps of every chain's Ising-dual spins (vmapped)."""
    return jax.vmap(lambda key, s: spin_sweeps(key, s, hamiltonian.terms[0].beta, count))(keys, spins)


@partial(jax.jit, static_argnums=(3, 4))
def _spin_draws(hamiltonian, keys, spins, thin: int, chunk: int):
    """``chunk`` Ising-dual fields per chain, ``thin`` spin sweeps apart, for every chain (vmapped)."""
    draw = ising_dual_draw(hamiltonian.terms[0], hamiltonian.lattice, thin)
    return jax.vmap(lambda key, s: jax.lax.scan(draw, s, jax.random.split(key, chunk)))(keys, spins)


def run_cluster(
    hamiltonian,
    settings: ClusterSettings = ClusterSettings(),
    *,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
):
    """Sample ``hamiltonian`` with Metropolis + Swendsen-Wang sweeps; return a DataTree (``sampler = "cluster"``).

    ``sample_stats.acceptance_rate`` is the Metropolis acceptance per draw; the attributes record the
    sweeps, the adapted step sizes and the wall times (``gradient_evaluations = 0``).  The warm-up adapts the
    step size every ``ADAPT_BLOCK`` sweeps.  The continuous Ising dual (a single ``ising_dual`` term) is sampled
    exactly through its spins instead: Swendsen-Wang sweeps of the spins, each draw ``x = A s + A^{1/2} xi``
    (:func:`ising_dual_draw`); nothing is rejected (acceptance 1) and there is no ``step_size`` attribute.
    ``checkpoint`` is a directory written after every block of warm-up and every chunk of draws
    (:func:`rgppl.loop.run_phases`); ``resume=True`` continues it and gives exactly the draws of an uninterrupted
    run.  One root key ``PRNGKey(seed)``.
    """
    check_cluster_model(hamiltonian)
    meta = {"hamiltonian": hamiltonian.describe(), "seed": seed, "sampler": "cluster", "settings": asdict(settings)}
    key, k_init = jax.random.split(jax.random.PRNGKey(require_seed(seed)))
    spins = ising_dual_only(hamiltonian)  # the chains' state is the Ising spins, not the field
    shape = (settings.chains, *hamiltonian.lattice.shape)
    state = (
        key,
        jax.random.rademacher(k_init, shape, jnp.float32) if spins else 0.5 * jax.random.normal(k_init, shape),
        jnp.full(settings.chains, 0.5, jnp.float32),  # not weakly typed: the adapted step size keeps its type
    )

    def adapt(state, n):
        key, phi, step_size = state
        key, k = jax.random.split(key)
        keys = jax.random.split(k, settings.chains)
        if spins:
            phi = _spin_warmup(hamiltonian, keys, phi, n)
            return (key, phi, step_size), {"acceptance": np.ones(settings.chains), "phi": phi}
        phi, acceptance, non_finite = _adapt(hamiltonian, keys, phi, step_size, n)
        _require_finite_proposals(non_finite, hamiltonian)
        step_size = step_size * jnp.exp(2.0 * (acceptance - METROPOLIS_TARGET_ACCEPTANCE))
        return (key, phi, step_size), {"acceptance": acceptance, "phi": phi}

    def draw(state, n):
        key, phi, step_size = state
        key, k = jax.random.split(key)
        keys = jax.random.split(k, settings.chains)
        if spins:
            phi, fields = _spin_draws(hamiltonian, keys, phi, settings.thin, n)
            return (key, phi, step_size), {"phi": fields, "acceptance": np.ones((settings.chains, n))}
        phi, (fields, acceptance, non_finite) = _draws(hamiltonian, keys, phi, step_size, settings.thin, n)
        _require_finite_proposals(non_finite, hamiltonian)
        return (key, phi, step_size), {"phi": fields, "acceptance": acceptance}

    live = lambda out: {"accept": f"{float(np.mean(out['acceptance'])):.2f}"}
    phases = [
        Phase("warmup", settings.warmup, ADAPT_BLOCK, adapt, finite=("phi",), postfix=live),
        Phase("sampling", settings.samples, settings.checkpoint_every, draw, keep=True, finite=("phi",), postfix=live),
    ]
    (_, _, step_size), done = run_phases(
        phases,
        state,
        label=f"cluster {hamiltonian.name}",
        batch=settings.chains,
        meta=meta,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        hint="Check that the site potential is finite and bounded below.",
    )
    attrs = {
        "sampler": "cluster",
        "seed": seed,
        "warmup_time_s": done.seconds.get("warmup", 0.0),
        "sampling_time_s": done.seconds["sampling"],
        "gradient_evaluations": 0,
        "devices": done.devices,
        "sweeps": settings.samples * settings.thin,
        **({} if spins else {"step_size": gather(step_size).tolist()}),
        **{f"cluster_{k}": v for k, v in asdict(settings).items()},
    }
    return make_datatree(
        hamiltonian, done.draws["phi"], sample_stats={"acceptance_rate": done.draws["acceptance"]}, attrs=attrs
    )


def ising_dual_only(hamiltonian) -> bool:
    """Whether ``hamiltonian`` is a single Ising-dual term, whose fields :func:`ising_dual_fields` draws."""
    return len(hamiltonian.terms) == 1 and isinstance(hamiltonian.terms[0], IsingDual)


def ising_dual_fields(hamiltonian, n: int, *, seed: int = 0, chains: int = 256, warmup: int = 50, thin: int = 4):
    """``n`` fields ``x[n, Lx, Ly]`` of the continuous Ising dual through its spins (Li & Wang 2018, eq. 8):
    ``chains`` Swendsen-Wang chains on the spins, one draw every ``thin`` sweeps after ``warmup``
    (:func:`ising_dual_draw`).  Training data for flows (forward KL), without any flow or MCMC on x."""
    require(
        ising_dual_only(hamiltonian),
        "hamiltonian.terms",
        [t.describe() for t in hamiltonian.terms],
        "a single ising_dual term",
    )
    for name, value, least in (("n", n, 1), ("chains", chains, 1), ("warmup", warmup, 0), ("thin", thin, 1)):
        require_integer(name, value, least)
    term, shape = hamiltonian.terms[0], hamiltonian.lattice.shape
    draw, rounds = ising_dual_draw(term, hamiltonian.lattice, thin), -(-n // chains)

    @jax.jit
    def chain(key):
        k_start, k_warm, k_draws = jax.random.split(key, 3)
        spins = spin_sweeps(k_warm, jax.random.rademacher(k_start, shape, jnp.float32), term.beta, warmup)
        return jax.lax.scan(draw, spins, jax.random.split(k_draws, rounds))[1]

    fields = jax.vmap(chain)(jax.random.split(jax.random.PRNGKey(require_seed(seed)), chains))
    return np.asarray(fields.transpose(1, 0, 2, 3).reshape(-1, *shape))[:n]


def reference_ensemble(
    hamiltonian, settings: ClusterSettings, *, seed: int = 0, cache_dir="results/ensembles", progress: bool = True
):
    """The cluster-sampler ensemble of ``hamiltonian``, cached on disk as netCDF under a hash of the model,
    the settings and the seed (a second call with the same arguments reads the file)."""
    recipe = {"hamiltonian": hamiltonian.describe(), "settings": asdict(settings), "seed": seed, "sampler": "cluster"}
    path = Path(cache_dir) / f"{hamiltonian.name}_{fingerprint(recipe)}.nc"
    if path.exists():
        return xr.load_datatree(path, engine="h5netcdf")
    dt = run_cluster(hamiltonian, settings, seed=seed, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_netcdf(path, dt)
    return dt


def checked_ensemble(fields, lattice=None, *, field: str = "data", source: str = "the array") -> np.ndarray:
    """``fields[n, Lx, Ly]`` as float32 after the checks every ensemble of fields passes: at least two fields (of
    ``lattice``'s shape if given), real numbers (not complex, boolean or text), finite, and within float32's range,
    in which rgppl computes.  Otherwise an :class:`InputError` naming ``field`` and ``source`` says which."""
    fields = np.asarray(fields)
    require(
        fields.ndim == 3 and len(fields) >= 2,
        field,
        f"{source} with shape {fields.shape}",
        "an array of at least two fields, shape [n, Lx, Ly]",
    )
    if lattice is not None:
        require(
            fields.shape[1:] == tuple(lattice.shape),
            field,
            f"{source} with fields of shape {fields.shape[1:]}",
            f"fields of the model's lattice shape {tuple(lattice.shape)}",
        )
    real = np.issubdtype(fields.dtype, np.floating) or np.issubdtype(fields.dtype, np.integer)
    require(
        real and fields.dtype != bool,
        field,
        f"{source} of dtype {fields.dtype}",
        "real numbers (float or integer); complex, boolean and text data are not fields",
    )
    require(bool(np.all(np.isfinite(fields))), field, source, "finite values only (NaN or inf found)")
    largest, ceiling = float(np.max(np.abs(fields))), float(np.finfo(np.float32).max)
    require(
        largest <= ceiling,
        field,
        f"{source} with values up to {largest:.3g}",
        f"values within float32's range, |phi| <= {ceiling:.3g}, in which rgppl computes",
    )
    return fields.astype(np.float32)


def _read_fields(path: Path, suffix: str, variable: str) -> np.ndarray:
    """The array at ``variable`` of a ``.npy``, ``.npz`` or netCDF file (an rgppl DataTree's ``(chain, draw)``
    merged)."""
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            require(variable in data.files, "data", str(path), f"the .npz holds {data.files}; it needs '{variable}'")
            return data[variable]
    tree = xr.load_datatree(path, engine="h5netcdf")
    group = tree["posterior"] if "posterior" in tree.children else tree
    require(variable in group.data_vars, "data", str(path), f"the netCDF file needs a variable '{variable}'")
    fields = group[variable].values
    return fields.reshape(-1, *fields.shape[2:]) if fields.ndim == 4 else fields


def load_ensemble(path, lattice=None, *, variable: str = "phi") -> np.ndarray:
    """Fields ``phi[n, Lx, Ly]`` from a user's ``.npy``, ``.npz`` or netCDF file, checked.

    ``.npz`` and netCDF files are read at ``variable``; a netCDF DataTree written by rgppl is read from
    its ``posterior`` group and its ``(chain, draw)`` axes are merged.  The fields must be real, finite and within
    float32's range, at least two, and (if ``lattice`` is given) of its shape; otherwise an :class:`InputError` says
    which.  A file that cannot be read (damaged, truncated, pickled) is an :class:`InputError` too.
    """
    path = Path(path)
    require(path.is_file(), "data", str(path), "no such file; give a .npy, .npz or .nc file of fields [n, Lx, Ly]")
    suffix = path.suffix.lower()
    require(suffix in (".npy", ".npz", ".nc"), "data", str(path), "a .npy, .npz or .nc (netCDF) file")
    try:
        fields = _read_fields(path, suffix, variable)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 -- a damaged or foreign file may fail in any reader's own way
        raise InputError(
            "data",
            str(path),
            f"it cannot be read as a {suffix} file of fields ({type(error).__name__}: "
            f"{error}); pickled arrays are never loaded",
        ) from None
    return checked_ensemble(fields, lattice, source=str(path))
