"""NeuralRG: a hierarchical (MERA-shaped) bijector between latent variables and a lattice field.

Li & Wang, "Neural Network Renormalization Group", PRL 121, 260601 (2018), arXiv:1802.02840.

On a periodic L x L lattice (L a power of two) level ``l = 0 .. levels-1`` acts on the active
sublattice, the sites whose coordinates are multiples of ``2^l`` (an ``(L/2^l)^2`` grid).  In the
encoding (renormalisation) direction x -> z each level applies a disentangler
sublayer (2x2 blocks shifted by one active site) and a decimator sublayer (aligned 2x2 blocks), each a
:class:`~rgppl.flows.coupling.BlockCouplings`; then three of the four sites of every aligned block
are frozen as that scale's latent variables and one continues to level ``l + 1``.  What is left after
the last level (a ``(L/2^levels)^2`` grid) is the top scale.  The latent field ``z`` keeps every
variable at the site it was frozen at, so ``scale_index(L, levels)`` tells each site's scale.

The generative map x = g(z) first multiplies each scale's latent variables by a learned
``exp(log_scales[scale])`` (per-scale variances; zero at start) and then runs the levels coarse to
fine, each sublayer in its generative direction.  With ``circulant=True`` a last, linear layer
multiplies the field by a learned translation-invariant operator ``C``, diagonal in Fourier space with
eigenvalues ``c_k = exp((theta_k + theta_{-k})/2) > 0`` (identity at start, applied by FFT,
``ln|det C| = sum_k ln c_k``): the long-range linear correlations of the field in one step.  The
prior is N(0, I); ``ln q(x) = ln N(z) - ln|det dg/dz|``.

With ``fold = true`` the very last layer maps the magnetisation ``m = mean(x)`` to ``f(m) > 0``,
``x -> x + (f(m) - m)``, a bijection of R^N onto the half space ``m > 0`` with ``ln|det| = ln f'(m)`` (the
Jacobian is ``1 + (f' - 1) u u^T``, ``u`` the unit uniform field).  Then ``q_sym`` covers each sign of ``m``
by one copy of ``q``: for a Z2-symmetric target no single map has to split one Gaussian between two ordered
phases, the seam that otherwise makes ``q`` one-sided (ln 2 of KL) or, covering both, slows NUTS in its
latent space down.  The fold is the Gaussian softplus ``f(m) = s G(m/s)``,
``G(t) = t Phi(t) + phi(t) = E[max(t + Z, 0)]`` (``Z ~ N(0, 1)``, ``G' = Phi``), with a learned scale
``s = exp(fold_log_scale)``.  Its slope ``Phi(m/s)`` falls like a Gaussian, so the pre-image of ``m ~ 0`` has
a Gaussian tail of width ``s``, which a Gaussian-based flow reaches (the plain softplus ``ln(1 + e^m)`` leaves
an exponential one, and was dropped).

The inverse reads ``m`` back from the field's sites, so in float32 it cannot recover a mean below their
resolution (about ``1e-7 |x|``): a field that a fold put there comes back with ``m <= 0`` (``ln q = -inf``) or
a far-off pre-image.  Training takes such draws' ``ln q`` from their generative pass instead
(:class:`~rgppl.infer.training.FlowObjective`).

Every sublayer is a convolution over its grid of blocks, so a flow trained on a small lattice is also a
flow on a larger one (:func:`grown`): at a critical point the local statistics of each scale barely depend
on the volume, and the small flow is a starting point far better than the identity (transfer across
volumes, as for translation-equivariant flows of lattice field theory: Gerdes et al., arXiv:2207.00283).
"""

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr
from jax.scipy.stats import norm

from rgppl.errors import require, require_integer, require_types
from rgppl.flows.coupling import BlockCouplings
from rgppl.lattice import Lattice, apply_circulant


@dataclass(frozen=True)
class FlowSettings:
    """The NeuralRG architecture.  ``levels = None``: as many as the lattice allows (log2 L).

    The defaults are the recipe of the ``ising_dual_neuralrg_L8`` card, whose record gives its KL: 4
    rational-quadratic spline couplings of 8 bins per sublayer (``knots``; 0 gives Li & Wang's affine ones),
    each reading the 3 x 3 blocks around its own (``kernel``; 1 as Li & Wang), and the circulant layer.
    Four couplings instead of eight keep the KL (0.0474 +- 0.0017 against 0.0452 +- 0.0016 nats, record
    ``flow_sweep``) and cut the cost of a draw or a gradient 1.6-2.1 times.
    ``symmetric``: the posterior is ``q_sym(x) = [q(x) + q(-x)]/2``; ``fold``: ``q`` covers ``m > 0`` only.
    """

    levels: int | None = None
    couplings: int = 4
    width: int = 32
    hidden: int = 2
    kernel: int = 3
    knots: int = 8
    symmetric: bool = True
    circulant: bool = True
    fold: bool = False

    def __post_init__(self):
        require_types(self, "flow")
        if self.levels is not None:
            require_integer("flow.levels", self.levels, 1)
        for name in ("couplings", "width", "hidden"):
            require_integer(f"flow.{name}", getattr(self, name), 1)
        require(self.kernel in (1, 3, 5), "flow.kernel", self.kernel, "1 (own block, as Li & Wang), 3 or 5")
        require_integer("flow.knots", self.knots, 0)
        require(
            self.knots != 1,
            "flow.knots",
            self.knots,
            "0 (affine couplings, as Li & Wang) or a spline's number of bins >= 2",
        )
        require(
            self.symmetric or not self.fold,
            "flow.symmetric",
            self.symmetric,
            "true with a fold: a folded flow covers m > 0 only, q_sym adds its mirror image",
        )

    def resolved_levels(self, lattice: Lattice) -> int:
        """The number of levels for ``lattice`` (square, side a power of two); an InputError otherwise."""
        require(lattice.is_square, "lattice.shape", lattice.shape, "NeuralRG needs a square L x L lattice")
        side = lattice.require_power_of_two("NeuralRG's 2x2-block hierarchy")
        most = int(np.log2(side))
        levels = most if self.levels is None else self.levels
        require(levels <= most, "flow.levels", levels, f"at most log2(L) = {most} on a {side} x {side} lattice")
        return levels


def scale_index(side: int, levels: int) -> np.ndarray:
    """``index[x, y]``: the level at which site (x, y) is frozen as a latent variable; ``levels`` = top."""
    valuation = np.array([levels if c == 0 else min(levels, (c & -c).bit_length() - 1) for c in range(side)])
    return np.minimum(valuation[:, None], valuation[None, :])


def _shift_mean(x, mean, new_mean):
    """``x`` with the mean ``mean`` of each field ``x[..., L, L]`` replaced by ``new_mean``."""
    return x + (new_mean - mean)[..., None, None]


MILLS_FRACTION_BELOW = -2.0  # ln G by the continued fraction for t below this
MILLS_FRACTION_TERMS = 40  # enough for a relative error below 1e-9 there


def _log_normal_softplus(t):
    """``ln G(t)``, ``G(t) = t Phi(t) + phi(t)``, accurate in float32 from ``t = -infinity`` up.

    For ``t < 0``, ``G = phi(t) (1 - u R(u))`` with ``u = -t`` and Mills's ratio ``R(u) = Phi(-u)/phi(u)``,
    which tends to ``1/u``: formed directly the bracket cancels, and below ``t ~ -40`` float32 makes it
    negative.  Below ``MILLS_FRACTION_BELOW`` it comes from Laplace's continued fraction
    ``R = 1/(u + c)``, ``c = 1/(u + 2/(u + 3/(u + ...)))``, as ``1 - u R = c/(u + c)``, with no cancellation.
    """
    far, negative = t < MILLS_FRACTION_BELOW, t < 0
    u = jnp.where(far, -t, 1.0)
    tail = jnp.zeros_like(u)
    for k in range(MILLS_FRACTION_TERMS, 1, -1):
        tail = k / (u + tail)
    c = 1 / (u + tail)
    # each branch fed only where it is finite
    near_t, right_t = jnp.where(negative & ~far, t, -1.0), jnp.where(negative, 0.0, t)
    log_phi = norm.logpdf(near_t)
    near = log_phi + jnp.log1p(near_t * jnp.exp(log_ndtr(near_t) - log_phi))
    left = jnp.where(far, norm.logpdf(u) + jnp.log(c) - jnp.log(u + c), near)
    right = jnp.log(right_t * ndtr(right_t) + norm.pdf(right_t))
    return jnp.where(negative, left, right)


def _normal_softplus_inverse(y, iterations: int = 30):
    """``t`` with ``G(t) = y > 0``: Newton's method on the concave ``ln G``, from a start left of the root.

    Left of the root Newton's steps on a concave increasing function rise monotonically onto it.  The start is
    ``0`` for ``y >= G(0)``, else ``-sqrt(-2 ln(y sqrt(2 pi)))`` (``ln G(t) < -t^2/2 - ln sqrt(2 pi)`` for t < 0).
    """
    log_y = jnp.log(y)
    start = -jnp.sqrt(jnp.maximum(-2 * (log_y + 0.5 * np.log(2 * np.pi)), 0.0))

    def step(_, t):
        log_g = _log_normal_softplus(t)
        return t - (log_g - log_y) * jnp.exp(log_g - log_ndtr(t))  # d ln G / dt = Phi / G

    return jax.lax.fori_loop(0, iterations, step, start)


def _normal_fold(x, log_det, log_scale):
    """``m -> s G(m/s)`` for the mean ``m`` of each field: onto ``m > 0``, ``ln|det| = ln Phi(m/s)``."""
    scale, m = jnp.exp(log_scale), x.mean(axis=(-2, -1))
    t = m / scale
    return _shift_mean(x, m, scale * jnp.exp(_log_normal_softplus(t))), log_det + log_ndtr(t)


def _normal_unfold(x, log_det, log_scale):
    """The inverse of :func:`_normal_fold` (``-inf`` where the mean is not positive).

    The root ``t*`` is found without gradients; one Newton step from it carries the exact derivative
    ``dt/dm = 1 / (s Phi(t))`` (implicit function theorem) into autodiff.
    """
    scale = jnp.exp(log_scale)
    m = x.mean(axis=(-2, -1))
    inside = m > 0
    y = jnp.where(inside, m, 1.0) / scale
    root = jax.lax.stop_gradient(_normal_softplus_inverse(y))
    t = root - (jnp.exp(_log_normal_softplus(root)) - y) / jnp.exp(log_ndtr(root))
    return _shift_mean(x, m, scale * t), log_det + jnp.where(inside, -log_ndtr(t), -jnp.inf)


def _to_blocks(grid, shifted: bool):
    """``grid[M, M, N]`` -> ``blocks[4, M/2, M/2, N]`` (aligned, or shifted by one site)."""
    if shifted:
        grid = jnp.roll(grid, (-1, -1), axis=(0, 1))
    m, n = grid.shape[0] // 2, grid.shape[-1]
    return grid.reshape(m, 2, m, 2, n).transpose(1, 3, 0, 2, 4).reshape(4, m, m, n)


def _from_blocks(blocks, shifted: bool):
    m, n = blocks.shape[1], blocks.shape[-1]
    grid = blocks.reshape(2, 2, m, m, n).transpose(2, 0, 3, 1, 4).reshape(2 * m, 2 * m, n)
    return jnp.roll(grid, (1, 1), axis=(0, 1)) if shifted else grid


def _on_blocks(method, grid, shifted: bool):
    blocks, log_det = method(_to_blocks(grid, shifted))
    return _from_blocks(blocks, shifted), log_det


def _batch_last(fields):
    """``fields[..., L, L]`` -> ``[L, L, N]``: the layout the couplings run on (see :mod:`~rgppl.flows.coupling`)."""
    return jnp.moveaxis(fields.reshape(-1, *fields.shape[-2:]), 0, -1)


def _batch_first(fields, batch: tuple):
    return jnp.moveaxis(fields, -1, 0).reshape(*batch, *fields.shape[:2])


class NeuralRGFlow(eqx.Module):
    """The bijection ``x = g(z)`` on fields ``[..., L, L]`` (any batch shape, none included)."""

    sublayers: tuple  # sublayers[level] = (disentangler, decimator)
    log_scales: jax.Array
    log_spectrum: jax.Array | None
    fold_log_scale: jax.Array | None
    side: int = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    fold: bool = eqx.field(static=True)

    def __init__(self, key, lattice: Lattice, settings: FlowSettings = FlowSettings()):
        self.levels = settings.resolved_levels(lattice)
        self.side = lattice.shape[0]
        self.fold = settings.fold
        keys = iter(jax.random.split(key, 2 * self.levels))
        make = lambda: BlockCouplings(
            next(keys),
            couplings=settings.couplings,
            width=settings.width,
            hidden=settings.hidden,
            kernel=settings.kernel,
            knots=settings.knots,
        )
        self.sublayers = tuple((make(), make()) for _ in range(self.levels))
        self.log_scales = jnp.zeros(self.levels + 1)
        self.log_spectrum = jnp.zeros(lattice.shape) if settings.circulant else None
        self.fold_log_scale = jnp.zeros(()) if settings.fold else None

    @property
    def scale_index(self) -> np.ndarray:
        """The RG scale of every site (0 finest), as the bijection's levels assign them."""
        return scale_index(self.side, self.levels)

    def _circulant_log_eigenvalues(self):
        theta = self.log_spectrum
        return 0.5 * (theta + jnp.roll(jnp.flip(theta, (0, 1)), 1, axis=(0, 1)))  # even in k: C is real

    def transform_and_log_det(self, z):
        """Generative direction: ``(x, ln|det dx/dz|)`` for latent fields ``z[..., L, L]``."""
        batch = z.shape[:-2]
        log_scale = self.log_scales[self.scale_index]
        x = _batch_last(z * jnp.exp(log_scale))
        log_det = jnp.full(x.shape[-1], log_scale.sum())
        for level in reversed(range(self.levels)):
            stride = 2**level
            grid = x[::stride, ::stride]
            disentangler, decimator = self.sublayers[level]
            grid, d1 = _on_blocks(decimator.forward, grid, shifted=False)
            grid, d2 = _on_blocks(disentangler.forward, grid, shifted=True)
            log_det += d1 + d2
            x = x.at[::stride, ::stride].set(grid)
        x, log_det = _batch_first(x, batch), log_det.reshape(batch)
        if self.log_spectrum is not None:
            log_c = self._circulant_log_eigenvalues()
            x, log_det = apply_circulant(x, jnp.exp(log_c)), log_det + log_c.sum()
        if self.fold:
            return _normal_fold(x, log_det, self.fold_log_scale)
        return x, log_det

    def inverse_and_log_det(self, x):
        """Encoding (renormalisation) direction: ``(z, ln|det dz/dx|)`` for fields ``x[..., L, L]``."""
        batch = x.shape[:-2]
        log_det = jnp.zeros(batch, x.dtype)
        if self.fold:
            x, log_det = _normal_unfold(x, log_det, self.fold_log_scale)
        if self.log_spectrum is not None:
            log_c = self._circulant_log_eigenvalues()
            x, log_det = apply_circulant(x, jnp.exp(-log_c)), log_det - log_c.sum()
        x, log_det = _batch_last(x), log_det.reshape(-1)
        for level in range(self.levels):
            stride = 2**level
            grid = x[::stride, ::stride]
            disentangler, decimator = self.sublayers[level]
            grid, d1 = _on_blocks(disentangler.inverse, grid, shifted=True)
            grid, d2 = _on_blocks(decimator.inverse, grid, shifted=False)
            log_det += d1 + d2
            x = x.at[::stride, ::stride].set(grid)
        log_scale = self.log_scales[self.scale_index]
        return _batch_first(x, batch) * jnp.exp(-log_scale), log_det.reshape(batch) - log_scale.sum()


def level_sources(small: int, large: int) -> list[int]:
    """For a flow of ``large`` levels grown from one of ``small``: the small level each level copies.

    The lower levels copy the level of the same index (the bulk, where only the lattice spacing of the
    active grid matters); the top levels copy the level as far from the small flow's top (their grids, of
    the same few sites, feel the torus the same way); the one in between is repeated:
    ``source(l) = max(min(l, small - 2), l - (large - small))``, e.g. 3 -> 4 levels: ``[0, 1, 1, 2]``.
    """
    require(small >= 2, "flow.levels", small, "a flow of at least 2 levels to grow from (a lattice of side >= 4)")
    require(large >= small, "lattice.shape", large, f"a lattice of at least as many levels ({small}) as the flow's")
    return [max(min(level, small - 2), level - (large - small)) for level in range(large)]


def _interpolate_periodic(theta: np.ndarray, side: int) -> np.ndarray:
    """``theta[M, M]`` on the momenta ``2 pi n / M`` -> ``[side, side]`` on ``2 pi n / side``, linear in ``k``,
    periodic."""
    position = np.arange(side) * theta.shape[0] / side
    low = np.floor(position).astype(int)
    weight, high = position - low, (low + 1) % theta.shape[0]
    rows = theta[low] * (1 - weight)[:, None] + theta[high] * weight[:, None]
    return rows[:, low] * (1 - weight)[None] + rows[:, high] * weight[None]


def grown(flow: NeuralRGFlow, lattice: Lattice, settings: FlowSettings) -> NeuralRGFlow:
    """``flow`` (trained on a smaller lattice with the same ``settings``) carried to ``lattice``.

    Each level's sublayers and per-scale log-variance are copied from the level :func:`level_sources`
    names, the top scale's from the top; the circulant layer's log-eigenvalues are interpolated linearly in
    momentum.  Measured on the Ising dual at T_c: a flow of KL 0.25 nats at L = 8, grown to L = 16 with no
    further training, has KL 1.9 nats (a fresh flow, N(0, I): 246).
    """
    larger = NeuralRGFlow(jax.random.PRNGKey(0), lattice, settings)
    require(
        larger.side >= flow.side,
        "lattice.shape",
        list(lattice.shape),
        f"a lattice at least as large as the flow's {flow.side} x {flow.side}",
    )
    source = level_sources(flow.levels, larger.levels)
    shapes = lambda tree: (jax.tree.structure(tree), [leaf.shape for leaf in jax.tree.leaves(tree)])
    require(
        shapes(flow.sublayers[0]) == shapes(larger.sublayers[0])
        and (flow.log_spectrum is None) == (larger.log_spectrum is None)
        and flow.fold == larger.fold,
        "flow",
        settings,
        "the settings the flow was built with",
    )
    larger = eqx.tree_at(lambda f: f.sublayers, larger, tuple(flow.sublayers[level] for level in source))
    larger = eqx.tree_at(lambda f: f.log_scales, larger, flow.log_scales[np.array([*source, flow.levels])])
    if flow.log_spectrum is not None:
        spectrum = _interpolate_periodic(np.asarray(flow.log_spectrum), larger.side)
        larger = eqx.tree_at(lambda f: f.log_spectrum, larger, jnp.asarray(spectrum, flow.log_spectrum.dtype))
    if flow.fold_log_scale is not None:
        larger = eqx.tree_at(lambda f: f.fold_log_scale, larger, flow.fold_log_scale)
    return larger
