"""The conditional Gibbs energy of one wavelet scale, linear in its parameters.

Marchand, Ozawa, Biroli & Mallat (PRX 13, 041038; arXiv 2207.04941).  A field ``phi_{j-1}`` (side
``2m``) splits orthogonally into its coarse field ``phi_j`` (side ``m``) and three detail channels
``phibar_j`` (see :mod:`rgppl.wavelets`).  The conditional ``pbar_j(phibar_j | phi_j) ~ exp(-Ebar_j)``
is an exponential family, ``Ebar_j = theta . U(phi_j, phibar_j)``, with the features

* quadratic moments ``U_{c,d,s} = 1/2 sum_x X_c(x) X_d(x - s)`` between the channels
  ``X = (phi_j, phibar_j^H, phibar_j^V, phibar_j^D)``, shifts ``s`` in a ``(2r + 1)^2`` window (periodic);
  ``c = d`` uses one shift of each pair ``+-s``; coarse x coarse is left out (it is a function of the
  conditioning field only): ``9 + 15 S`` features for ``S = ((2r + 1)^2 - 1) / 2`` positive shifts
  (fewer on grids with ``m <= 2r``, where shifts that coincide modulo ``m`` give one feature);
* a scalar potential of the reconstructed finer field, ``U_k = sum_x sigmoid((phi_{j-1}(x) - c_k) / w_k)``
  for ``K`` centres ``c_k`` spanning the data range.  (Long-tailed fields, such as weak-lensing maps, are
  fitted in a transformed variable instead: :mod:`rgppl.wirg.transform`.)
* optionally (beyond the paper's family), potentials of pairs of neighbouring sites of the finer field: of their
  half sums and half differences ``b^+-_mu(x) = (phi_{j-1}(x) +- phi_{j-1}(x + e_mu)) / 2`` over both directions
  ``mu``, ``U^+-_k = sum_{x,mu} sigmoid((b^+-_mu(x) - c^+-_k) / w^+-_k)``, each on its own grid of centres.  With
  the site potentials they hold two-site couplings that are not quadratic (``phi_x^2 phi_y^2``, ``phi_x^3 phi_y``),
  which coarse-graining generates.

The coarsest scale has a direct energy of the same form on its single channel ``X = (phi_J,)``
(quadratic moments of ``phi_J`` and the potential of ``phi_J`` itself).

Score matching needs the gradient of every feature with respect to the free variables (the details,
or ``phi_J`` at the coarsest scale) and its Laplacian; both are written out here in closed form:

    d U_{c,d,s} / d X_c(y) = 1/2 X_d(y - s),   d U_{c,d,s} / d X_d(y) = 1/2 X_c(y + s),
    d U_k / d phibar = Gbar [sigmoid'(u_k) / w_k],   Laplacian U_k = sum_x sigmoid''(u_k(x)) / w_k^2 D(x),

with ``u_k = (phi_{j-1} - c_k) / w_k`` and ``D(x) = (Gbar^T Gbar)_{xx}``
(the part of site ``x`` carried by the details; it depends only on the parity of ``x``).  A pair potential acts on
``b = a . phi_{j-1}`` with ``a = (e_x +- e_{x+mu}) / 2``: its gradient in ``phi_{j-1}`` is the adjoint
``(s(x) +- s(x - e_mu)) / 2`` of its slope ``s``, and its Laplacian weight is ``|Gbar a|^2`` in place of ``D(x)``.
Of the quadratic features only ``s = 0``, ``c = d`` free has a Laplacian: ``m^2``.

Score matching only needs the gradients through their Gram matrix ``A_kl = sum_i dU_k/dv_i dU_l/dv_i``, and the
quadratic features' gradients are translated channels: ``A`` is assembled from the Gram matrix of the
channels translated by every shift of the window (``(S C)^2`` site sums for ``S`` shifts and ``C`` channels,
a hundred by a hundred for radius 2) instead of the ``n_params x n_free`` gradients, eight times faster at
``m = 32``.

The energy's quadratic part is evaluated as a convolution in Fourier space,
``1/2 sum_x X(x)^T (K * X)(x) = 1/(4 m^2) sum_k Re[X^(k)^dagger (K^(k) + K^(k)^dagger) X^(k)]`` with the kernel
``K_{cd}(s) = theta_{c,d,s}`` built from ``theta`` once per call (not once per field); the fields are real,
so the sum runs over the real FFT's half plane, the modes with a partner ``-k`` in the other half counted
twice.  The sampler takes the energy and its gradient together in closed form
(:meth:`ScaleAnsatz.conditional_energy`): 3.6 times faster than autodiff at ``m = 32``, 6.4 times at ``m = 16``.
"""

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pywt

from rgppl.wavelets import dwt2, idwt2

CENTRE_QUANTILES = (0.001, 0.999)  # the sigmoid centres span these quantiles of the data


def sigmoid_grid(values, count: int) -> tuple[tuple, tuple]:
    """``count`` sigmoid centres evenly spaced over the central quantiles of ``values``, each as wide as the
    spacing: the ``(centres, widths)`` of a :class:`ScaleAnsatz`."""
    if count == 0:
        return (), ()
    lo, hi = np.quantile(np.asarray(values), CENTRE_QUANTILES)
    centres = np.linspace(lo, hi, count)
    width = (hi - lo) / max(count - 1, 1)
    return tuple(float(c) for c in centres), (float(width),) * count


def _sigmoids(x, centres: tuple, widths: tuple) -> list:
    """``sigmoid((x - c_k) / w_k)`` elementwise for every static centre.

    With one width for all (as :func:`sigmoid_grid` makes them) a single exponential serves every centre,
    ``sigmoid = 1 / (1 + t e_k)`` with ``t = exp(-(x - c_m) / w)`` (``c_m`` the middle centre) and the constants
    ``e_k = exp((c_k - c_m) / w)``; ``t = inf`` gives 0 and ``t = 0`` gives 1, as they should."""
    if len(set(widths)) != 1:
        return [jax.nn.sigmoid((x - c) / w) for c, w in zip(centres, widths)]
    width, middle = widths[0], centres[len(centres) // 2]
    t = jnp.exp(-(x - middle) / width)
    return [1 / (1 + t * float(np.exp((c - middle) / width))) for c in centres]


def sigmoid_series(x, weights, centres: tuple, widths: tuple):
    """``v(x) = sum_k weights_k sigmoid((x - c_k) / w_k)`` elementwise, the sum over the static centres unrolled:
    XLA fuses it into one pass over ``x``, a third of the cost of the stacked ``(K, *x.shape)`` form."""
    return sum((weights[k] * s for k, s in enumerate(_sigmoids(x, centres, widths))), jnp.zeros_like(x))


def sigmoid_series_and_slope(x, weights, centres: tuple, widths: tuple):
    """``stack([v(x), v'(x)])`` with ``v' = sum_k weights_k sigmoid_k (1 - sigmoid_k) / w_k``, in one pass.

    One output array behind an optimisation barrier: on CPU, XLA runs a fusion with two outputs (``v`` and
    ``v'`` apart) several times slower, and fuses an unmaterialised series into the wavelet transform that
    consumes it, recomputing it once per filter tap."""
    if not centres:
        return jnp.zeros((2, *x.shape), x.dtype)
    sigmoids = _sigmoids(x, centres, widths)
    value = sum((weights[k] * s for k, s in enumerate(sigmoids)), jnp.zeros_like(x))
    slope = sum((weights[k] * (s - s * s) / w for k, (s, w) in enumerate(zip(sigmoids, widths))), jnp.zeros_like(x))
    return jax.lax.optimization_barrier(jnp.stack([value, slope]))


@dataclass(frozen=True)
class ScaleAnsatz:
    """The features of one scale: ``side`` is ``m`` (the coarse side), ``radius`` the requested window
    radius, ``centres``/``widths`` the sigmoid potential of the finer field; ``coarsest`` for the direct energy
    of ``phi_J``; ``sum_*`` and ``difference_*`` the potentials of neighbouring pairs' half sums and half differences.

    Ansätze with equal fields are equal (and hash alike), so the jitted passes built for one
    (``functools.lru_cache`` on the ansatz) serve every fit and sampler of the same features."""

    side: int
    radius: int
    centres: tuple = ()
    widths: tuple = ()
    wavelet: str = "db4"
    coarsest: bool = False
    sum_centres: tuple = ()
    sum_widths: tuple = ()
    difference_centres: tuple = ()
    difference_widths: tuple = ()

    @property
    def window(self) -> int:
        """The radius used: the requested one, clipped to ``m / 2`` (larger shifts wrap onto smaller ones)."""
        return min(self.radius, self.side // 2)

    @property
    def n_channels(self) -> int:
        """The channels ``C`` at each site: the coarse field and 3 details, or the coarse field alone at the top."""
        return 1 if self.coarsest else 4

    @property
    def free_channels(self) -> tuple:
        """The channels sampled by this scale's conditional (the details, or the coarse field at the top)."""
        return (0,) if self.coarsest else (1, 2, 3)

    @property
    def free_shape(self) -> tuple:
        """The shape ``(C_free, side, side)`` of one configuration's free variables."""
        return (len(self.free_channels), self.side, self.side)

    @cached_property
    def quadratic_terms(self) -> tuple:
        """``(c, d, shift)`` of every quadratic feature, in a fixed order, one per distinct feature."""
        m, r = self.side, self.window
        shifts = [(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)]
        residue = {s: (s[0] % m, s[1] % m) for s in shifts}
        cross = list({residue[s]: s for s in reversed(shifts)}.values())[::-1]  # one shift per residue mod m
        pair = {s: min(residue[s], residue[(-s[0], -s[1])]) for s in shifts}
        same = list({pair[s]: s for s in reversed(shifts)}.values())[::-1]  # one per pair +-s
        same.sort(key=lambda s: s != (0, 0))
        terms = []
        for c in range(self.n_channels):
            for d in range(c, self.n_channels):
                if c in self.free_channels or d in self.free_channels:
                    terms += [(c, d, s) for s in (same if c == d else cross)]
        return tuple(terms)

    @property
    def n_quadratic(self) -> int:
        """The number of quadratic parameters ``theta_{c,d,s}``."""
        return len(self.quadratic_terms)

    @property
    def potential_groups(self) -> tuple:
        """``(name, sign, centres, widths)`` of every group of potentials, in the order of ``theta`` (after the
        quadratic couplings): the sites (``sign`` None), then the pairs' half sums (+1) and half differences (-1)."""
        return (
            ("sigmoid", None, self.centres, self.widths),
            ("sum sigmoid", 1.0, self.sum_centres, self.sum_widths),
            ("difference sigmoid", -1.0, self.difference_centres, self.difference_widths),
        )

    @property
    def n_params(self) -> int:
        """The number of parameters: quadratic couplings plus potentials."""
        return self.n_quadratic + sum(len(centres) for _, _, centres, _ in self.potential_groups)

    def potential_slices(self) -> list[slice]:
        """Where each group of :attr:`potential_groups` sits in ``theta``."""
        start, slices = self.n_quadratic, []
        for _, _, centres, _ in self.potential_groups:
            slices.append(slice(start, start + len(centres)))
            start += len(centres)
        return slices

    def feature_names(self) -> list[str]:
        """A name for each parameter, in the order of ``theta``."""
        channel = ("coarse",) if self.coarsest else ("coarse", "H", "V", "D")
        quadratic = [f"{channel[c]}*{channel[d]}@{s[0]},{s[1]}" for c, d, s in self.quadratic_terms]
        return quadratic + [f"{name}@{c:.3g}" for name, _, centres, _ in self.potential_groups for c in centres]

    @property
    def _tables(self):
        """Static index arrays: the distinct shifts and, per quadratic term, its channels and shift index.

        Built afresh on every use (a few dozen entries, at trace time under jit): numpy index arrays kept on the
        ansatz while a jitted pass of it lives fail eager indexing under ``jax.enable_x64`` after a float32
        trace (an int32 index against an int64 size)."""
        shifts = sorted({s for _, _, s in self.quadratic_terms})
        index = {s: i for i, s in enumerate(shifts)}
        c, d, s = zip(*[(c, d, index[s]) for c, d, s in self.quadratic_terms])
        return tuple(shifts), np.array(c), np.array(d), np.array(s)

    def _laplacian_weight(self, sign) -> np.ndarray:
        """``|Gbar a|^2`` for the combination ``a`` of finer-field sites a potential acts on, at every site of the
        finer grid (``2m x 2m``; ``m x m`` at the coarsest scale, where the free field is the finer field and the
        norm is ``|a|^2``): ``a = e_x`` for a site potential, shape ``(1, n, n)`` (the site's detail part ``D(x) =
        (Gbar^T Gbar)_{xx}``), ``a = (e_x + sign e_{x+mu}) / 2`` for a pair's, shape ``(2, n, n)`` over ``mu``.  One
        analysis step commutes with translations by 2, so the sites' parities give the whole grid."""
        n, period = (self.side, 1) if self.coarsest else (2 * self.side, 2)
        steps = ((0, 0),) if sign is None else ((1, 0), (0, 1))
        weight = np.zeros((len(steps), n, n))
        for mu, (dx, dy) in enumerate(steps):
            for px in range(period):
                for py in range(period):
                    a = np.zeros((n, n))
                    a[px, py] += 1.0 if sign is None else 0.5
                    if sign is not None:
                        a[(px + dx) % n, (py + dy) % n] += 0.5 * sign
                    details = [a] if self.coarsest else pywt.dwt2(a, self.wavelet, mode="periodization")[1]
                    weight[mu, px::period, py::period] = sum(np.sum(d**2) for d in details)
        return weight

    # ---- the fields -------------------------------------------------------------------------------
    def channels(self, coarse, free):
        """``X[c, m, m]``: the conditioning coarse field (if any) and the free channels."""
        return free if self.coarsest else jnp.concatenate([coarse[None], free], axis=0)

    def finer_field(self, coarse, free):
        """The field the potential acts on: ``phi_{j-1} = G^T phi_j + Gbar^T phibar_j`` (``phi_J`` if coarsest)."""
        return free[0] if self.coarsest else idwt2(coarse, free, self.wavelet)

    def _translated(self, x, shifts):
        """``x[c]`` translated by every shift: ``out[s, c, y] = x[c, y - shift_s]`` (one gather)."""
        grid = np.arange(self.side)
        rows = (grid[None, :, None] - np.array([sx for sx, _ in shifts])[:, None, None]) % self.side
        cols = (grid[None, None, :] - np.array([sy for _, sy in shifts])[:, None, None]) % self.side
        return jnp.moveaxis(x[:, rows, cols], 0, 1)

    @property
    def _atoms(self):
        """Static tables of the quadratic features' gradients as translated channels.

        ``dU_{c,d,s} / dX`` is ``1/2 X_d(y - s)`` in channel ``c`` plus ``1/2 X_c(y + s)`` in channel ``d``, each part
        kept if its channel is free.  With ``R[r * C + a] = X_a(y - r)`` the channels translated by every residue
        shift ``r`` of the window, feature ``t``'s part ``i`` is ``coef[i, t] R[row[i, t]]`` in free channel
        ``slot[i, t]``.  Returns ``(residues, row, slot, coef)``, the last three of shape ``(2, n_quadratic)``."""
        m, w = self.side, self.window
        residues = sorted({(sx % m, sy % m) for sx in range(-w, w + 1) for sy in range(-w, w + 1)})
        index = {r: i for i, r in enumerate(residues)}
        free = {c: i for i, c in enumerate(self.free_channels)}
        row, slot, coef = (np.zeros((2, self.n_quadratic), dtype) for dtype in (int, int, float))
        for t, (c, d, (sx, sy)) in enumerate(self.quadratic_terms):
            for i, (target, other, (rx, ry)) in enumerate(((c, d, (sx, sy)), (d, c, (-sx, -sy)))):
                row[i, t] = index[(rx % m, ry % m)] * self.n_channels + other
                slot[i, t], coef[i, t] = free.get(target, 0), 0.5 if target in free else 0.0
        return residues, row, slot, coef

    @staticmethod
    def _potential_field(sign, finer):
        """What a group of potentials acts on, ``(directions, n, n)``: the finer field itself (``sign`` None), or its
        neighbouring pairs' ``(phi(x) + sign phi(x + e_mu)) / 2`` for ``mu`` along both axes."""
        if sign is None:
            return finer[None]
        return jnp.stack([(finer + sign * jnp.roll(finer, -1, axis=axis)) / 2 for axis in (-2, -1)])

    @staticmethod
    def _potential_adjoint(sign, slope):
        """The gradient in the finer field of ``sum slope * _potential_field(sign, .)``: ``slope[..., mu, n, n]``
        summed back onto the sites, ``(slope(x) + sign slope(x - e_mu)) / 2`` for a pair."""
        if sign is None:
            return slope[..., 0, :, :]
        return sum((slope[..., mu, :, :] + sign * jnp.roll(slope[..., mu, :, :], 1, axis=-2 + mu)) / 2 for mu in (0, 1))

    @staticmethod
    def _sigmoid_args(field, centres, widths):
        """``(field - c) / w`` for every centre of a group (a leading axis) and the widths, broadcastable to it."""
        expand = (slice(None),) + (None,) * field.ndim
        centres = jnp.asarray(centres, field.dtype)[expand]
        widths = jnp.asarray(widths, field.dtype)[expand]
        return (field[None] - centres) / widths, widths

    def _groups_on(self, finer):
        """``(sign, field, centres, widths, theta slice)`` of every group of potentials that has any."""
        return [
            (sign, self._potential_field(sign, finer), centres, widths, part)
            for (_, sign, centres, widths), part in zip(self.potential_groups, self.potential_slices(), strict=True)
            if centres
        ]

    # ---- features, energy, gradients, Laplacians (one configuration; vmap for batches) -------------
    def features(self, coarse, free):
        """``U(phi_j, phibar_j)``, shape ``(n_params,)``."""
        shifts, c, d, s = self._tables
        x = self.channels(coarse, free)
        quadratic = 0.5 * jnp.sum(x[c] * self._translated(x, shifts)[s, d], axis=(-2, -1))
        potentials = [
            jnp.sum(jax.nn.sigmoid(self._sigmoid_args(field, centres, widths)[0]), axis=(-3, -2, -1))
            for _, field, centres, widths, _ in self._groups_on(self.finer_field(coarse, free))
        ]
        return jnp.concatenate([quadratic, *potentials])

    def _coupling(self, theta):
        """The quadratic energy's operator ``K + K^T`` in Fourier space, ``(C, C, m, m/2 + 1)``: ``K_{cd}(s) =
        theta_{c,d,s}``
        is the convolution kernel of ``E_quad = 1/2 X^T K X``, and its transpose's Fourier coefficients are
        ``conj(K_dc(k))``; built from ``theta`` once per call (not once per field)."""
        shifts, c, d, s = self._tables
        sx, sy = np.array(shifts).T % self.side
        kernel = jnp.zeros((self.n_channels, self.n_channels, self.side, self.side), theta.dtype)
        kernel_hat = jnp.fft.rfft2(kernel.at[c, d, sx[s], sy[s]].add(theta[: self.n_quadratic]))
        return kernel_hat + jnp.conj(jnp.swapaxes(kernel_hat, 0, 1))

    def energy(self, theta, coarse, free):
        """``Ebar_j = theta . U`` (the conditional energy, or ``E_J`` at the coarsest scale), as a convolution."""
        x = self.channels(coarse, free)
        theta = jnp.asarray(theta, x.dtype)
        x_hat = jnp.fft.rfft2(x)
        coupled = jnp.sum(self._coupling(theta) * x_hat[None], axis=1)  # elementwise: it fuses, a batched dot does not
        weight = np.full(self.side // 2 + 1, 2.0)  # the modes k and -k of the half plane count twice
        weight[[0, self.side // 2]] = 1.0
        quadratic = 0.25 * jnp.sum(jnp.asarray(weight, x.dtype) * jnp.real(jnp.conj(x_hat) * coupled)) / self.side**2
        return quadratic + sum(
            jnp.sum(sigmoid_series(field, theta[part], centres, widths))
            for _, field, centres, widths, part in self._groups_on(self.finer_field(coarse, free))
        )

    def conditional_energy(self, theta, coarse, support):
        """The sampler's ``free -> (Ebar_j, dEbar_j / d free)`` given ``coarse``, in closed form (the same energy as
        :meth:`energy`, a fraction of the cost of its autodiff gradient), ``+inf`` where the finer field leaves the
        ``support`` interval (the data's range, outside which the fitted potential is not defined).

        With ``Ks = K + K^T`` (``_coupling``) and the channels ``X = (phi_j, F)``, ``F`` the free ones,
        ``E_quad = 1/4 X^T Ks X = 1/4 F . (Ks X + Ks_{F,coarse} phi_j)`` and its gradient is ``1/2 (Ks X)_F``; the
        coarse
        field's drive ``Ks_{F,coarse} phi_j`` is computed once.  The potential of the finer field ``phi_{j-1}`` has the
        gradient ``Gbar v'(phi_{j-1})``, the detail part of one analysis step (``v'(phi_J)`` at the coarsest scale);
        a pair potential's slope enters ``v'`` through its adjoint."""
        theta = jnp.asarray(theta, coarse.dtype)
        coupling = self._coupling(theta)
        free_channels = np.asarray(self.free_channels)
        size = (self.side, self.side)
        if self.coarsest:
            drive = drive_field = 0.0
        else:
            drive = coupling[free_channels, 0] * jnp.fft.rfft2(coarse)[None]
            drive_field = jnp.fft.irfft2(drive, s=size)

        def value_and_grad(free):
            coupled = jnp.sum(
                coupling[free_channels[:, None], free_channels[None, :]] * jnp.fft.rfft2(free)[None], axis=1
            )
            field = jnp.fft.irfft2(coupled + drive, s=size)
            finer = self.finer_field(coarse, free)
            energy, finer_slope = 0.25 * jnp.sum(free * (field + drive_field)), jnp.zeros_like(finer)
            for sign, acted, centres, widths, part in self._groups_on(finer):
                series = sigmoid_series_and_slope(acted, theta[part], centres, widths)
                energy += jnp.sum(series[0])
                finer_slope += self._potential_adjoint(sign, series[1])
            slope = finer_slope[None] if self.coarsest else dwt2(finer_slope, self.wavelet)[1]
            inside = jnp.all((finer >= support[0]) & (finer <= support[1]))
            return jnp.where(inside, energy, jnp.inf), 0.5 * field + slope

        return value_and_grad

    def _potential_gradients(self, coarse, free):
        """``dU_k / d(free)`` of the features after the quadratic ones (the potentials), ``(k, *free_shape)``."""
        finer = self.finer_field(coarse, free)
        slopes = [jnp.zeros((0, *finer.shape), finer.dtype)]
        for sign, field, centres, widths, _ in self._groups_on(finer):
            u, width = self._sigmoid_args(field, centres, widths)
            slopes.append(self._potential_adjoint(sign, jax.nn.sigmoid(u) * (1 - jax.nn.sigmoid(u)) / width))
        slope = jnp.concatenate(slopes)
        return slope[:, None] if self.coarsest else dwt2(slope, self.wavelet)[1]

    def _gradient_parts(self, coarse, free):
        """The translated channels ``R`` (rows ``r * C + a``) and the potentials' gradients, both flattened over
        sites."""
        residues, *_ = self._atoms
        translated = self._translated(self.channels(coarse, free), residues).reshape(-1, self.side**2)
        return translated, self._potential_gradients(coarse, free).reshape(-1, len(self.free_channels), self.side**2)

    def _quadratic_projections(self, translated, fields):
        """``sum_{f,y} dU_t/dX_f(y) fields[j, f, y]`` for every quadratic feature ``t``: shape ``(n_quadratic, J)``."""
        _, row, slot, coef = self._atoms
        products = jnp.einsum("ri,jfi->rfj", translated, fields)
        return sum(jnp.asarray(coef[i], fields.dtype)[:, None] * products[row[i], slot[i]] for i in range(2))

    def feature_gram(self, coarse, free):
        """``A_kl = sum_i dU_k/dv_i dU_l/dv_i`` over the free variables ``v`` of one configuration, ``(n_params,
        n_params)``.

        Score matching's per-pair matrix without the ``(n_params, n_free)`` gradients: the quadratic block is read off
        the Gram matrix ``R R^T`` of the translated channels (``(S C)^2`` products over the sites for ``S`` residue
        shifts and ``C`` channels, against ``n_quadratic^2`` for the gradients), the cross block projects ``R`` on the
        potentials' gradients."""
        _, row, slot, coef = self._atoms
        translated, potential = self._gradient_parts(coarse, free)
        gram = translated @ translated.T
        quadratic = sum(
            jnp.asarray(np.outer(coef[i], coef[j]) * (slot[i][:, None] == slot[j][None, :]), gram.dtype)
            * gram[row[i][:, None], row[j][None, :]]
            for i in range(2)
            for j in range(2)
        )
        cross = self._quadratic_projections(translated, potential)
        return jnp.block([[quadratic, cross], [cross.T, jnp.einsum("jfi,lfi->jl", potential, potential)]])

    def feature_projections(self, coarse, free, field):
        """``sum_i dU_k/dv_i field_i`` for a ``field`` shaped like ``free``: ``(n_params,)``."""
        translated, potential = self._gradient_parts(coarse, free)
        field = field.reshape(1, -1, self.side**2)
        return jnp.concatenate(
            [self._quadratic_projections(translated, field)[:, 0], jnp.einsum("jfi,fi->j", potential, field[0])]
        )

    def feature_laplacians(self, coarse, free):
        """``sum_i d^2 U_k / d(free_i)^2``, shape ``(n_params,)``."""
        quadratic = np.array(
            [float(self.side**2) if c == d and s == (0, 0) else 0.0 for c, d, s in self.quadratic_terms]
        )
        finer = self.finer_field(coarse, free)
        potentials = []
        for sign, field, centres, widths, _ in self._groups_on(finer):
            u, width = self._sigmoid_args(field, centres, widths)
            sig = jax.nn.sigmoid(u)
            curvature = sig * (1 - sig) * (1 - 2 * sig) / width**2
            weight = jnp.asarray(self._laplacian_weight(sign), u.dtype)
            potentials.append(jnp.sum(curvature * weight, axis=(-3, -2, -1)))
        return jnp.concatenate([jnp.asarray(quadratic, finer.dtype), *potentials])
