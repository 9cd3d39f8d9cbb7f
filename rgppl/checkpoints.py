"""Checkpoints of long runs: arrays and a JSON description in one ``.npz`` file, written atomically.

No pickle: a checkpoint holds only arrays and text, so loading one never runs code.  A run may be
resumed only by the same model, seed and settings; the number of samples may grow (a finished run
can be extended).
"""

import json
from pathlib import Path

import numpy as np

from rgppl.errors import InputError
from rgppl.storage import atomic_write


def save(path: Path, meta: dict, arrays: dict) -> None:
    """Write ``arrays`` and ``meta`` to ``path`` atomically (:func:`rgppl.storage.atomic_write`)."""
    atomic_write(
        path,
        lambda tmp: np.savez(tmp, meta=np.array(json.dumps(meta)), **{k: np.asarray(v) for k, v in arrays.items()}),
    )


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


def load(path: Path, meta: dict) -> tuple[dict, dict]:
    """The saved ``(meta, arrays)`` at ``path``; an :class:`InputError` if it was written by another run, or is not
    a checkpoint at all (damaged, truncated, pickled, without its description)."""
    try:
        return _load(path, meta)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 -- a damaged file fails in numpy's, zipfile's or json's own way
        raise InputError(
            "resume",
            str(path),
            f"the checkpoint cannot be read ({type(error).__name__}: {error}); "
            "delete it to start afresh, or give a new output directory",
        ) from None


def _load(path: Path, meta: dict) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as data:
        saved = json.loads(str(data["meta"]))
        if _resumable(saved) != _resumable(meta):
            raise InputError(
                "resume",
                str(path),
                "the checkpoint was written by a different model, sampler or configuration; "
                "resume with the same card, or start afresh in a new output directory",
            )
        return saved, {k: data[k] for k in data.files if k != "meta"}
