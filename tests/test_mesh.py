"""Every sampler, flow training and WIRG on a device mesh: the batch really is split over the devices, and a seed
gives the same run on 1, 2 and 4 of them.

These tests need 4 devices; CI runs them with 4 emulated CPU devices:
``XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest tests/test_mesh.py``.
Where the layouts agree bit for bit the test says so; where a reduction over the batch changes its order (a
mean over a sharded batch), it says which tolerance and why.
"""

import json
from dataclasses import replace

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from rgppl.ensembles import ClusterSettings, run_cluster
from rgppl.exact import free_field_spectrum, sample_gaussian_field
from rgppl.flows import FlowSettings, sample_with_log_prob
from rgppl.hamiltonians import free_field, phi4_hopping
from rgppl.infer import MISSettings, SVISettings, run_mis, train_flow
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.mesh import batch_sharding, shard_batch, sharded_over
from rgppl.wavelets import pyramid
from rgppl.wirg.ansatz import ScaleAnsatz
from rgppl.wirg.fit import FitSettings, fit_wirg, score_moments
from rgppl.wirg.sampler import GeneratorSettings, generate

pytestmark = pytest.mark.skipif(len(jax.devices()) < 4, reason="needs 4 devices (XLA_FLAGS, see the module)")
LAYOUTS = (1, 2, 4)


def devices(n: int):
    """A context in which rgppl's batch axis spans the first ``n`` devices."""
    return jax.set_mesh(Mesh(np.array(jax.devices()[:n]), ("batch",)))


def test_the_batch_sharding_splits_a_divisible_batch_and_replicates_another_and_a_single_key():
    with devices(4):
        assert batch_sharding(8).spec == jax.sharding.PartitionSpec("batch") and len(batch_sharding(8).device_set) == 4
        assert batch_sharding(6).is_fully_replicated
        x = jax.device_put(np.zeros((8, 3)), batch_sharding(8))
        assert sharded_over({"x": x, "key": jax.random.PRNGKey(0)}) == 4
    with devices(2):  # two chains on two devices: the chains are split, a state's one raw key is not
        key, phi = shard_batch((jax.random.PRNGKey(0), np.zeros((2, 3))), 2)
        assert key.sharding.is_fully_replicated and sharded_over(phi) == 2
        run = run_cluster(phi4_hopping((4, 4)), ClusterSettings(chains=2, warmup=10, samples=10), progress=False)
        assert run.attrs["devices"] == 2


def test_cluster_and_nuts_chains_are_sharded_and_give_the_same_draws_on_1_2_and_4_devices():
    h, gaussian = phi4_hopping((8, 8)), free_field(8, m2=0.5)
    runs = {}
    for n in LAYOUTS:
        with devices(n):
            cluster = run_cluster(h, ClusterSettings(chains=8, warmup=20, samples=20), seed=1, progress=False)
            nuts = run_nuts(gaussian, NUTSSettings(chains=4, warmup=8, samples=30), seed=1, progress=False)
        assert cluster.attrs["devices"] == n and nuts.attrs["devices"] == n
        runs[n] = (cluster.posterior.phi.values, nuts.posterior.phi.values)
    for n in LAYOUTS[1:]:
        # the cluster sampler's per-chain arithmetic is the same on every layout: bit for bit
        np.testing.assert_array_equal(runs[n][0], runs[1][0])
        # NUTS's gradients are vectorised by XLA for the chains of one device, and another layout may round them
        # differently (jax 0.12.1 does from the 4th warm-up step; 0.12.0 did not). On a Gaussian, chains driven by
        # the same random numbers contract, so the draws agree to round-off (1e-4 seen). A longer warm-up lets
        # round-off in the adapted step size flip a discrete choice of the tree, after which the layouts agree
        # only in distribution: tests/test_sampling.py checks NUTS against exact moments on 4 devices in CI.
        np.testing.assert_allclose(runs[n][1], runs[1][1], atol=1e-3)


def test_a_checkpoint_written_on_4_devices_resumes_on_2_with_the_uninterrupted_draws(tmp_path):
    h = phi4_hopping((8, 8))
    settings = ClusterSettings(chains=8, warmup=20, samples=40, checkpoint_every=10)
    with devices(1):
        whole = run_cluster(h, settings, seed=3, progress=False).posterior.phi.values
    path = tmp_path / "cluster.npz"
    with devices(4):
        run_cluster(h, replace(settings, samples=20), seed=3, checkpoint=path, progress=False)
    with devices(2):
        resumed = run_cluster(h, settings, seed=3, checkpoint=path, resume=True, progress=False)
    assert resumed.attrs["devices"] == 2
    np.testing.assert_array_equal(resumed.posterior.phi.values, whole)


FLOW = FlowSettings(width=8, couplings=1, kernel=1, knots=0, symmetric=False)


def test_flow_training_is_data_parallel_and_its_draws_and_mis_chains_match_one_device():
    h = free_field(4, m2=0.5)
    settings = SVISettings(steps=100, batch=64, learning_rate=1e-2, report_every=50, checkpoint_every=50)
    trained = {}
    for n in (1, 4):
        with devices(n):
            trained[n] = train_flow(h, FLOW, settings, seed=0, progress=False)
            posterior = trained[n].guide.get_posterior(trained[n].params)
            x, log_q = jax.jit(lambda key, p=posterior: sample_with_log_prob(p, key, 64))(jax.random.PRNGKey(0))
            assert sharded_over((x, log_q)) == n  # each device draws its share
    # the loss is a mean over the sharded batch, summed in another order on 4 devices: float32 round-off, which
    # 100 Adam steps carry into the parameters without growing
    np.testing.assert_allclose(trained[4].losses, trained[1].losses, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(trained[4].params), jax.tree.leaves(trained[1].params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # one flow, two layouts: the same draws and MIS chains; ln q and the weights, whose sums XLA vectorises
    # differently for another batch per device, to float32 round-off (a few draws in a hundred differ by an ulp)
    draws = {}
    for n in (1, 4):
        with devices(n):
            mis = run_mis(trained[1], MISSettings(chains=8, warmup=10, samples=20, checkpoint_every=10), progress=False)
            draws[n] = (*trained[1].draw(jax.random.PRNGKey(1), 256), mis.posterior.phi.values)
        assert mis.attrs["devices"] == n
    (x4, log_q4, w4, mis4), (x1, log_q1, w1, mis1) = draws[4], draws[1]
    np.testing.assert_array_equal(x4, x1)
    np.testing.assert_allclose(log_q4, log_q1, rtol=1e-6)
    np.testing.assert_allclose(w4, w1, rtol=1e-6)
    np.testing.assert_array_equal(mis4, mis1)


def test_wirg_fit_sums_and_generator_are_sharded_and_match_one_device():
    data = np.asarray(sample_gaussian_field(jax.random.PRNGKey(0), free_field_spectrum((8, 8), 0.5), (512,)))
    coarse, details = pyramid(data, "haar", 1)
    ansatz = ScaleAnsatz(side=4, radius=1, wavelet="haar")
    settings = FitSettings(wavelet="haar", radius=1, potentials=4, ml_iterations=2, ml_steps=20)
    moments, models, fields, steps = {}, {}, {}, {}
    for n in (1, 4):
        with devices(n):
            moments[n] = score_moments(ansatz, coarse[1], details[0])
            models[n] = fit_wirg(data, settings, progress=False)  # maximum-likelihood chains included
            adapted = generate(models[1], None, GeneratorSettings(samples=64, warmup=20, steps=10), progress=False)
            fixed = generate(models[1], None, GeneratorSettings(samples=64, warmup=0, steps=30), progress=False)
        assert adapted.attrs["devices"] == fixed.attrs["devices"] == n
        steps[n] = [scale["step_size"] for scale in json.loads(adapted.attrs["scales"])]
        fields[n] = fixed.posterior.phi.values.reshape(64, -1)
    # the score-matching sums over a chunk of fields add four partial sums on 4 devices: float32 round-off
    for a, b in zip(moments[4], moments[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
    assert [s.ansatz.side for s in models[4].scales] == [s.ansatz.side for s in models[1].scales]
    # one model, two layouts.  The step size adapts to the acceptance averaged over all the sharded chains: the
    # same on both, up to an accept decision that round-off flips (1/640 of a block's mean; a per-device mean would
    # differ by the spread of 16 chains' acceptance).  Without adaptation each chain's arithmetic is the same, and
    # the fields agree to float32 round-off, but for a chain whose accept decision round-off flips
    np.testing.assert_allclose(steps[4], steps[1], rtol=5e-3)
    agree = np.all(np.abs(fields[4] - fields[1]) < 1e-4, axis=1)
    assert agree.sum() >= 60, np.flatnonzero(~agree)
