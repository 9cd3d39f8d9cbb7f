"""The floating-point precision of a run: float32 (the default) or float64.

``float64`` runs the sampler, the flow's training or the WIRG fit and generator under
``jax.enable_x64``: fields, energies, ``ln q`` and the chains' arithmetic in double precision, for exact
identities (an energy summed over many sites, ``ln Z`` from a log-sum-exp of many weights) that float32's
rounding (about 1e-7 relative per operation) would blur.  It costs about twice the memory and, on GPUs, far
more time.  A card asks for it with ``[run] precision = "float64"``, the API with ``precision="float64"``.
"""

import jax

from rgppl.errors import require

PRECISIONS = ("float32", "float64")


def computing_in(name: str):
    """The context (a ``with`` block) in which JAX computes in ``name``, one of :data:`PRECISIONS`."""
    require(name in PRECISIONS, "precision", name, f"one of {PRECISIONS}")
    return jax.enable_x64(name == "float64")
