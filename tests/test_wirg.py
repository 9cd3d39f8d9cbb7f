import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rgppl import loop
from rgppl.diagnostics import make_datatree
from rgppl.errors import InputError
from rgppl.exact import free_field_propagator, free_field_spectrum, sample_gaussian_field
from rgppl.fidelity import field_fidelity
from rgppl.hamiltonians import free_field
from rgppl.observables import momentum_power
from rgppl.wavelets import idwt2, pyramid
from rgppl.wirg.ansatz import ScaleAnsatz, sigmoid_series
from rgppl.wirg.fit import (
    FitSettings,
    exact_quadratic_theta,
    fit_wirg,
    refine_maximum_likelihood,
    score_matching,
    score_matching_errors,
)
from rgppl.wirg.gaussian import GaussianStart
from rgppl.wirg.model import ScaleFit
from rgppl.wirg.sampler import GeneratorSettings, chain_init, generate, hmc_step, target_acceptance
from tests.stats import family_threshold, student_threshold

M2 = 0.5


def free_field_data(L: int, n: int, seed: int = 0) -> np.ndarray:
    return np.asarray(sample_gaussian_field(jax.random.PRNGKey(seed), free_field_spectrum((L, L), M2), (n,)))


PAIRS = {  # potentials of neighbouring pairs' half sums and half differences
    "sites": {},
    "pairs": {
        "sum_centres": (-0.8, 0.5),
        "sum_widths": (0.6, 0.9),
        "difference_centres": (-0.3, 0.0, 0.4),
        "difference_widths": (0.3, 0.3, 0.3),
    },
}


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("pairs", list(PAIRS))
@pytest.mark.parametrize("widths", [(0.5, 0.7, 0.4), (0.6, 0.6, 0.6)], ids=["unequal", "equal"])
@pytest.mark.parametrize("coarsest", [False, True], ids=["conditional", "coarsest"])
@pytest.mark.parametrize("side, radius", [(1, 2), (2, 2), (4, 2)])
def test_feature_gram_projections_laplacians_energy_and_its_gradient_equal_autodiff(
    coarsest, side, radius, widths, pairs
):
    ansatz = ScaleAnsatz(
        side=side,
        radius=radius,
        centres=(-1.0, 0.2, 1.3),
        widths=widths,
        wavelet="db2",
        coarsest=coarsest,
        **PAIRS[pairs],
    )
    coarse = jax.random.normal(jax.random.PRNGKey(0), (side, side))
    free = jax.random.normal(jax.random.PRNGKey(1), ansatz.free_shape)
    features = lambda f: ansatz.features(coarse, f)  # noqa: E731
    gradients = jax.jacrev(features)(free).reshape(ansatz.n_params, -1)
    np.testing.assert_allclose(ansatz.feature_gram(coarse, free), gradients @ gradients.T, atol=1e-11)
    field = jax.random.normal(jax.random.PRNGKey(3), ansatz.free_shape)
    np.testing.assert_allclose(ansatz.feature_projections(coarse, free, field), gradients @ field.ravel(), atol=1e-12)
    laplacians = jax.vmap(
        lambda k: jnp.trace(jax.hessian(lambda f: features(f)[k])(free).reshape(free.size, free.size))
    )(jnp.arange(ansatz.n_params))
    np.testing.assert_allclose(ansatz.feature_laplacians(coarse, free), laplacians, atol=1e-11)
    theta = jax.random.normal(jax.random.PRNGKey(2), (ansatz.n_params,))
    np.testing.assert_allclose(ansatz.energy(theta, coarse, free), theta @ features(free), rtol=1e-12)
    energy, gradient = ansatz.conditional_energy(theta, coarse, jnp.array([-10.0, 10.0]))(free)
    np.testing.assert_allclose(energy, ansatz.energy(theta, coarse, free), rtol=1e-12)
    np.testing.assert_allclose(gradient, jax.grad(lambda f: ansatz.energy(theta, coarse, f))(free), atol=1e-12)
    outside, _ = ansatz.conditional_energy(theta, coarse, jnp.array([5.0, 10.0]))(free)
    assert outside == np.inf


def test_sigmoid_series_with_one_width_is_finite_far_outside_the_centres():
    x = jnp.array([-1e4, -3.0, 0.0, 0.5, 3.0, 1e4])
    weights, centres = jnp.array([0.3, -1.2, 2.0]), (-1.0, 0.2, 1.3)
    series = sigmoid_series(x, weights, centres, (0.4,) * 3)
    expected = sum(w * jax.nn.sigmoid((x - c) / 0.4) for w, c in zip(weights, centres))
    np.testing.assert_allclose(series, expected, rtol=1e-6, atol=1e-7)
    assert series[0] == 0 and series[-1] == pytest.approx(float(jnp.sum(weights)))


@pytest.mark.parametrize("side", [2, 4, 8])
def test_quadratic_features_are_the_papers_9_plus_15s_and_linearly_independent(side):
    ansatz = ScaleAnsatz(side=side, radius=2, wavelet="haar")
    if side > 4:
        assert ansatz.n_quadratic == 9 + 15 * 12

    def features(key):
        coarse_key, free_key = jax.random.split(key)
        return ansatz.features(
            jax.random.normal(coarse_key, (side, side)), jax.random.normal(free_key, (3, side, side))
        )

    samples = jax.vmap(features)(jax.random.split(jax.random.PRNGKey(0), 4 * ansatz.n_params))
    assert np.linalg.matrix_rank(np.asarray(samples, np.float64)) == ansatz.n_quadratic


@pytest.mark.usefixtures("float64")
def test_ln_p_factorises_over_wavelet_scales_with_unit_jacobian():
    """For the Gaussian free field, ln p(phi) = ln p_J(phi_J) + sum_j ln pbar_j(phibar_j | phi_j) exactly, with
    every factor the exact Gaussian marginal or conditional in the wavelet basis (the transform has Jacobian 1)."""
    L, wavelet = 8, "db2"
    n = L * L
    covariance = np.linalg.inv(
        np.asarray(jax.jacfwd(jax.grad(free_field((L, L), M2).energy))(jnp.zeros((L, L)))).reshape(n, n)
    )
    basis = np.eye(n).reshape(n, L, L)
    coarse_basis, detail_basis = pyramid(basis, wavelet, 3)
    phi = np.random.default_rng(0).multivariate_normal(np.zeros(n), covariance).reshape(L, L)
    coarse, details = pyramid(phi, wavelet, 3)

    def gaussian_logpdf(x, cov):
        return -0.5 * (x @ np.linalg.solve(cov, x) + np.linalg.slogdet(2 * np.pi * cov)[1])

    total = gaussian_logpdf(
        np.asarray(coarse[3]).ravel(), (lambda g: g @ covariance @ g.T)(np.asarray(coarse_basis[3]).reshape(n, -1).T)
    )
    for j in range(1, 4):
        # the joint (phi_j, phibar_j) is the orthogonal image of phi_{j-1}: condition the details on the coarse field
        g = np.concatenate(
            [np.asarray(coarse_basis[j]).reshape(n, -1), np.asarray(detail_basis[j - 1]).reshape(n, -1)], axis=1
        ).T
        joint = g @ covariance @ g.T
        m = np.asarray(coarse[j]).size
        c, d = np.asarray(coarse[j]).ravel(), np.asarray(details[j - 1]).ravel()
        gain = joint[m:, :m] @ np.linalg.inv(joint[:m, :m])
        total += gaussian_logpdf(d - gain @ c, joint[m:, m:] - gain @ joint[:m, m:])
    exact = -free_field((L, L), M2).energy(jnp.asarray(phi)) - 0.5 * np.linalg.slogdet(2 * np.pi * covariance)[1]
    np.testing.assert_allclose(total, exact, rtol=1e-10)


def free_field_conditional(L: int, n: int, seed: int = 0) -> tuple:
    """The finest Haar conditional of ``n`` free fields on ``L x L`` in the data's units: its radius-1 ansatz (where
    the exact conditional lies), the coarse fields, the details, and the exact parameters."""
    fields = free_field_data(L, n, seed)
    unit = float(np.sqrt(np.mean(fields.astype(np.float64) ** 2)))
    coarse, details = pyramid(fields / unit, "haar", 1)
    ansatz = ScaleAnsatz(side=L // 2, radius=1, wavelet="haar")
    exact_theta, residual = exact_quadratic_theta(ansatz, free_field((L, L), M2).energy, unit)
    assert residual < 1e-6  # the exact conditional is in the family
    return ansatz, coarse[1], details[0], exact_theta


def scale_at(ansatz, theta, free) -> ScaleFit:
    """A fitted scale with parameters ``theta``, as score matching would leave it."""
    return ScaleFit(ansatz, theta, np.asarray(jnp.std(free, axis=(0, 2, 3))), (-50.0, 50.0), {"time_s": 0.0})


def test_score_matching_and_maximum_likelihood_recover_the_exact_free_field_conditional():
    """Haar details of a nearest-neighbour field couple only to adjacent blocks, so the finest exact conditional
    lies in the radius-1 ansatz; its parameters are recovered within the sandwich standard errors."""
    ansatz, coarse, free, exact_theta = free_field_conditional(16, 4000)
    theta, report = score_matching(ansatz, coarse, free)
    errors = score_matching_errors(ansatz, theta, coarse, free)
    z = (theta - exact_theta) / errors
    assert np.max(np.abs(z)) < family_threshold(ansatz.n_params), (np.max(np.abs(z)), report)
    assert report["condition"] < 100

    # maximum likelihood from a start 50 % off comes back to the exact parameters (ML is at least as
    # efficient as score matching, so the score-matching errors bound its statistical error)
    start = scale_at(ansatz, 1.5 * exact_theta, free)
    refined = refine_maximum_likelihood(jax.random.PRNGKey(0), start, coarse, free, FitSettings(), 8, len(free))
    assert refined.report["ml_mismatch"][0] > 100 * min(refined.report["ml_mismatch"])
    assert refined.report["ml_taken_back"] == []  # a window long enough: every full Newton step is kept
    z = (refined.theta - exact_theta) / errors
    assert np.max(np.abs(z)) < family_threshold(ansatz.n_params), np.max(np.abs(z))


def test_the_mismatch_at_the_exact_conditional_is_its_noise_floor():
    """At the exact parameters the model's and the data's moments differ by noise alone, so the mismatch
    ``d^T F^{-1} d`` averages its noise floor ``tr(F^{-1} Sigma_d)`` (``mismatch_noise``): over independent data
    sets their ratio is 1 within its scatter."""
    ratios = []
    for seed in range(8):
        ansatz, coarse, free, exact_theta = free_field_conditional(8, 500, seed)
        start = scale_at(ansatz, exact_theta, free)
        refined = refine_maximum_likelihood(jax.random.PRNGKey(seed), start, coarse, free, FitSettings(), 1, len(free))
        ratios.append(refined.report["ml_mismatch"][0] / refined.report["ml_mismatch_noise"][0])
    t = (np.mean(ratios) - 1) / (np.std(ratios, ddof=1) / np.sqrt(len(ratios)))
    assert abs(t) < student_threshold(1, len(ratios) - 1), ratios


def test_guarded_newton_steps_converge_where_a_short_window_makes_them_overshoot():
    """Four recorded states per chain, two steps apart, measure a small part of ``Cov(U | c)`` along the slow
    directions, so a full Newton step overshoots by several times and the mismatch grows from step to step (here
    the first step raises it about 45-fold); the guard takes such a point back and halves the steps, and the
    refinement still comes from a start 50 % off to the exact parameters."""
    ansatz, coarse, free, exact_theta = free_field_conditional(16, 4000)
    start = scale_at(ansatz, 1.5 * exact_theta, free)
    short = FitSettings(ml_steps=8, ml_record_every=2)
    refined = refine_maximum_likelihood(jax.random.PRNGKey(0), start, coarse, free, short, 8, len(free))
    assert refined.report["ml_taken_back"], refined.report["ml_mismatch"]
    errors = score_matching_errors(ansatz, score_matching(ansatz, coarse, free)[0], coarse, free)
    z = (refined.theta - exact_theta) / errors
    assert np.max(np.abs(z)) < family_threshold(ansatz.n_params), (np.max(np.abs(z)), refined.report["ml_mismatch"])


@pytest.mark.parametrize("leapfrog", [1, 4])
def test_generated_free_field_has_the_exact_spectrum(leapfrog):
    L = 8
    data = free_field_data(L, 4000)
    model = fit_wirg(data, FitSettings(wavelet="db2", radius=2, potentials=0), progress=False)
    dt = generate(
        model,
        free_field((L, L), M2),
        GeneratorSettings(samples=2000, warmup=200, steps=60, leapfrog=leapfrog),
        seed=1,
        data=data,
        progress=False,
    )
    records = json.loads(dt.attrs["scales"])
    assert all(abs(r["acceptance"] - target_acceptance(leapfrog)) < 0.12 for r in records)
    assert all(r["tau_energy"] < 0.2 * 260 for r in records)  # every chain ran many autocorrelation times
    assert dt.attrs["gradient_evaluations"] == 2000 * 260 * leapfrog
    generated = np.asarray(momentum_power(dt.posterior.phi.values.reshape(-1, L, L)))
    observed = np.asarray(momentum_power(dt.observed_data.phi.values))
    se = np.sqrt(generated.var(0) / len(generated) + observed.var(0) / len(observed))  # the fit sees only the data
    z = (generated.mean(0) - free_field_propagator((L, L), M2)) / se
    assert np.max(np.abs(z)) < family_threshold(L * L // 2 + 2), np.max(np.abs(z))


def test_fit_resumes_from_saved_scales_and_refuses_other_data(tmp_path):
    data = free_field_data(8, 400)
    settings = FitSettings(
        wavelet="haar",
        radius=(1, 1, 1, 0),
        potentials=4,
        ml_iterations=2,
        ml_max_side=1,
        ml_steps=10,
        ml_fields=300,
        ml_record_every=5,
    )
    first = fit_wirg(data, settings, checkpoint_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "free_energy_1.npz",
        "free_energy_2.npz",
        "free_energy_3.npz",
        "scale_1.npz",
        "scale_2.npz",
        "scale_3.npz",
        "scale_top.npz",
    ]
    (tmp_path / "free_energy_2.npz").unlink()  # as if interrupted after the second conditional was saved
    again = fit_wirg(data, settings, checkpoint_dir=tmp_path, progress=False)
    for a, b in zip(first.scales + first.free_energies, again.scales + again.free_energies, strict=True):
        np.testing.assert_array_equal(a.theta, b.theta)
        assert a.ansatz.centres == b.ansatz.centres
    for a, b in zip(first.scales, again.scales, strict=True):  # the generator's starting point is saved too
        np.testing.assert_array_equal(a.start.noise, b.start.noise)
    assert [s.report["iterations"] for s in again.scales] == [3, 3, 1, 1]  # coarsest first: ML on the scales of side 1
    with pytest.raises(InputError, match="other data or settings"):
        fit_wirg(data * 1.5, settings, checkpoint_dir=tmp_path, progress=False)


def test_generator_resumes_bit_exactly_after_an_interruption(tmp_path, monkeypatch):
    L = 8
    data = free_field_data(L, 400)
    model = fit_wirg(data, FitSettings(wavelet="haar", radius=1, potentials=4), progress=False)
    h, settings = free_field((L, L), M2), GeneratorSettings(samples=64, warmup=20, steps=10)
    whole = generate(model, h, settings, seed=3, progress=False)
    path, save, calls = tmp_path / "generate.npz", loop._save, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        save(*args)

    monkeypatch.setattr(loop, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(model, h, settings, seed=3, checkpoint=path, progress=False)
    monkeypatch.setattr(loop, "_save", save)
    resumed = generate(model, h, settings, seed=3, checkpoint=path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.posterior.phi.values, whole.posterior.phi.values)


def test_conditioning_on_a_coarse_field_keeps_it_and_draws_the_details():
    """Super-resolution: given phi_1 of a field, the generated fields have exactly that coarse part and
    details that differ from field to field."""
    L = 16
    data = free_field_data(L, 2000)
    model = fit_wirg(data, FitSettings(radius=1, potentials=0), progress=False)
    coarse, details = pyramid(data[:1], model.wavelet, 1)
    dt = generate(
        model,
        free_field((L, L), M2),
        GeneratorSettings(samples=1000, warmup=100, steps=20),
        coarse=coarse[1][0],
        seed=4,
        progress=False,
    )
    phi = dt.posterior.phi.values.reshape(-1, L, L)
    regenerated, new_details = pyramid(phi, model.wavelet, 1)
    np.testing.assert_allclose(regenerated[1], np.broadcast_to(coarse[1], regenerated[1].shape), atol=1e-5)
    assert float(jnp.std(new_details[0][:, :, 0, 0])) > 0.1  # the details are drawn, not copied
    unknown_energy = generate(
        model, None, GeneratorSettings(samples=1000, warmup=100, steps=20), coarse=coarse[1][0], seed=4, progress=False
    )  # fields without a Hamiltonian: the same draws, no energy
    np.testing.assert_array_equal(unknown_energy.posterior.phi.values, dt.posterior.phi.values)
    assert "m2" in unknown_energy.posterior and "e" not in unknown_energy.posterior
    with pytest.raises(InputError, match="coarse"):
        generate(model, free_field((L, L), M2), GeneratorSettings(samples=8), coarse=np.zeros((3, 3)), progress=False)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: fit_wirg(np.zeros((4, 12, 12)) + 1.0, progress=False), "lattice"),
        (lambda: fit_wirg(free_field_data(8, 10), FitSettings(radius=(1, 2)), progress=False), "fit.radius"),
        (lambda: fit_wirg(free_field_data(8, 10), FitSettings(levels=4), progress=False), "fit.levels"),
        (lambda: FitSettings(wavelet="morlet"), "wavelet"),
        (lambda: FitSettings(ml_steps=10, ml_record_every=4), "fit.ml_steps"),
        (
            lambda: fit_wirg(free_field_data(8, 10), FitSettings(ml_fields=(8, 8, 1, 8)), progress=False),
            "fit.ml_fields",
        ),
        (lambda: GeneratorSettings(samples=10, groups=4), "generator.samples"),
        (
            lambda: fit_wirg(free_field_data(8, 10), FitSettings(pair_potentials=(2, 2, 2, 2)), progress=False),
            "fit.pair_potentials",
        ),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InputError, match=field):
        call()


def test_the_gaussian_start_is_the_exact_conditional_of_a_gaussian_field():
    """Fitted on free-field data, details drawn from it for fresh coarse fields rebuild fields whose every fidelity
    statistic agrees with an independent exact ensemble: for a Gaussian field the start is the conditional itself."""
    L = 16
    coarse, details = pyramid(free_field_data(L, 4000, seed=1), "haar", 1)
    start = GaussianStart.fit(coarse[1], details[0])
    fresh, _ = pyramid(free_field_data(L, 2000, seed=2), "haar", 1)
    drawn = start.draw(jax.random.key(0), fresh[1])
    assert np.mean(np.asarray(drawn) ** 2) == pytest.approx(np.mean(np.asarray(details[0]) ** 2), rel=0.03)
    rebuilt = idwt2(fresh[1], drawn, "haar")
    h = free_field(L, m2=M2)
    table = field_fidelity(make_datatree(h, rebuilt[None]), make_datatree(h, free_field_data(L, 2000, seed=3)[None]))
    assert table["z"].abs().max() < family_threshold(len(table))


@pytest.mark.parametrize("leapfrog", [1, 5])
def test_a_chain_started_on_a_steep_wall_comes_down_and_samples_exactly(leapfrog):
    """E = sum v^4: from v = 6 plain MALA's drift (about 100 noise widths) throws every proposal away and the chain
    never moves; the truncated drift (clipped kicks) walks it down, and the last states have
    <v^2> = Gamma(3/4) / Gamma(1/4), with one leapfrog step (MALA) or several (HMC)."""
    from scipy.special import gamma

    value_and_grad = jax.value_and_grad(lambda v: jnp.sum(v**4))
    chains, steps = 4000, 400

    def chain(key):
        state = chain_init(value_and_grad, jnp.full((1,), 6.0))
        state, _ = jax.lax.scan(
            lambda s, k: hmc_step(k, s, value_and_grad, 0.5, jnp.ones(1), leapfrog),
            state,
            jax.random.split(key, steps),
        )
        return state.position[0]

    v = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(0), chains)), np.float64)
    exact = gamma(0.75) / gamma(0.25)
    z = (np.mean(v**2) - exact) / (np.std(v**2) / np.sqrt(chains))
    assert np.max(np.abs(v)) < 3 and abs(z) < family_threshold(1)


def test_one_leapfrog_step_is_the_truncated_mala_step_with_the_same_draws():
    """MALTA (Roberts & Tweedie 1996) written out: v' = v - clip((eps^2/2) s^2 g, +-2 eps s) + eps s xi, accepted
    with exp(E - E') q(v | v') / q(v' | v).  ``hmc_step`` with one leapfrog step makes the same move and decision
    from the same key, on a target whose wall clips some coordinates' drift."""
    value_and_grad = jax.value_and_grad(lambda v: jnp.sum(v**4 + 0.5 * v**2))
    spread, eps = jnp.array([0.5, 1.0, 2.0, 1.0]), 0.7
    position = jnp.array([0.3, -1.2, 2.5, 0.1])
    state = chain_init(value_and_grad, position)
    for seed in range(20):
        key = jax.random.key(seed)
        noise_key, accept_key = jax.random.split(key)
        noise = eps * spread

        def mean(v, g):
            return v - jnp.clip(0.5 * noise**2 * g, -2 * noise, 2 * noise)

        proposal = mean(position, state.grad) + noise * jax.random.normal(noise_key, position.shape)
        energy, grad = value_and_grad(proposal)
        log_ratio = (
            state.energy
            - energy
            - jnp.sum((position - mean(proposal, grad)) ** 2 / (2 * noise**2))
            + jnp.sum((proposal - mean(position, state.grad)) ** 2 / (2 * noise**2))
        )
        accept = jnp.log(jax.random.uniform(accept_key)) < log_ratio
        moved, accepted = hmc_step(key, state, value_and_grad, eps, spread)
        assert bool(accepted) == bool(accept)
        np.testing.assert_allclose(moved.position, proposal if accept else position, rtol=1e-5, atol=1e-6)


def test_a_mirrored_fit_refined_by_maximum_likelihood_stays_even():
    """Maximum likelihood's Monte Carlo moments are symmetric only on average; with mirror images the fitted
    energies must be even, E(-phi_j, -phibar_j) = E(phi_j, phibar_j), or the two signs are not equally likely.
    With pair potentials too, on every conditional."""
    settings = FitSettings(
        wavelet="haar",
        radius=1,
        potentials=4,
        pair_potentials=3,
        mirror_images=True,
        ml_iterations=2,
        ml_max_side=2,
        ml_steps=10,
        ml_fields=300,
        ml_record_every=5,
    )
    model = fit_wirg(free_field_data(8, 400) + 0.3, settings, progress=False)  # the shift makes the data skewed
    rng = np.random.default_rng(0)
    for scale in model.scales:
        assert scale.report["iterations"] == (3 if scale.ansatz.side <= 2 else 1)
        a = scale.ansatz
        takes_pairs = not a.coarsest and a.side == 2  # not the finest conditional (4 x 4), the 1 x 1 one or the top
        assert len(a.sum_centres) == len(a.difference_centres) == (3 if takes_pairs else 0)
        coarse = rng.normal(size=(a.side, a.side)) * (0 if a.coarsest else 1)
        free = rng.normal(size=a.free_shape)
        energy = lambda c, f: float(a.energy(jnp.asarray(scale.theta), jnp.asarray(c), jnp.asarray(f)))
        assert energy(-coarse, -free) == pytest.approx(energy(coarse, free), rel=1e-5, abs=1e-5)
