import os
import tempfile
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# One on-disk cache of compiled XLA programs for the whole run, shared by the xdist workers and the notebook
# kernels: the CLI's resumed runs and the notebooks compile programs that other tests have compiled already.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "rgppl-tests-xla-cache"))

import jax  # noqa: E402  (after the backend is chosen)
import pytest  # noqa: E402


@pytest.fixture
def float64():
    """Double precision for exact identities (log-dets, Jacobians), through JAX's context manager."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drop JAX's compiled programs after each test module: every one keeps its memory mappings until then, and
    one worker running half the suite would pass the kernel's ``vm.max_map_count`` (65530), at which LLVM fails
    ("Cannot allocate memory").  Programs a later module needs again come from the on-disk cache."""
    yield
    jax.clear_caches()
