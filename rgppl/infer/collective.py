"""Renormalised collective variables: the flow's latent variables, scale by scale.

NeuralRG's encoder ``z = g^{-1}(x)`` freezes three of every four active sites at each level; the latent
field keeps each variable at its site, and ``scale_index`` gives its level (0 = finest, ``levels`` =
the top).  Li & Wang read the latent variables as renormalised collective variables: a good flow
makes them nearly independent at every scale, while the physical field is strongly correlated at
criticality.  :func:`latent_independence` measures this per scale on pairs of neighbouring variables
of the same scale: the correlation of the values, the correlation of their magnitudes (dependence that
a Z2-symmetric model hides from the plain correlation) and the Gaussian mutual information
``-1/2 ln(1 - rho^2)``, each beside the same figure for the physical field at the same sites.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd


def encode(flow, phi):
    """Latent fields ``z[..., L, L]`` of fields ``phi[..., L, L]``."""
    return flow.inverse_and_log_det(jnp.asarray(phi))[0]


def decode(flow, z):
    """Fields ``phi = g(z)`` of latent fields ``z[..., L, L]``."""
    return flow.transform_and_log_det(jnp.asarray(z))[0]


def latents_by_scale(flow, phi) -> dict:
    """``{level: z values[..., n_level]}`` for every scale (``flow.levels`` is the top)."""
    z = np.asarray(encode(flow, phi))
    index = flow.scale_index
    return {level: z[..., index == level] for level in range(flow.levels + 1)}


def resample_scales(flow, key, phi, scales) -> jax.Array:
    """Fields whose latent variables at ``scales`` are redrawn from the prior, all others kept.

    E.g. ``scales=[flow.levels]`` changes only the coarsest (top) variables: the long-wavelength
    content of each field changes while its short-distance texture is kept.
    """
    z = encode(flow, phi)
    redraw = jnp.isin(jnp.asarray(flow.scale_index), jnp.asarray(list(scales)))
    return decode(flow, jnp.where(redraw, jax.random.normal(key, z.shape, z.dtype), z))


def _same_scale_pairs(index: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat site indices of neighbouring pairs (one grid step of the scale apart) both at ``level``."""
    side = index.shape[0]
    stride = 2**level
    sites = np.argwhere(index == level)
    first, second = [], []
    for axis in (0, 1):
        partner = sites.copy()
        partner[:, axis] = (partner[:, axis] + stride) % side
        both = (index[partner[:, 0], partner[:, 1]] == level) & np.any(partner != sites, axis=1)
        first.append(sites[both]), second.append(partner[both])
    first, second = np.concatenate(first), np.concatenate(second)
    return first[:, 0] * side + first[:, 1], second[:, 0] * side + second[:, 1]


def _pair_statistics(values: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict:
    a, b = values[:, first].ravel(), values[:, second].ravel()
    rho = np.corrcoef(a, b)[0, 1]
    return {"corr": rho, "abs_corr": np.corrcoef(np.abs(a), np.abs(b))[0, 1], "mi_gauss": -0.5 * np.log1p(-(rho**2))}


def latent_independence(flow, phi) -> pd.DataFrame:
    """Per scale: neighbour correlations and Gaussian mutual information, latent beside physical."""
    phi = np.asarray(phi).reshape(-1, flow.side, flow.side)
    z = np.asarray(encode(flow, phi)).reshape(len(phi), -1)
    x = phi.reshape(len(phi), -1)
    rows = []
    for level in range(flow.levels + 1):
        first, second = _same_scale_pairs(flow.scale_index, level)
        if len(first) == 0:
            continue
        latent, physical = _pair_statistics(z, first, second), _pair_statistics(x, first, second)
        rows.append(
            {
                "scale": level,
                "distance": 2**level,
                "pairs": len(first),
                **{f"{k}_latent": v for k, v in latent.items()},
                **{f"{k}_physical": v for k, v in physical.items()},
            }
        )
    return pd.DataFrame(rows).set_index("scale")
