import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402  (after the backend is chosen)
import pytest  # noqa: E402


@pytest.fixture
def float64():
    """Double precision for exact identities (log-dets, Jacobians), through JAX's context manager."""
    with jax.enable_x64(True):
        yield
