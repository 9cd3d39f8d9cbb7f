"""A user-defined energy term, imported by a model card in the tests."""

import jax.numpy as jnp


def plaquette(phi):
    """``0.1 sum_x phi_x phi_{x+e1} phi_{x+e1+e2} phi_{x+e2}``: a four-field plaquette coupling."""
    right = jnp.roll(phi, -1, axis=0)
    return 0.1 * jnp.sum(phi * right * jnp.roll(right, -1, axis=1) * jnp.roll(phi, -1, axis=1))


def quartic(phi):
    """``sum_x phi_x^4``: a well-formed term."""
    return jnp.sum(phi**4)


def field_valued(phi):
    """Wrong: returns a field, not a scalar."""
    return phi**2


def untraceable(phi):
    """Wrong: converts a traced array to a Python float."""
    return float(jnp.sum(phi))
