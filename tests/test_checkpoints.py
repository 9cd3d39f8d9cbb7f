"""rgppl.checkpoints on its own: what goes into an Orbax checkpoint comes back, leaf for leaf."""

import jax
import jax.numpy as jnp
import numpy as np

from rgppl import checkpoints

META = {"hamiltonian": {"name": "test"}, "seed": 0, "settings": {"samples": 10}}


def test_a_state_with_empty_arrays_keys_and_grown_shapes_comes_back_exactly(tmp_path):
    """Orbax writes no zero-size array (a flow's unused scales have them) and takes no lone array; a state's shapes
    may change between the template and the save (the WIRG generator's fields grow scale by scale)."""
    template = {"phi": jnp.zeros((4, 1, 1)), "empty": jnp.ones((3, 0)), "key": jax.random.PRNGKey(1), "i": 0}
    state = {"phi": jnp.arange(16.0).reshape(4, 2, 2), "empty": jnp.ones((3, 0)), "key": jax.random.PRNGKey(7), "i": 5}
    draws = {"phi": np.arange(24.0).reshape(2, 3, 4)}
    checkpoints.save(tmp_path / "ck", 3, META, state, draws)
    saved, restored, restored_draws = checkpoints.load(tmp_path / "ck", META, template)
    assert saved["seed"] == 0 and jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(restored_draws["phi"], draws["phi"])
    lone = jnp.ones(3)  # a lone array as the whole state
    checkpoints.save(tmp_path / "lone", 1, META, lone, {})
    np.testing.assert_array_equal(checkpoints.load(tmp_path / "lone", META, lone)[1], lone)
