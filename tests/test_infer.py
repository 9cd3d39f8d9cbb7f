"""Flow inference end to end: free energies against exact ln Z, MIS against exact moments, long-run behaviour."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.autoguide import AutoIAFNormal
from scipy.stats import norm

from rgppl import checkpoints
from rgppl.diagnostics import summary
from rgppl.errors import InputError, SamplingDiverged
from rgppl.exact import exact_observables, free_field_spectrum, sample_gaussian_field
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import Custom, Gradient, Hamiltonian, Mass, free_field
from rgppl.infer import (
    MISSettings,
    SVISettings,
    TrainedFlow,
    coverage_by_bin,
    free_energy,
    grow,
    importance_statistics,
    latent_independence,
    latents_by_scale,
    resample_scales,
    run_mis,
    train_flow,
)
from rgppl.lattice import Lattice
from rgppl.loop import checkpointing_every
from tests.stats import family_threshold

FLOW = FlowSettings(width=16, couplings=2, kernel=1, knots=0, symmetric=False)  # small and affine: fast to train
SVI = SVISettings(steps=400, batch=128, learning_rate=1e-2, checkpoint_every=200)


@pytest.fixture(scope="module")
def free_field_flow():
    """A flow trained by reverse KL on a 4 x 4 free field (exactly representable: a circulant linear map)."""
    return train_flow(free_field(4, m2=0.5), FLOW, SVI, seed=0, progress=False)


def test_importance_statistics_of_exact_weights():
    stats = importance_statistics(np.full(1000, -3.0))
    assert (
        stats["F_q"] == 3.0 and stats["ln_z_is"] == pytest.approx(-3.0) and stats["ess_fraction"] == pytest.approx(1.0)
    )


def test_importance_kl_estimate_and_its_error_against_the_exact_kl():
    """q = N(0, 1), p = N(mu, 1): w = mu x - mu^2 / 2, KL(q||p) = mu^2 / 2.  Over 200 repeats, F_q + ln Z_IS
    centres on the exact KL (less its O(1/n) bias), and ``kl_nats_is_err`` is the spread of the estimates."""
    mu, n, repeats = 0.6, 2000, 200
    x = np.random.default_rng(0).standard_normal((repeats, n))
    runs = [importance_statistics(mu * row - mu**2 / 2) for row in x]
    estimates = np.array([s["F_q"] + s["ln_z_is"] for s in runs])
    errors = np.array([s["kl_nats_is_err"] for s in runs])
    assert abs(estimates.mean() - mu**2 / 2) < 4 * estimates.std(ddof=1) / np.sqrt(repeats)
    assert errors.mean() == pytest.approx(estimates.std(ddof=1), rel=0.25)  # chi^2 with 199 dof: 5 % sd


def test_coverage_by_bin_recovers_a_shifted_gaussian_from_draws_of_another():
    """Draws of q = N(0, 1) weighted towards p = N(1/2, 1): p's mass per bin against the exact Phi differences."""
    x = np.random.default_rng(0).standard_normal(200_000)
    edges = np.array([-np.inf, -1.0, 0.0, 1.0, 2.0, np.inf])
    table = coverage_by_bin(x, norm.logpdf(x, 0.5) - norm.logpdf(x), edges)
    exact = np.diff(norm.cdf(edges, 0.5))
    z = (table["p_fraction"] - exact) / table["p_fraction_err"]
    assert np.all(np.abs(z) < family_threshold(len(exact)))
    assert np.allclose(table["q_fraction"], np.diff(norm.cdf(edges)), atol=0.005)
    assert table["p_over_q"].iloc[0] < 1 < table["p_over_q"].iloc[-1]  # p lies to the right of q


def test_coverage_by_bin_names_bad_edges():
    with pytest.raises(InputError, match="edges"):
        coverage_by_bin(np.zeros(3), np.zeros(3), [1.0, 0.0])


def test_trained_flow_free_energy_and_is_ln_z_against_exact(free_field_flow):
    stats = free_energy(free_field_flow, samples=8192, seed=1)
    assert stats["k_hat"] < 0.7  # the importance weights have a finite variance: the error bar is honest
    bound = family_threshold(2)
    assert abs(stats["ln_z_is"] - stats["ln_z_exact"]) < bound * stats["ln_z_is_err"]
    assert stats["F_q"] > -stats["ln_z_exact"] - bound * stats["F_q_err"]  # the variational bound holds
    assert stats["kl_nats"] < 0.05 and stats["ess_fraction"] > 0.9
    assert [m["step"] for m in free_field_flow.monitor] == [200, 400]


def test_independence_sampler_reproduces_exact_free_field_moments(free_field_flow):
    dt = run_mis(free_field_flow, MISSettings(chains=4, warmup=50, samples=2000), seed=2, progress=False)
    exact = exact_observables(free_field_flow.hamiltonian)
    table = summary(dt, ["m2", "abs_m", "e"], exact=exact)
    assert (table["z"].abs() < family_threshold(3)).all(), table
    assert dt.attrs["acceptance"] > 0.8 and dt.posterior["phi"].shape == (4, 2000, 4, 4)
    assert dt.attrs["gradient_evaluations"] == 0


def test_latent_variables_are_decorrelated_and_scales_can_be_resampled(free_field_flow):
    phi = sample_gaussian_field(jax.random.PRNGKey(3), free_field_spectrum((4, 4), 0.5), (4000,))
    table = latent_independence(free_field_flow.flow, phi)
    assert (table["corr_latent"].abs() < 0.5 * table["corr_physical"].abs()).all(), table
    flow = free_field_flow.flow
    before = latents_by_scale(flow, phi[:8])
    after = latents_by_scale(flow, resample_scales(flow, jax.random.PRNGKey(4), phi[:8], [flow.levels]))
    for level in range(flow.levels):
        np.testing.assert_allclose(after[level], before[level], atol=1e-4)
    assert np.abs(after[flow.levels] - before[flow.levels]).min() > 0


def test_a_flow_grown_to_a_larger_lattice_starts_near_its_target_and_trains_on(free_field_flow):
    """The 4 x 4 free-field flow carried to 8 x 8: its KL is a small fraction of a fresh flow's, training
    continues from it, and the training time of both lattices is counted.  A fresh flow is the identity,
    q = N(0, I), whose KL to the free field is ``1/2 sum_k (lambda_k - 1 - ln lambda_k)``."""
    h = free_field(8, m2=0.5)
    start = grow(free_field_flow, h)
    spectrum = free_field_spectrum((8, 8), 0.5)
    fresh_kl = 0.5 * np.sum(spectrum - 1 - np.log(spectrum))
    grown_kl = free_energy(start, samples=4096, seed=1)["kl_nats"]
    assert grown_kl < 0.1 * fresh_kl, (grown_kl, fresh_kl)
    assert start.training_time_s == free_field_flow.training_time_s and len(start.losses) == 0
    trained = train_flow(h, FLOW, replace(SVI, steps=200), init=start, seed=0, progress=False)
    assert free_energy(trained, samples=4096, seed=1)["kl_nats"] < grown_kl
    assert trained.training_time_s > free_field_flow.training_time_s
    with pytest.raises(InputError, match="init"):
        grow(TrainedFlow(h, AutoIAFNormal(h.model), {}, np.zeros(0)), free_field(16, m2=0.5))


def test_forward_mixed_and_pretrained_objectives_learn_from_data(tmp_path):
    h = free_field(4, m2=0.5)
    data = np.asarray(sample_gaussian_field(jax.random.PRNGKey(5), free_field_spectrum((4, 4), 0.5), (4096,)))
    for objective, pretrain_steps, gradient in (
        ("forward", 0, "total"),
        ("mixed", 0, "total"),
        ("reverse", 200, "total"),
        ("reverse", 200, "path"),
    ):
        settings = SVISettings(
            steps=400 - pretrain_steps,
            batch=128,
            learning_rate=1e-2,
            checkpoint_every=200,
            objective=objective,
            pretrain_steps=pretrain_steps,
            gradient=gradient,
        )
        checkpoint = tmp_path / f"{objective}_{gradient}"
        trained = train_flow(h, FLOW, settings, data=data, seed=0, progress=False, checkpoint=checkpoint)
        stats = free_energy(trained, samples=8192, seed=6)
        assert stats["kl_nats"] < 0.2, (objective, stats)
        assert checkpoint.with_name(f"{checkpoint.name}_pretrain").exists() == (pretrain_steps > 0)
    with pytest.raises(InputError, match="data"):
        train_flow(h, FLOW, SVISettings(objective="forward"), progress=False)
    with pytest.raises(InputError, match="data"):
        train_flow(h, FLOW, SVISettings(pretrain_steps=100), progress=False)
    with pytest.raises(InputError, match="svi.gradient.*AutoNeuralRG"):
        train_flow(h, AutoIAFNormal(h.model), SVISettings(gradient="path"), progress=False)


def test_training_resumes_bit_for_bit_and_same_seed_same_result(tmp_path, monkeypatch):
    from rgppl import checkpoints

    h = free_field(4, m2=0.5)
    settings = SVISettings(steps=150, batch=32, checkpoint_every=50)
    whole = train_flow(h, FLOW, settings, seed=7, progress=False)
    again = train_flow(h, FLOW, settings, seed=7, progress=False)
    np.testing.assert_array_equal(whole.losses, again.losses)

    save, calls = checkpoints.save, []

    def interrupted_save(*args):  # Ctrl-C arrives while the second checkpoint is due
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        save(*args)

    path = tmp_path / "svi"
    monkeypatch.setattr(checkpoints, "save", interrupted_save)
    with checkpointing_every(0), pytest.raises(KeyboardInterrupt):  # a checkpoint every 50 steps
        train_flow(h, FLOW, settings, seed=7, checkpoint=path, progress=False)
    monkeypatch.setattr(checkpoints, "save", save)
    saved_less_often = replace(settings, checkpoint_every=100)  # when it saves is not part of the run
    resumed = train_flow(h, FLOW, saved_less_often, seed=7, checkpoint=path, resume=True, progress=False)
    np.testing.assert_array_equal(whole.losses, resumed.losses)
    np.testing.assert_array_equal(jax.tree.leaves(whole.params)[0], jax.tree.leaves(resumed.params)[0])
    with pytest.raises(InputError, match="different model"):
        train_flow(free_field(4, m2=0.7), FLOW, settings, seed=7, checkpoint=path, resume=True, progress=False)


def test_a_checkpoint_holds_the_reverse_weight_only_for_the_mixed_objective_that_reads_it(tmp_path):
    """A maximum-likelihood checkpoint resumes under any weight; a mixed one only under its own."""
    h = free_field(4, m2=0.5)
    data = np.asarray(sample_gaussian_field(jax.random.PRNGKey(5), free_field_spectrum((4, 4), 0.5), (256,)))
    for objective in ("forward", "mixed"):
        settings = SVISettings(steps=50, batch=32, checkpoint_every=50, objective=objective, reverse_weight=0.5)
        path = tmp_path / f"{objective}"
        first = train_flow(h, FLOW, settings, data=data, seed=2, checkpoint=path, progress=False)
        other_weight = replace(settings, reverse_weight=0.25)
        if objective == "forward":
            resumed = train_flow(h, FLOW, other_weight, data=data, seed=2, checkpoint=path, resume=True, progress=False)
            np.testing.assert_array_equal(resumed.losses, first.losses)
        else:
            with pytest.raises(InputError, match="different model"):
                train_flow(h, FLOW, other_weight, data=data, seed=2, checkpoint=path, resume=True, progress=False)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    """An energy that is NaN beyond |phi| = 5.5: the flow's spread grows in training until a draw lands there."""
    cliff = Custom(lambda p: jnp.where(jnp.abs(p).max() > 5.5, jnp.nan, 0.0), name="cliff")
    h = Hamiltonian(Lattice(4), (Gradient(1.0), Mass(0.05), cliff))
    path = tmp_path / "c"
    with checkpointing_every(0), pytest.raises(SamplingDiverged, match="non-finite.*last good checkpoint is kept"):
        train_flow(
            h,
            FLOW,
            SVISettings(steps=2000, batch=64, learning_rate=1e-2, report_every=10, checkpoint_every=10),
            checkpoint=path,
            progress=False,
        )
    saved = checkpoints.saved_meta(path)
    assert saved["done"] >= 10 and "losses" in saved["draws"]


def test_an_energy_that_is_nan_everywhere_is_refused_at_the_start():
    broken = Hamiltonian(Lattice(4), (Gradient(1.0), Mass(1.0), Custom(lambda p: jnp.log(-jnp.sum(p**2)), name="nan")))
    with pytest.raises(SamplingDiverged, match="could not start"):
        train_flow(broken, FLOW, SVISettings(steps=100, batch=16, checkpoint_every=50), progress=False)
