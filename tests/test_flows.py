"""NeuralRG bijector and guide: exact log-dets, round trips, symmetry, the NumPyro bridge."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.reparam import NeuTraReparam

from rgppl.errors import InputError
from rgppl.flows import AutoNeuralRG, FlowSettings, NeuralRGFlow, grown, level_sources, scale_index
from rgppl.flows.guide import Z2Symmetrized, sample_with_log_prob
from rgppl.flows.spline import parameter_count, rational_quadratic
from rgppl.hamiltonians import free_field, ising_dual
from rgppl.infer.training import FlowObjective, SVISettings, train_flow
from rgppl.lattice import Lattice
from tests.stats import family_threshold

ARCHITECTURES = [
    FlowSettings(),
    FlowSettings(kernel=1, knots=0, couplings=4, circulant=False),
    FlowSettings(levels=1, hidden=1, width=8),
    FlowSettings(knots=5, couplings=3, kernel=5),
    FlowSettings(knots=4, couplings=2, fold=True),
]
IDS = ["default", "affine-kernel1 (Li & Wang)", "one-level", "spline-kernel5", "folded"]


def perturbed_flow(settings, side=4, seed=0, size=0.03):
    """A flow whose every parameter (zero-initialised heads included) is moved off its initial value.

    ``size`` is small enough that the deep kernel-3 flows stay well conditioned in float64.
    """
    flow = NeuralRGFlow(jax.random.PRNGKey(seed), Lattice(side), settings)
    params, static = eqx.partition(flow, eqx.is_array)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [leaf + size * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), static)


@pytest.mark.usefixtures("float64")
def test_spline_is_monotone_inverts_and_has_the_autodiff_slope_inside_and_outside_its_interval():
    values = jnp.linspace(-3.0, 3.0, 601)  # the interval is [-2, 2]: both identity tails are included
    raw = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (parameter_count(6), 601))  # parameter axis first
    mapped, log_slope = rational_quadratic(values, raw, 2.0)
    slope = jax.vmap(jax.grad(lambda v, r: rational_quadratic(v, r, 2.0)[0]), in_axes=(0, 1))(values, raw)
    np.testing.assert_allclose(log_slope, jnp.log(slope), atol=1e-10)
    back, inverse_log_slope = rational_quadratic(mapped, raw, 2.0, inverse=True)
    np.testing.assert_allclose(back, values, atol=1e-10)
    np.testing.assert_allclose(inverse_log_slope, -log_slope, atol=1e-10)
    shared = jnp.broadcast_to(raw[:, :1], raw.shape)
    assert jnp.all(jnp.diff(rational_quadratic(values, shared, 2.0)[0]) > 0)
    np.testing.assert_allclose(rational_quadratic(values, jnp.zeros_like(raw), 2.0)[0], values, atol=1e-12)


def set_up(guide):
    """Run the guide once (under a seed), as SVI does, so it inspects the model."""
    handlers.seed(guide, rng_seed=0)()
    return guide


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("settings", ARCHITECTURES, ids=IDS)
def test_log_det_equals_autodiff_jacobian_in_both_directions_and_round_trips(settings):
    flow = perturbed_flow(settings)
    z = jax.random.normal(jax.random.PRNGKey(5), (4, 4))
    x, log_det = flow.transform_and_log_det(z)
    jacobian = jax.jacobian(lambda v: flow.transform_and_log_det(v.reshape(4, 4))[0].ravel())(z.ravel())
    assert abs(log_det - jnp.linalg.slogdet(jacobian)[1]) < 1e-9
    z_back, inverse_log_det = flow.inverse_and_log_det(x)
    inverse_jacobian = jax.jacobian(lambda v: flow.inverse_and_log_det(v.reshape(4, 4))[0].ravel())(x.ravel())
    assert abs(inverse_log_det - jnp.linalg.slogdet(inverse_jacobian)[1]) < 1e-9
    assert jnp.abs(z_back - z).max() < 1e-10
    assert abs(log_det + inverse_log_det) < 1e-10
    assert jnp.abs(x - z).max() > 0.1  # the perturbed flow is far from the identity


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("settings", ARCHITECTURES[1:], ids=IDS[1:])
def test_a_batch_of_fields_maps_as_each_field_alone(settings):
    """The flow runs on a whole batch at once (batch axis last inside); each field must not see the others."""
    flow = perturbed_flow(settings)
    forward = jax.jit(lambda v: flow.transform_and_log_det(v))
    inverse = jax.jit(lambda v: flow.inverse_and_log_det(v))
    z = jax.random.normal(jax.random.PRNGKey(6), (2, 3, 4, 4))
    x, log_det = forward(z)
    z_back, inverse_log_det = inverse(x)
    assert x.shape == z.shape and log_det.shape == inverse_log_det.shape == (2, 3)
    for i, j in np.ndindex(2, 3):  # equal up to float64 rounding
        alone, alone_log_det = forward(z[i, j])
        np.testing.assert_allclose(x[i, j], alone, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(log_det[i, j], alone_log_det, rtol=1e-12)
        np.testing.assert_allclose(z_back[i, j], inverse(alone)[0], rtol=1e-10, atol=1e-10)
    assert jnp.abs(log_det + inverse_log_det).max() < 1e-10


@pytest.mark.usefixtures("float64")
def test_a_fresh_flow_is_the_identity():
    flow = NeuralRGFlow(jax.random.PRNGKey(0), Lattice(8), FlowSettings(circulant=True))
    z = jax.random.normal(jax.random.PRNGKey(1), (8, 8))
    x, log_det = flow.transform_and_log_det(z)
    assert jnp.abs(x - z).max() < 1e-12 and abs(log_det) < 1e-12


def test_scale_index_counts_three_quarters_per_level():
    index = scale_index(16, 4)
    assert [int((index == level).sum()) for level in range(5)] == [192, 48, 12, 3, 1]
    assert int((scale_index(16, 2) == 2).sum()) == 16  # a 4 x 4 top grid


@pytest.mark.usefixtures("float64")
def test_the_hierarchy_is_local_per_level():
    """A latent variable of the finest scale only moves fields within the reach of one level's blocks."""
    flow = perturbed_flow(FlowSettings(levels=1, kernel=1, circulant=False), side=8)
    z = jax.random.normal(jax.random.PRNGKey(2), (8, 8))
    jacobian = jax.jacobian(lambda v: flow.transform_and_log_det(v)[0])(z)  # [x, y, zx, zy]
    reach = np.argwhere(np.abs(np.asarray(jacobian[:, :, 1, 1])) > 0)
    # its decimator block {0,1}^2, then the shifted disentangler blocks touching it: rows/columns 7, 0, 1, 2
    assert set(reach[:, 0]) == set(reach[:, 1]) == {7, 0, 1, 2} and len(reach) == 16


def test_a_grown_flow_copies_each_level_and_interpolates_the_circulant():
    """Lower levels by index, the top by the top; the log-eigenvalues agree where the momenta coincide."""
    assert level_sources(2, 3) == [0, 0, 1] and level_sources(3, 4) == [0, 1, 1, 2] and level_sources(3, 3) == [0, 1, 2]
    assert level_sources(4, 5) == [0, 1, 2, 2, 3]
    settings = FlowSettings(circulant=True, couplings=2, width=4, knots=4)
    small = perturbed_flow(settings, side=8, size=0.3)
    large = grown(small, Lattice(16), settings)
    for level, source in enumerate(level_sources(3, 4)):
        for copied, original in zip(jax.tree.leaves(large.sublayers[level]), jax.tree.leaves(small.sublayers[source])):
            np.testing.assert_array_equal(copied, original)
    np.testing.assert_array_equal(large.log_scales, small.log_scales[np.array([0, 1, 1, 2, 3])])
    np.testing.assert_allclose(large.log_spectrum[::2, ::2], small.log_spectrum, atol=1e-7)
    between = 0.5 * (small.log_spectrum + jnp.roll(small.log_spectrum, -1, axis=0))
    np.testing.assert_allclose(large.log_spectrum[1::2, ::2], between, atol=1e-7)
    z = jax.random.normal(jax.random.PRNGKey(1), (8, 8))
    np.testing.assert_array_equal(
        grown(small, Lattice(8), settings).transform_and_log_det(z)[0], small.transform_and_log_det(z)[0]
    )
    with pytest.raises(InputError, match="lattice.shape"):
        grown(small, Lattice(4), FlowSettings(circulant=True, couplings=2, width=4, knots=4))
    for other in (
        FlowSettings(circulant=True, couplings=2, width=4),
        FlowSettings(circulant=True, couplings=2, width=8, knots=4),
    ):
        with pytest.raises(InputError, match="the settings the flow was built with"):
            grown(small, Lattice(16), other)


def test_guide_symmetrised_density_is_even_and_normalised_like_q():
    h = ising_dual(4)
    guide = AutoNeuralRG(h.model, FlowSettings(width=8, couplings=2, kernel=1, knots=0))
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    svi = SVI(h.model, guide, Adam(1e-2), Trace_ELBO(num_particles=8, vectorize_particles=True))
    state = svi.init(jax.random.PRNGKey(0))
    update = jax.jit(svi.update)
    for _ in range(20):
        state, _ = update(state)
    params = svi.get_params(state)
    q_sym = guide.get_posterior(params)
    x = q_sym.sample(jax.random.PRNGKey(1), (16,))
    assert jnp.abs(q_sym.log_prob(x) - q_sym.log_prob(-x)).max() < 1e-4
    q = q_sym.flow
    assert jnp.abs(q.log_prob(x) - q.log_prob(-x)).max() > 1e-2  # the trained q itself is not even
    assert jnp.all(q_sym.log_prob(x) >= jnp.minimum(q.log_prob(x), q.log_prob(-x)) - 1e-4)
    drawn, intermediates = q_sym.sample_with_intermediates(jax.random.PRNGKey(2), (16,))
    assert (
        jnp.abs(q_sym.log_prob(drawn, intermediates) - q_sym.log_prob(drawn)).max() < 1e-4
    )  # one inverse pass, same value


@pytest.mark.usefixtures("float64")
def test_a_folded_flow_maps_onto_positive_magnetisation_and_its_q_sym_is_the_even_mixture():
    """The fold's image is m > 0; q vanishes elsewhere; q_sym(x) = q(sign(m) x)/2 is the mixture [q(x) + q(-x)]/2."""
    h = ising_dual(4)
    settings = FlowSettings(knots=4, couplings=2, kernel=1, fold=True)
    guide = set_up(AutoNeuralRG(h.model, settings))
    params = {guide.param_name: eqx.partition(perturbed_flow(settings), eqx.is_array)[0]}
    q_sym = guide.get_posterior(params)
    z = 2.0 * jax.random.normal(jax.random.PRNGKey(3), (256, 16))
    x = guide.get_transform(params)(z)
    assert jnp.all(x.mean(-1) > 0) and jnp.any(z.mean(-1) < 0)
    q = q_sym.flow
    assert jnp.all(q.log_prob(-x) == -jnp.inf) and jnp.all(jnp.isfinite(q.log_prob(x)))
    mixture = jnp.logaddexp(q.log_prob(x), q.log_prob(-x)) - jnp.log(2.0)
    np.testing.assert_allclose(q_sym.log_prob(x), mixture, rtol=1e-12)
    np.testing.assert_allclose(q_sym.log_prob(-x), mixture, rtol=1e-12)
    drawn, intermediates = q_sym.sample_with_intermediates(jax.random.PRNGKey(4), (64,))
    np.testing.assert_allclose(q_sym.log_prob(drawn, intermediates), q_sym.log_prob(drawn), rtol=1e-10)
    gradient = jax.grad(lambda p: guide.get_posterior(p).log_prob(-x).sum())(params)
    assert all(jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(gradient))
    with pytest.raises(InputError, match="flow.symmetric"):
        FlowSettings(fold=True, symmetric=False)
    with pytest.raises(InputError, match="svi.train_q_sym"):  # q covers m > 0 only: SVI must train q_sym
        train_flow(h, settings, SVISettings(steps=50, report_every=50, checkpoint_every=50), progress=False)


@pytest.mark.usefixtures("float64")
def test_the_normal_fold_is_the_gaussian_softplus_and_inverts_far_into_its_tail():
    """m -> s G(m/s), G(t) = t Phi(t) + phi(t), ln|det| = ln Phi(m/s), against scipy; inverse down to G ~ 1e-7."""
    from scipy.stats import norm

    fresh = NeuralRGFlow(
        jax.random.PRNGKey(0), Lattice(4), FlowSettings(fold=True, knots=0, circulant=False)
    )  # identity but the fold
    flow = eqx.tree_at(lambda f: f.fold_log_scale, fresh, jnp.asarray(np.log(0.3)))
    t = np.array([-5.0, -2.0, -0.1, 0.0, 0.4, 3.0, 12.0])
    z = jax.random.normal(jax.random.PRNGKey(1), (7, 4, 4))
    z = z - z.mean(axis=(-2, -1), keepdims=True) + 0.3 * t[:, None, None]
    x, log_det = flow.transform_and_log_det(z)
    np.testing.assert_allclose(x.mean(axis=(-2, -1)), 0.3 * (t * norm.cdf(t) + norm.pdf(t)), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(log_det, norm.logcdf(t), rtol=1e-9)
    np.testing.assert_allclose(
        x - x.mean(axis=(-2, -1), keepdims=True), z - z.mean(axis=(-2, -1), keepdims=True), atol=1e-12
    )
    z_back, inverse_log_det = flow.inverse_and_log_det(x)
    np.testing.assert_allclose(z_back, z, atol=1e-8)  # the mean of x holds G(-5) ~ 1e-7 to ~1e-16
    np.testing.assert_allclose(inverse_log_det, -log_det, rtol=1e-9)
    with pytest.raises(InputError, match="flow.fold"):
        FlowSettings(fold="normal")


def test_a_folded_flows_path_gradient_keeps_the_draws_whose_mean_float32_cannot_hold():
    """With s = 0.01 the fold puts many draws' means below float32's resolution, where the inverse pass reads
    them back hundreds of nats off (or -inf): the path objective takes their ln q from the generative pass,
    so its F_q is the total-gradient objective's, and its gradient is finite."""
    h = ising_dual(4)
    settings = FlowSettings(knots=4, couplings=2, kernel=1, fold=True)
    guide = set_up(AutoNeuralRG(h.model, settings))
    flow = eqx.tree_at(lambda f: f.fold_log_scale, perturbed_flow(settings), jnp.asarray(np.log(0.01)))
    params = {guide.param_name: eqx.partition(flow, eqx.is_array)[0]}
    key, n = jax.random.PRNGKey(5), 512
    posterior = guide.get_posterior(params)
    latent, log_q = sample_with_log_prob(posterior, jax.random.split(key)[0], n)  # the objective's draws
    assert not jnp.all(jnp.abs(posterior.log_prob(latent) - log_q) < 1.0)  # the inverse cannot reproduce all
    path = FlowObjective(1.0, n, path_gradient=True, train_q_sym=True)
    total = FlowObjective(1.0, n, train_q_sym=True)
    f_q = float(path.loss(key, params, h.model, guide))
    assert np.isfinite(f_q) and f_q == pytest.approx(float(total.loss(key, params, h.model, guide)), rel=1e-6)
    gradient = jax.grad(lambda p: path.loss(key, p, h.model, guide))(params)
    assert all(jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(gradient))


def test_svi_can_train_the_plain_flow_while_the_guide_reports_the_symmetrised_one():
    h = ising_dual(4)
    guide = set_up(AutoNeuralRG(h.model, FlowSettings(width=8, couplings=1, levels=1, kernel=1, knots=0)))
    trace = handlers.trace(handlers.seed(guide, rng_seed=1)).get_trace()
    params = {name: site["value"] for name, site in trace.items() if site["type"] == "param"}
    reported = [site["fn"] for site in trace.values() if site["type"] == "sample"][0]
    assert isinstance(reported, Z2Symmetrized) and isinstance(guide.get_posterior(params), Z2Symmetrized)
    plain, symmetrised = (
        FlowObjective(1.0, 8, train_q_sym=q_sym).trained_distribution(guide)(params) for q_sym in (False, True)
    )
    assert type(plain).__name__ == "NeuralRGDistribution"  # SVI's draws by default: q alone, one pass
    assert isinstance(symmetrised, Z2Symmetrized)


def test_the_batched_free_energy_objective_estimates_what_trace_elbo_does():
    """FlowObjective draws its particles as one batch through the flow, Trace_ELBO vmaps them one at a time:
    the same F_q = E_q[ln q + U], so two independent estimates agree within their standard error."""
    from numpyro.infer import Trace_ELBO

    h = ising_dual(4)
    guide = set_up(AutoNeuralRG(h.model, FlowSettings(width=8, couplings=2, kernel=1, knots=0, symmetric=False)))
    params = {
        guide.param_name: eqx.partition(
            perturbed_flow(FlowSettings(width=8, couplings=2, kernel=1, knots=0), size=0.1), eqx.is_array
        )[0]
    }
    n = 4096
    batched = FlowObjective(1.0, n).loss(jax.random.PRNGKey(1), params, h.model, guide)
    stock = Trace_ELBO(num_particles=n, vectorize_particles=True).loss(jax.random.PRNGKey(2), params, h.model, guide)
    key_reverse = jax.random.split(jax.random.PRNGKey(1))[0]  # FlowObjective's key for its reverse-KL draws
    latent, log_q = sample_with_log_prob(guide.get_posterior(params), key_reverse, n)
    per_draw = log_q + guide.model_potential(latent)
    assert abs(per_draw.mean() - batched) < 1e-4 * abs(batched)  # the objective is this estimator
    np.testing.assert_allclose(guide.model_potential(latent), h.energy(latent.reshape(n, 4, 4)), rtol=1e-5)
    assert abs(batched - stock) < family_threshold(1) * np.sqrt(2 / n) * per_draw.std()


def _objective_gradients(guide, params, model, path_gradient: bool, keys, batch: int):
    """The gradient of FlowObjective's F_q estimate, one per key: a pytree of arrays with a leading key axis."""
    loss = FlowObjective(1.0, batch, path_gradient=path_gradient).loss
    return jax.vmap(lambda key: jax.grad(lambda p: loss(key, p, model, guide))(params))(keys)


def test_path_gradient_vanishes_at_the_exact_flow_and_agrees_with_the_total_gradient_elsewhere():
    """A circulant with eigenvalues lambda_k^(-1/2) makes q the free field itself: then ln q + E is the constant
    -ln Z for every draw, so every path gradient is zero while the total gradient keeps the score's noise.
    Away from p the two estimate the same gradient: three random projections of it agree within their errors."""
    from rgppl.exact import free_field_spectrum

    h = free_field(4, m2=0.5)
    settings = FlowSettings(width=4, couplings=1, kernel=1, knots=0)
    guide = set_up(AutoNeuralRG(h.model, settings))
    exact = NeuralRGFlow(jax.random.PRNGKey(0), Lattice(4), settings)
    exact = eqx.tree_at(lambda f: f.log_spectrum, exact, -0.5 * jnp.log(jnp.asarray(free_field_spectrum((4, 4), 0.5))))
    params = {guide.param_name: eqx.partition(exact, eqx.is_array)[0]}
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    path = jax.tree.leaves(_objective_gradients(guide, params, h.model, True, keys, 64))
    total = jax.tree.leaves(_objective_gradients(guide, params, h.model, False, keys, 64))
    assert max(float(jnp.abs(g).max()) for g in path if g.size) < 1e-4
    assert max(float(jnp.abs(g).max()) for g in total if g.size) > 1e-2

    h = ising_dual(4)
    guide = set_up(AutoNeuralRG(h.model, settings))
    params = {guide.param_name: eqx.partition(perturbed_flow(settings, size=0.1), eqx.is_array)[0]}
    flat = lambda grads: jnp.concatenate([g.reshape(g.shape[0], -1) for g in jax.tree.leaves(grads)], axis=1)
    replicates = 64
    path = flat(
        _objective_gradients(guide, params, h.model, True, jax.random.split(jax.random.PRNGKey(2), replicates), 64)
    )
    total = flat(
        _objective_gradients(guide, params, h.model, False, jax.random.split(jax.random.PRNGKey(3), replicates), 64)
    )
    directions = jax.random.normal(jax.random.PRNGKey(4), (path.shape[1], 3))
    path, total = np.asarray(path @ directions), np.asarray(total @ directions)
    error = np.sqrt((path.var(axis=0, ddof=1) + total.var(axis=0, ddof=1)) / replicates)
    assert np.all(np.abs(path.mean(axis=0) - total.mean(axis=0)) < family_threshold(3) * error)


def test_neutra_potential_identity():
    """NeuTra's latent log density is -E(g(z)) + ln|det g'(z)| (NumPyro masks the base density)."""
    from numpyro.infer.util import log_density

    h = free_field(4, m2=0.5)
    guide = AutoNeuralRG(h.model, FlowSettings(width=8, couplings=2, kernel=1, knots=0, symmetric=False))
    set_up(guide)
    params = {
        guide.param_name: eqx.partition(
            perturbed_flow(FlowSettings(width=8, couplings=2, kernel=1, knots=0), side=4), eqx.is_array
        )[0]
    }
    neutra = NeuTraReparam(guide, params)
    model = neutra.reparam(h.model)
    z = jax.random.normal(jax.random.PRNGKey(3), (16,))
    latent_name = "auto_shared_latent"
    value, _ = log_density(model, (), {}, {latent_name: z})
    flow = guide.flow(params)
    x, log_det = flow.transform_and_log_det(z.reshape(4, 4))
    expected = -h.energy(x) + log_det
    assert abs(value - expected) < 1e-4 * abs(expected)
    assert jnp.allclose(neutra.transform_sample(z)["phi"], x, atol=1e-6)

    # jitted gradients agree too, where the transform hands NeuTra the log-det of its own generative pass
    def pulled_back(u):
        field, log_det = flow.transform_and_log_det(u.reshape(4, 4))
        return -h.energy(field) + log_det

    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda u: log_density(model, (), {}, {latent_name: u})[0]))(z),
        jax.grad(pulled_back)(z),
        rtol=1e-4,
        atol=1e-4,
    )
    # ... and the log-det it keeps is never the answer for another point
    transform = guide.get_transform(params)
    transform(z)
    other = z[::-1]
    other_x, other_log_det = flow.transform_and_log_det(other.reshape(4, 4))
    assert jnp.allclose(transform.log_abs_det_jacobian(other, other_x.ravel()), other_log_det, atol=1e-5)


def test_guide_rejects_lattices_the_hierarchy_cannot_take():
    with pytest.raises(InputError, match="L a power of 2"):
        set_up(AutoNeuralRG(ising_dual(6).model))
    with pytest.raises(InputError, match="flow.levels"):
        set_up(AutoNeuralRG(ising_dual(4).model, FlowSettings(levels=3)))
    with pytest.raises(InputError, match="flow.kernel"):
        FlowSettings(kernel=2)


def test_the_guides_stock_numpyro_calls_draw_from_q_sym_the_distribution_rgppl_reports():
    """With a folded flow q covers m > 0 only: NumPyro's own ``sample_posterior`` and ``Predictive`` must give
    both signs in equal shares, as q_sym does (binomial error of a half, family threshold over the two calls)."""
    from numpyro.infer import Predictive

    h, n = ising_dual(4), 1024
    settings = FlowSettings(knots=4, couplings=2, kernel=1, fold=True)
    guide = set_up(AutoNeuralRG(h.model, settings))
    params = {guide.param_name: eqx.partition(perturbed_flow(settings), eqx.is_array)[0]}
    drawn = guide.sample_posterior(jax.random.PRNGKey(0), params, sample_shape=(n,))["phi"]
    predicted = Predictive(h.model, guide=guide, params=params, num_samples=n, return_sites=["phi"])(
        jax.random.PRNGKey(1)
    )["phi"]
    q_alone = guide.get_flow_posterior(params).sample(jax.random.PRNGKey(2), (n,))
    assert jnp.all(q_alone.mean(-1) > 0)  # the fold: q itself is one-sided
    for fields in (drawn, predicted):
        positive = float((fields.mean(axis=(-2, -1)) > 0).mean())
        assert abs(positive - 0.5) < family_threshold(2) * 0.5 / np.sqrt(n), positive
