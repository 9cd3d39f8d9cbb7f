"""The free energy of every wavelet conditional, and the microscopic energy the scales add up to.

Marchand, Ozawa, Biroli & Mallat (PRX 13, 041038), section on energy estimation.  The conditional
``pbar_j(phibar_j | phi_j) = exp(-Ebar_j) / Z_j(phi_j)`` leaves the normaliser

    Ftilde_j(phi_j) = -ln integral exp(-Ebar_j(phi_j, phibar_j)) dphibar_j,
    grad_{phi_j} Ftilde_j = E[ grad_{phi_j} Ebar_j | phi_j ],

so with the orthogonal (unit-Jacobian) wavelet step the energies of successive scales are related by
``E_{j-1}(phi_{j-1}) = E_j(phi_j) + Ebar_j(phi_j, phibar_j) - Ftilde_j(phi_j)`` up to a constant, and

    E_0(phi_0) = E_J(phi_J) + sum_{j=1..J} [ Ebar_j(phi_j, phibar_j) - Ftilde_j(phi_j) ] + const.

``Ftilde_j`` is fitted in the form of a direct energy of ``phi_j`` (quadratic moments over a window and a
sigmoid potential, :class:`~rgppl.wirg.ansatz.ScaleAnsatz` with ``coarsest=True``) by gradient matching:
the data pairs ``(phi_j, phibar_j)`` are draws of the true conditional, so the least-squares fit of
``grad Ftilde_j`` to ``grad_{phi_j} Ebar_j(phi_j, phibar_j)`` converges to the conditional mean — a
closed-form linear regression.  The additive constants (which thermodynamic integration would give) do
not enter ``E_0`` up to a constant, the hierarchical NumPyro model or any sampler, and are not fitted.

The reconstructed ``E_0`` is compared with a Hamiltonian by projecting both gradients on the same
microscopic basis (:func:`project_couplings`): couplings ``E = -sum_x sum_s J_s phi_x phi_{x+s}`` over the
positive shifts of a window, plus a site potential ``sum_x sum_p a_p phi_x^p``.
"""

import time
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from rgppl.errors import require
from rgppl.wavelets import pyramid
from rgppl.wirg.ansatz import ScaleAnsatz, sigmoid_grid
from rgppl.wirg.linear import accumulate, chunks, solve_preconditioned
from rgppl.wirg.model import ScaleFit, data_support


@lru_cache(maxsize=64)
def _gradient_matching_moments(ansatz: ScaleAnsatz):
    """Jitted once per direct-energy ansatz: the chunk sums of gradient matching (Gram matrix, projections of the
    targets, their sum of squares and their sum)."""
    gram = jax.vmap(lambda p: ansatz.feature_gram(jnp.zeros_like(p), p[None]))
    projections = jax.vmap(lambda p, t: ansatz.feature_projections(jnp.zeros_like(p), p[None], t[None]))

    @jax.jit
    def moments(phi, target):
        return (
            jnp.sum(gram(phi), axis=0),
            jnp.sum(projections(phi, target), axis=0),
            jnp.sum(target**2),
            jnp.sum(target.reshape(len(phi), -1), axis=0),
        )

    return moments


def gradient_matching(ansatz: ScaleAnsatz, fields, targets, chunk: int = 64) -> tuple[np.ndarray, dict]:
    """``theta`` minimising ``E || grad_phi (theta . U(phi)) - target ||^2`` over the pairs ``(fields[n], targets[n])``,
    for a direct-energy ``ansatz`` of ``phi`` (side ``m``).  The report has ``n_params``, ``condition`` and
    ``explained``, the fraction of the targets' variance the fitted gradient accounts for (below 1 also for an
    exact ansatz: the targets scatter around their conditional mean)."""
    start = time.perf_counter()
    a, b, total, mean = accumulate(_gradient_matching_moments(ansatz), fields, targets, chunk=chunk)
    theta, condition = solve_preconditioned(ansatz, a, b)
    n = len(fields)
    residual = total - 2 * theta @ b + theta @ a @ theta
    variance = total - np.sum(mean**2) / n
    report = {
        "n_params": ansatz.n_params,
        "condition": condition,
        "explained": float(1 - residual / variance),
        "time_s": time.perf_counter() - start,
    }
    return theta, report


@lru_cache(maxsize=64)
def _coarse_gradient(ansatz: ScaleAnsatz):
    """Jitted once per ansatz: ``grad_{phi_j} Ebar_j`` of a batch of data pairs, given ``theta``."""
    return jax.jit(jax.vmap(jax.grad(ansatz.energy, argnums=1), in_axes=(None, 0, 0)))


def conditional_coarse_gradients(scale: ScaleFit, coarse, free, chunk: int = 64) -> jax.Array:
    """``grad_{phi_j} Ebar_j(phi_j, phibar_j)`` for every data pair, shape of ``coarse``."""
    theta = jnp.asarray(scale.theta, jnp.float32)
    grad = _coarse_gradient(scale.ansatz)
    return jnp.concatenate([grad(theta, coarse[part], free[part]) for part in chunks(len(coarse), chunk)])


def fit_free_energy(scale: ScaleFit, coarse, free, potentials: int, chunk: int = 64) -> ScaleFit:
    """``Ftilde_j`` of a fitted conditional ``scale`` from its data pairs ``(coarse, free)``: a direct energy of
    ``phi_j`` with the conditional's window radius and ``potentials`` sigmoids over the range of ``phi_j``."""
    centres, widths = sigmoid_grid(coarse, potentials)
    ansatz = ScaleAnsatz(scale.ansatz.side, scale.ansatz.radius, centres, widths, scale.ansatz.wavelet, coarsest=True)
    targets = conditional_coarse_gradients(scale, coarse, free, chunk)
    theta, report = gradient_matching(ansatz, coarse, targets, chunk)
    spread = np.array([float(jnp.std(coarse))])
    return ScaleFit(ansatz, theta, spread, data_support(coarse), {**report, "side": ansatz.side})


def require_free_energies(model) -> None:
    """Raise :class:`~rgppl.errors.InputError` unless ``model`` carries the free energy of every conditional."""
    require(
        len(model.free_energies) == model.levels,
        "model.free_energies",
        len(model.free_energies),
        f"one free energy per conditional ({model.levels}); fit the model with rgppl.wirg.fit_wirg",
    )


def microscopic_energy(model):
    """``E_0(phi)`` of one field in the data's units, up to a constant, from a model with free energies:
    ``E_J + sum_j (Ebar_j - Ftilde_j)`` of ``x = model.standardise(phi)``, less the log-Jacobian of the transform
    (:mod:`rgppl.wirg.transform`)."""
    require_free_energies(model)
    thetas = [jnp.asarray(s.theta) for s in model.scales]
    free_thetas = [jnp.asarray(f.theta) for f in model.free_energies]

    def energy(phi):
        coarse, details = pyramid(model.standardise(phi), model.wavelet, model.levels)
        top = model.scales[0]
        total = top.ansatz.energy(thetas[0], None, coarse[-1][None]) - model.transform.log_jacobian(phi)
        for index, (scale, free_energy) in enumerate(zip(model.scales[1:], model.free_energies), start=1):
            j = model.levels - index + 1  # the conditional of phibar_j given phi_j
            total += scale.ansatz.energy(thetas[index], coarse[j], details[j - 1])
            total -= free_energy.ansatz.energy(free_thetas[index - 1], None, coarse[j][None])
        return total

    return energy


def positive_shifts(radius: int) -> list[tuple[int, int]]:
    """One shift of every pair ``+-s`` in the ``(2 radius + 1)^2`` window, ``s != 0``."""
    return [(dx, dy) for dx in range(0, radius + 1) for dy in range(-radius, radius + 1) if dx > 0 or dy > 0]


def _projections(energies: list, fields, radius: int, powers, chunk: int) -> tuple[list, list, np.ndarray]:
    """One pass over ``fields`` for several energies: the coupling names, each energy's projected couplings and
    the Gram matrix ``sum <grad E_i, grad E_k>`` of their gradients."""
    shifts = positive_shifts(radius)

    def basis(phi):
        hopping = [-(jnp.roll(phi, s, (0, 1)) + jnp.roll(phi, (-s[0], -s[1]), (0, 1))) for s in shifts]
        return jnp.stack(hopping + [p * phi ** (p - 1) for p in powers]).reshape(len(shifts) + len(powers), -1)

    @jax.jit
    def moments(phi):
        g = jax.vmap(basis)(phi)
        grads = jnp.stack([jax.vmap(jax.grad(e))(phi).reshape(len(phi), -1) for e in energies])
        return (
            jnp.einsum("nki,nli->kl", g, g),
            jnp.einsum("nki,eni->ek", g, grads),
            jnp.einsum("eni,fni->ef", grads, grads),
        )

    a, b, gram = accumulate(moments, jnp.asarray(fields), chunk=chunk)
    names = [f"J({dx},{dy})" for dx, dy in shifts] + [f"a_{p}" for p in powers]
    return names, [np.linalg.solve(a, row) for row in b], gram


def project_couplings(energy, fields, radius: int = 2, powers=(2, 4, 6), chunk: int = 64) -> dict:
    """The microscopic couplings of ``energy`` (one field -> scalar) seen on ``fields[n, L, L]``: the least-squares
    fit of ``grad E(phi)`` by ``E = -sum_x sum_s J_s phi_x phi_{x+s} + sum_x sum_p a_p phi_x^p`` over the
    positive shifts ``s`` within ``radius`` and the ``powers`` p.  Returns ``{"J(dx,dy)": .., "a_p": ..}``
    (exactly the Hamiltonian's couplings when it lies in this basis)."""
    names, (values,), _ = _projections([energy], fields, radius, powers, chunk)
    return dict(zip(names, map(float, values)))


def compare_with_hamiltonian(model, hamiltonian, fields, radius: int = 2, powers=(2, 4, 6), chunk: int = 64) -> dict:
    """The microscopic energy recovered from ``model`` beside ``hamiltonian``'s, on ``fields`` (data units):
    ``{"couplings": [{"term", "recovered", "true"}, ...], "gradient_error": ||grad E_0 - grad E|| / ||grad E||}``,
    the couplings projected as in :func:`project_couplings`, the error over all sites of all ``fields``."""
    names, (recovered, true), gram = _projections(
        [microscopic_energy(model), hamiltonian.energy], fields, radius, powers, chunk
    )
    difference = gram[0, 0] - 2 * gram[0, 1] + gram[1, 1]
    return {
        "couplings": [
            {"term": name, "recovered": float(r), "true": float(t)} for name, r, t in zip(names, recovered, true)
        ],
        "gradient_error": float(np.sqrt(max(difference, 0.0) / gram[1, 1])),
    }
