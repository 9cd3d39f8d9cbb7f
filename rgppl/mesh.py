"""The device mesh: every sampler's batch axis (chains, fields, flow draws) spread over all devices.

One rule, for one device and many alike: an array whose leading axis is a run's batch is sharded along that
axis over the mesh's ``"batch"`` axis when its length is a multiple of the mesh's size, and replicated
otherwise (correct, without a speed-up).  Everything else is replicated.  Jitted work on such arrays is
partitioned by XLA (GSPMD): a chain's or a field's own arithmetic stays on its device, and a reduction over the
batch (a mean, a log-sum-exp, a gradient of a mean loss) becomes a cross-device reduction, inserted by the
compiler.  No collective is written by hand.

The mesh is the one set with ``jax.set_mesh`` if it has a ``"batch"`` axis (of ``AxisType.Auto``: the
compiler, not the code, propagates the sharding), else a one-axis mesh over
``jax.devices()``: every device of every process.  Random keys are split per chain or field before they are
placed, and JAX's partitionable threefry draws the same numbers on any layout, so a seed gives the same run on
1, 2 or 4 devices.

Several processes (:func:`initialize_distributed`): every process runs the same program on the same values;
the arrays a run brings back to the host are gathered from all processes (:func:`gather`), and only process 0
writes results (:func:`is_writer`); each process writes its own shards of a checkpoint (:mod:`rgppl.checkpoints`).
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec

from rgppl.errors import require

BATCH = "batch"


def batch_mesh() -> Mesh | AbstractMesh:
    """The mesh set with ``jax.set_mesh`` if it has a ``"batch"`` axis (its abstract form inside ``jit``), else a
    ``"batch"`` axis over all devices."""
    mesh = jax.sharding.get_abstract_mesh()
    if BATCH not in mesh.axis_names:
        return Mesh(np.array(jax.devices()), (BATCH,))
    kind = mesh.axis_types[mesh.axis_names.index(BATCH)]
    require(
        kind == AxisType.Auto,
        "mesh",
        f"a {kind} 'batch' axis",
        "a mesh whose 'batch' axis the compiler shards: jax.make_mesh((n,), ('batch',), "
        "axis_types=(jax.sharding.AxisType.Auto,))",
    )
    try:
        return jax.sharding.get_mesh()
    except ValueError:  # inside jit, where only the abstract mesh is known
        return mesh


def batch_sharding(size: int) -> NamedSharding:
    """The sharding of an array whose leading axis holds ``size`` chains, fields or draws (see the module)."""
    mesh = batch_mesh()
    return NamedSharding(mesh, PartitionSpec(BATCH) if size % mesh.shape[BATCH] == 0 else PartitionSpec())


def _raw_key(leaf) -> bool:
    """Whether ``leaf`` is one raw PRNG key, ``uint32[2]``: its two words are never split over devices."""
    return np.shape(leaf) == (2,) and getattr(leaf, "dtype", None) == np.uint32


def shard_batch(tree, size: int | None):
    """``tree`` placed on the mesh: leaves whose leading axis has length ``size`` by :func:`batch_sharding` (but a
    single raw PRNG key, ``uint32[2]``, whole), the others replicated (all of them if ``size`` is None)."""
    mesh = batch_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(leaf):
        batched = size is not None and np.ndim(leaf) > 0 and np.shape(leaf)[0] == size and not _raw_key(leaf)
        sharding = batch_sharding(size) if batched else replicated
        if jax.process_count() == 1 or (isinstance(leaf, jax.Array) and not leaf.is_fully_addressable):
            return jax.device_put(leaf, sharding)
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # a typed key: its words placed, then wrapped
            return jax.random.wrap_key_data(place(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        whole = np.asarray(leaf)  # a value every process holds whole: each places its own devices' parts
        return jax.make_array_from_callback(whole.shape, sharding, lambda index: whole[index])

    return jax.tree.map(place, tree)


def sharded_over(tree) -> int:
    """The number of devices the arrays of ``tree`` are split over: 1 where every array is whole on each device."""
    split = [
        len(leaf.sharding.device_set)
        for leaf in jax.tree.leaves(tree)
        if isinstance(leaf, jax.Array) and not leaf.sharding.is_fully_replicated
    ]
    return max(split, default=1)


def constrain_batch(x: jax.Array) -> jax.Array:
    """Inside jitted code: ask the compiler to shard ``x`` along its leading (batch) axis.  Sharding propagates
    from here to the work that made ``x`` (its random draws) and to the work that uses it."""
    return jax.lax.with_sharding_constraint(x, batch_sharding(x.shape[0]))


def gather(tree):
    """``tree`` as NumPy arrays on this host, the parts held by other processes included."""

    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(fetch, tree)


def is_writer() -> bool:
    """Whether this process writes results: process 0 (the only one, on one host)."""
    return jax.process_index() == 0


def distributed_requested() -> bool:
    """Whether the environment asks for a multi-process run: ``JAX_COORDINATOR_ADDRESS`` is set."""
    return "JAX_COORDINATOR_ADDRESS" in os.environ


def initialize_distributed() -> None:
    """Join a multi-process run with ``jax.distributed.initialize``.  The coordinator's address, the number of
    processes and this one's id come from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` where set, and otherwise from JAX's own detection (SLURM, Open MPI).  On CPUs the
    processes talk through Gloo, and JAX's persistent compilation cache is switched off: with it (jax 0.12.1) the
    processes' first collective never completes."""
    counts = {}
    for name, argument in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if name in os.environ:
            value = os.environ[name]
            require(value.isdigit(), name, value, "a whole number")
            counts[argument] = int(value)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**counts)
    if jax.default_backend() == "cpu":
        jax.config.update("jax_enable_compilation_cache", False)
