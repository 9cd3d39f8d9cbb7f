"""Files that are never left half-written, and short fingerprints of what produced them.

:func:`atomic_write` writes through a temporary file in the target's directory, flushes it to disk
(``fsync``) and renames it over the target, so a reader sees the old file or the new one, never a torn one;
a failure removes the temporary file.  :func:`fingerprint` is the one hash of arrays and JSON-ready values
that checkpoints, caches and resumes compare.
"""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rgppl.mesh import is_writer


def _partial_name(path: Path) -> Path:
    """The temporary file beside ``path``; it keeps the suffix (``np.savez`` would append ``.npz`` otherwise)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def atomic_write(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to write a temporary file, fsync it, and rename it to ``path``; return ``path``.

    In a multi-process run only process 0 writes (:func:`rgppl.mesh.is_writer`); the others return at once."""
    path = Path(path)
    if not is_writer():
        return path
    tmp = _partial_name(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def atomic_write_netcdf(path, tree) -> Path:
    """Write the DataTree ``tree`` to ``path`` as netCDF (h5netcdf) atomically.  The file is built in memory and then
    written by Python, so a full disk is an ``OSError`` like any other; HDF5 writing the file itself crashed the
    process when the disk filled."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(bytes(tree.to_netcdf(engine="h5netcdf"))))


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def fingerprint(*parts) -> str:
    """16 hex digits of SHA-256 over ``parts``: arrays by their bytes, everything else as canonical JSON."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (np.ndarray, np.generic)) or hasattr(part, "__array__"):
            digest.update(np.ascontiguousarray(np.asarray(part)).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
