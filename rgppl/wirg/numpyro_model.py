"""A fitted wavelet conditional model as NumPyro models, for conditioning and the usual inference tools.

``hierarchical_model`` has one sample site per scale: ``phi_{m}x{m}``, the coarsest field, then
``details_{m}x{m}``, the three detail channels ``phibar_j`` whose coarse field has side ``m``, from coarse
to fine; every site is an improper flat ``ImproperUniform`` whose weight is a ``factor`` (the way
:meth:`~rgppl.hamiltonians.Hamiltonian.model` writes a Boltzmann weight), and the field
``phi = G^T phi_j + Gbar^T phibar_j`` is reconstructed deterministically.  The weights are

    -E_J(phi_J),   -[ Ebar_j(phi_j, phibar_j) - Ftilde_j(phi_j) ]   (j = J .. 1),

so the joint density is ``p(phi_0)`` of the fitted model (Marchand et al., PRX 13, 041038), normalised
scale by scale up to constants (:mod:`rgppl.wirg.free_energy`).  Given a coarse field ``phi_j``
(``coarse=``) only the finer sites exist: NUTS then draws the details, i.e. super-resolution.

``inpainting_model`` is the same density in the pixel basis, ``exp(-E_0(phi))`` with the reconstructed
microscopic energy, with the pixels of ``known`` fixed to their values and one site ``unknown`` for the rest.

Sites are the wavelet coefficients of the fitted field ``model.transform.forward(phi)``, in its units (the
data's units without a transform); the deterministic ``phi`` is in the data's units.  The fitted potentials
are only defined on the data's range, so a state whose field leaves any scale's support gets zero weight, as
in the generator; start NUTS inside it with ``init_strategy=init_to_feasible`` (every site at 0, the
generator's start).
"""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from rgppl.errors import require
from rgppl.wavelets import idwt2, pyramid
from rgppl.wirg.free_energy import microscopic_energy, require_free_energies


def _flat(name: str, shape) -> jnp.ndarray:
    return numpyro.sample(name, dist.ImproperUniform(dist.constraints.real, (), event_shape=tuple(shape)))


def _within(support, field):
    return jnp.all((field >= support[0]) & (field <= support[1]))


def _weight(name: str, energy, inside) -> None:
    numpyro.factor(name, jnp.where(inside, -energy, -jnp.inf))


def hierarchical_model(model, coarse=None) -> None:
    """The NumPyro model of the fitted ``model`` over its wavelet scales (see the module docstring); with
    ``coarse`` (a coarse field ``phi_j`` of side ``m`` of the fitted field, as :func:`~rgppl.wirg.pyramid` gives it
    for ``model.transform.forward(phi)``) the scales from ``m`` down are sampled given it."""
    require_free_energies(model)
    conditionals = list(zip(model.scales[1:], model.free_energies))
    if coarse is None:
        top = model.scales[0]
        side = top.ansatz.side
        field = _flat(f"phi_{side}x{side}", (side, side)) / model.unit
        _weight("energy_top", top.ansatz.energy(jnp.asarray(top.theta), None, field[None]), _within(top.support, field))
    else:
        sides = [scale.ansatz.side for scale, _ in conditionals]
        coarse = jnp.asarray(coarse)
        require(
            coarse.ndim == 2 and coarse.shape[0] == coarse.shape[1] and coarse.shape[0] in sides,
            "coarse",
            f"shape {coarse.shape}",
            f"one coarse field phi_j of shape (m, m) with m in {sides}",
        )
        field = coarse / model.unit
        conditionals = conditionals[sides.index(coarse.shape[0]) :]
    for scale, free_energy in conditionals:
        side = scale.ansatz.side
        details = _flat(f"details_{side}x{side}", scale.ansatz.free_shape) / model.unit
        finer = idwt2(field, details, model.wavelet)
        energy = scale.ansatz.energy(jnp.asarray(scale.theta), field, details) - free_energy.ansatz.energy(
            jnp.asarray(free_energy.theta), None, field[None]
        )
        _weight(f"energy_{side}x{side}", energy, _within(scale.support, finer))
        field = finer
    numpyro.deterministic("phi", model.restore(field))


def inpainting_model(model, known, values) -> None:
    """``p(phi | phi[known] = values[known])`` of the fitted ``model``: the site ``unknown`` holds the other pixels
    (row-major order) and ``phi`` is the whole field, in data units."""
    require_free_energies(model)
    known, values = np.asarray(known, bool), jnp.asarray(values)
    require(
        known.shape == (model.L, model.L) and values.shape == known.shape,
        "known",
        f"mask {known.shape}, values {values.shape}",
        f"a boolean mask and values of shape ({model.L}, {model.L})",
    )
    require(0 < known.sum() < known.size, "known", f"{known.sum()} known pixels", "some pixels known and some not")
    missing = np.flatnonzero(~known)
    phi = values.ravel().at[missing].set(_flat("unknown", (len(missing),))).reshape(known.shape)
    numpyro.deterministic("phi", phi)
    coarse, details = pyramid(model.standardise(phi), model.wavelet, model.levels)
    inside = _within(model.scales[0].support, coarse[-1])
    for index, scale in enumerate(model.scales[1:], start=1):
        inside &= _within(scale.support, coarse[model.levels - index])
    _weight("energy", microscopic_energy(model)(phi), inside)
