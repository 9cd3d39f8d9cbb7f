"""Monotone rational-quadratic splines: the element-wise bijection of spline couplings.

Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019, arXiv:1906.04032, eqs. 4-8.

On ``[-B, B]`` the map is a piecewise rational-quadratic through ``K + 1`` knots ``(x_k, y_k)`` with
positive derivatives ``d_k``; outside it is the identity, and ``d_0 = d_K = 1`` makes the whole map
continuously differentiable.  In bin ``k`` with ``xi = (x - x_k) / w_k``, ``s_k = h_k / w_k``:

    y = y_k + h_k [s_k xi^2 + d_k xi (1 - xi)] / [s_k + (d_k + d_{k+1} - 2 s_k) xi (1 - xi)],
    dy/dx = s_k^2 [d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2] / [s_k + (d_k + d_{k+1} - 2 s_k) xi (1 - xi)]^2,

and the inverse solves the quadratic in ``xi`` by the numerically stable root ``xi = 2c / (-b - sqrt(b^2 - 4ac))``.
The ``3K - 1`` unconstrained parameters per element are ``K`` bin widths and ``K`` heights (softmax, each
bin at least ``MIN_BIN`` of the interval) and ``K - 1`` inner derivatives (softplus, at least
``MIN_DERIVATIVE``), shifted so that all-zero parameters give the identity.
"""

import jax
import jax.numpy as jnp
import numpy as np

SPLINE_BOUND = 8.0  # B: the spline acts on [-B, B], far beyond the fields' spread at unit scale
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
_IDENTITY_SHIFT = float(np.log(np.expm1(1.0 - MIN_DERIVATIVE)))  # softplus(shift) + MIN_DERIVATIVE = 1


def parameter_count(knots: int) -> int:
    """Unconstrained parameters per element for ``knots`` bins."""
    return 3 * knots - 1


def _knots(raw, bound: float, knots: int):
    def positions(logits):
        widths = MIN_BIN + (1 - MIN_BIN * knots) * jax.nn.softmax(logits, axis=0)
        inner = -bound + 2 * bound * jnp.cumsum(widths[:-1], axis=0)
        edge = jnp.full((1,) + widths.shape[1:], bound, widths.dtype)
        return jnp.concatenate([-edge, inner, edge], axis=0)

    inner_slopes = MIN_DERIVATIVE + jax.nn.softplus(raw[2 * knots :] + _IDENTITY_SHIFT)
    ones = jnp.ones((1,) + raw.shape[1:], raw.dtype)
    return positions(raw[:knots]), positions(raw[knots : 2 * knots]), jnp.concatenate([ones, inner_slopes, ones], 0)


def rational_quadratic(values, raw, bound: float, inverse: bool = False):
    """``(f(values), ln|f'|)`` element-wise (or the inverse map and its ``ln|df^-1/dy|``).

    ``values[...]`` with parameters ``raw[3K - 1, ...]`` (see the module docstring; the parameter axis
    leads, so that every operation runs over the long trailing axes); the identity outside ``[-bound, bound]``.
    """
    knots = (raw.shape[0] + 1) // 3
    xs, ys, slopes = _knots(raw, bound, knots)
    inside = jnp.abs(values) < bound
    clipped = jnp.clip(values, -bound, bound)
    edges = ys if inverse else xs
    k = jnp.sum(clipped >= edges[1:-1], axis=0, keepdims=True)
    pick = lambda a, offset=0: jnp.take_along_axis(a, k + offset, axis=0)[0]
    x0, y0, d0, d1 = pick(xs), pick(ys), pick(slopes), pick(slopes, 1)
    width, height = pick(xs, 1) - x0, pick(ys, 1) - y0
    slope = height / width
    curvature = d0 + d1 - 2 * slope
    if inverse:
        offset = clipped - y0
        a = height * (slope - d0) + offset * curvature
        b = height * d0 - offset * curvature
        c = -slope * offset
        xi = 2 * c / (-b - jnp.sqrt(jnp.maximum(b**2 - 4 * a * c, 0.0)))
    else:
        xi = (clipped - x0) / width
    denominator = slope + curvature * xi * (1 - xi)
    mapped = x0 + xi * width if inverse else y0 + height * (slope * xi**2 + d0 * xi * (1 - xi)) / denominator
    log_slope = jnp.log(slope**2 * (d1 * xi**2 + 2 * slope * xi * (1 - xi) + d0 * (1 - xi) ** 2)) - 2 * jnp.log(
        denominator
    )
    log_slope = jnp.where(inside, -log_slope if inverse else log_slope, 0.0)
    return jnp.where(inside, mapped, values), log_slope
