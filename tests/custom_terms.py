"""A user-defined energy term, imported by a model card in the tests."""

import jax.numpy as jnp


def plaquette(phi):
    """``0.1 sum_x phi_x phi_{x+e1} phi_{x+e1+e2} phi_{x+e2}``: a four-field plaquette coupling."""
    right = jnp.roll(phi, -1, axis=0)
    return 0.1 * jnp.sum(phi * right * jnp.roll(right, -1, axis=1) * jnp.roll(phi, -1, axis=1))
