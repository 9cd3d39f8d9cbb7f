import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402  (after the backend is chosen)
import pytest  # noqa: E402


@pytest.fixture
def float64():
    """Double precision for exact identities (log-dets, Jacobians), switched back off afterwards."""
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)
