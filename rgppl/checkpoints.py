"""Checkpoints of long runs in Orbax's format: a directory holding the sampler's state, the draws kept so far and a
JSON description, saved as one numbered step.

Orbax writes a step into a temporary directory and renames it once complete, then deletes the step before it, so a
killed run leaves its last complete step.  The state's arrays are written shard by shard, each process writing its
own, and are read back straight into the shardings of the run that resumes, on any number of devices
(:func:`load`).  No pickle: a checkpoint holds arrays (TensorStore) and JSON, so loading one never runs code.

A run may be resumed only by the same model, seed and settings; the number of samples may grow (a finished run
can be extended).
"""

import logging
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from rgppl.errors import InputError, require

OPTIONS = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=True)
logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax reports every step it writes at INFO and WARNING


def _manager(path: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(Path(path).absolute(), options=OPTIONS)


def _arrays(tree):
    """``tree`` with every leaf an array: JAX arrays as they are (sharded), anything else through ``np.asarray``."""
    return jax.tree.map(lambda leaf: leaf if isinstance(leaf, jax.Array) else np.asarray(leaf), tree)


def _item(state) -> dict:
    """A sampler's state as Orbax's standard item: under one key (Orbax takes no lone array), leaves as arrays."""
    return _arrays({"tree": state})


def _abstract_item(item):
    """The shapes, dtypes and shardings of an item's leaves as Orbax stores them (a typed key as its raw data)."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, item)


def _without_empty(tree):
    """``tree`` with its zero-size arrays as None: Orbax writes none (they hold nothing; a flow's unused scales)."""
    return jax.tree.map(lambda leaf: None if 0 in leaf.shape else leaf, tree)


def _with_empty(target, restored):
    """``restored`` with the zero-size arrays of ``target`` (abstract, at the saved shapes) put back, as zeros."""
    return jax.tree.map(
        lambda leaf, value: np.zeros(leaf.shape, leaf.dtype) if 0 in leaf.shape else value, target, restored
    )


def save(path: Path, step: int, meta: dict, state, draws: dict) -> None:
    """Write ``state`` (any pytree of arrays), ``draws`` and ``meta`` as step ``step`` of the checkpoint at ``path``.

    Every process calls it.  ``step`` counts the run's units so far; a run started afresh over an older
    checkpoint (whose steps reach at least as far) replaces it."""
    path = Path(path)
    require(
        path.is_dir() or not path.exists(),
        "checkpoint",
        str(path),
        "a directory (Orbax's format), or a path not yet taken; this is a file (an earlier rgppl's .npz checkpoint?)",
    )
    with _manager(path) as manager:
        if (manager.latest_step() or -1) >= step:
            for old in manager.all_steps():
                manager.delete(old)
        item = _item(state)
        shapes = [list(np.shape(leaf)) for leaf in jax.tree.leaves(_abstract_item(item))]  # which a run may grow
        items = {
            "state": ocp.args.StandardSave(_without_empty(item)),
            "meta": ocp.args.JsonSave({**meta, "draws": list(draws), "shapes": shapes}),
        }
        if draws:  # Orbax refuses an empty item
            items["draws"] = ocp.args.StandardSave(_arrays(draws))
        manager.save(step, args=ocp.args.Composite(**items))


def _resumable(meta: dict) -> dict:
    """What must agree between a checkpoint and the run resuming it (everything but ``samples``)."""
    settings = {k: v for k, v in meta["settings"].items() if k != "samples"}
    return {
        "hamiltonian": meta["hamiltonian"],
        "seed": meta["seed"],
        "sampler": meta.get("sampler"),
        "settings": settings,
        "fingerprint": meta.get("fingerprint", ""),
    }


def saved_meta(path: Path) -> dict | None:
    """The description of the latest complete step at ``path``, or None while there is none."""
    if not Path(path).is_dir():  # a manager would create the directory
        return None
    with _manager(path) as manager:
        step = manager.latest_step()
        return (
            None
            if step is None
            else dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)
        )


def load(path: Path, meta: dict, like) -> tuple[dict, object, dict]:
    """The saved ``(meta, state, draws)`` at ``path``, the state read into the shapes, dtypes and shardings of
    ``like``; an :class:`InputError` if the checkpoint was written by another run, or is not one at all (damaged,
    truncated, from an older rgppl)."""
    try:
        return _load(Path(path), meta, like)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 -- a damaged checkpoint fails in Orbax's, TensorStore's or json's own way
        raise InputError(
            "resume",
            str(path),
            f"the checkpoint cannot be read ({type(error).__name__}: {_first_words(error)}); "
            "delete it to start afresh, or give a new output directory",
        ) from None


def _first_words(error: Exception, limit: int = 160) -> str:
    """The start of an error's message (TensorStore's go on to print the whole storage spec)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _load(path: Path, meta: dict, like) -> tuple[dict, object, dict]:
    saved = saved_meta(path)
    if saved is None:
        raise InputError(
            "resume",
            str(path),
            "no complete checkpoint is there; delete it to start afresh, or give a new output directory",
        )
    if _resumable(saved) != _resumable(meta):
        raise InputError(
            "resume",
            str(path),
            "the checkpoint was written by a different model, sampler or configuration; "
            "resume with the same card, or start afresh in a new output directory",
        )
    leaves, layout = jax.tree.flatten(_abstract_item(_item(like)))  # read into like's shardings, at the saved shapes
    shapes = [tuple(shape) for shape in saved["shapes"]]
    target = layout.unflatten(leaf.update(shape=shape) for leaf, shape in zip(leaves, shapes, strict=True))
    items = {"state": ocp.args.StandardRestore(_without_empty(target))}
    if saved["draws"]:
        items["draws"] = ocp.args.StandardRestore()
    with _manager(path) as manager:
        restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(**items))
    draws = restored["draws"] if saved["draws"] else {}
    return saved, _with_empty(target, restored["state"])["tree"], {k: np.asarray(v) for k, v in draws.items()}
