"""``rgppl.sample``: one verb for every sampler, each returning the DataTree contract with ArviZ's statistics."""

from dataclasses import replace

import arviz as az
import arviz_plots as azp
import jax
import numpy as np
import pytest

from rgppl import (
    MIS,
    WIRG,
    ClusterSettings,
    FitSettings,
    FlowSettings,
    GeneratorSettings,
    InputError,
    MISSettings,
    NeuTra,
    NUTSSettings,
    SVISettings,
    checkpoints,
    fit_wirg,
    free_field,
    loop,
    sample,
    train_flow,
)
from rgppl.ensembles import run_cluster
from rgppl.mcmc import run_nuts

NUTS_SMALL = NUTSSettings(chains=2, warmup=100, samples=200, checkpoint_every=200)


@pytest.fixture(scope="module")
def rough_flow():
    """A barely trained flow on a 4 x 4 free field: the samplers are exact whatever the flow."""
    return train_flow(
        free_field(4, m2=0.5),
        FlowSettings(width=8, couplings=2, kernel=1, knots=0, symmetric=False),
        SVISettings(steps=50, batch=32, checkpoint_every=50),
        seed=0,
        progress=False,
    )


def test_nuts_through_sample_keeps_arviz_statistics_and_stock_diagnostics_run():
    h = free_field(4, m2=0.5)
    dt = sample(h, NUTS_SMALL, seed=4, progress=False)
    np.testing.assert_array_equal(
        dt.posterior["phi"].values, run_nuts(h, NUTS_SMALL, seed=4, progress=False).posterior["phi"].values
    )
    stats = dt.sample_stats
    assert {"energy", "step_size", "tree_depth", "diverging", "n_steps", "acceptance_rate", "lp"} <= set(
        stats.data_vars
    )
    kinetic = stats["energy"].values + stats["lp"].values  # H = U + K with lp = -U, so K >= 0 at every draw
    assert np.all(kinetic >= 0)
    assert np.all(stats["step_size"].values == stats["step_size"].values[:, :1])  # fixed after warm-up, per chain
    assert np.all(2 ** (stats["tree_depth"].values - 1) <= stats["n_steps"].values)
    assert np.all(stats["n_steps"].values < 2 ** stats["tree_depth"].values)
    bfmi = az.bfmi(dt)["energy"].values
    assert bfmi.shape == (2,) and np.all(bfmi > 0.3)  # a Gaussian target: energy transitions are healthy
    azp.plot_energy(dt, backend="matplotlib")


def test_the_cluster_sampler_through_sample_is_run_cluster():
    h = free_field(4, m2=0.5)
    settings = ClusterSettings(chains=2, warmup=50, samples=100, checkpoint_every=50)
    dt = sample(h, settings, seed=1, progress=False)
    np.testing.assert_array_equal(
        dt.posterior["phi"].values, run_cluster(h, settings, seed=1, progress=False).posterior["phi"].values
    )
    assert "acceptance_rate" in dt.sample_stats


def test_flow_samplers_through_sample_follow_the_contract(rough_flow, tmp_path):
    h = rough_flow.hamiltonian
    mis = sample(h, MIS(rough_flow, MISSettings(chains=2, warmup=10, samples=100)), seed=0, progress=False)
    neutra = sample(h, NeuTra(rough_flow, NUTS_SMALL), seed=0, checkpoint=tmp_path / "neutra", progress=False)
    assert mis.posterior["phi"].shape == neutra.posterior["phi"].shape[:1] + (100, 4, 4)
    assert {"is_accepted", "acceptance_rate"} <= set(mis.sample_stats.data_vars)
    assert {"energy", "step_size", "tree_depth"} <= set(neutra.sample_stats.data_vars)
    assert checkpoints.saved_meta(tmp_path / "neutra")["phase"] == 1 and neutra.attrs["sampler"] == "neutra"
    with pytest.raises(InputError, match="trained on"):
        sample(free_field(4, m2=2.0), MIS(rough_flow), progress=False)


def test_the_wirg_generator_through_sample():
    fields = np.random.default_rng(0).normal(size=(64, 8, 8)).astype(np.float32)
    model = fit_wirg(fields, FitSettings(potentials=4), progress=False)
    dt = sample(None, WIRG(model, GeneratorSettings(samples=40, groups=2, warmup=20, steps=10)), seed=0, progress=False)
    assert dt.posterior["phi"].shape == (2, 20, 8, 8) and dt.attrs["sampler"] == "wirg"


def test_a_config_that_selects_no_sampler_is_named():
    with pytest.raises(InputError, match="`config` = 'dict'"):
        sample(free_field(4), {"chains": 4})
    with pytest.raises(InputError, match="`hamiltonian` = None"):
        sample(None, NUTS_SMALL)


def test_mis_killed_mid_run_resumes_to_the_uninterrupted_draws_and_only_with_its_flow(
    rough_flow, tmp_path, monkeypatch
):
    h, config = (
        rough_flow.hamiltonian,
        MIS(rough_flow, MISSettings(chains=2, warmup=20, samples=60, checkpoint_every=20)),
    )
    whole = sample(h, config, seed=3, progress=False)
    path, real_save, saves = tmp_path / "mis", loop._save, []

    def killed_after_two(*args):
        if len(saves) == 2:
            raise KeyboardInterrupt
        saves.append(1)
        real_save(*args)

    monkeypatch.setattr(loop, "_save", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        sample(h, config, seed=3, checkpoint=path, checkpoint_seconds=0, progress=False)
    monkeypatch.setattr(loop, "_save", real_save)
    resumed = sample(h, config, seed=3, checkpoint=path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.posterior["phi"].values, whole.posterior["phi"].values)
    np.testing.assert_array_equal(resumed.sample_stats["is_accepted"].values, whole.sample_stats["is_accepted"].values)
    other = replace(rough_flow, params=jax.tree.map(lambda leaf: leaf + 1e-3, rough_flow.params), _compiled={})
    with pytest.raises(InputError, match="different model"):
        sample(h, MIS(other, config.settings), seed=3, checkpoint=path, resume=True, progress=False)


def test_a_nan_mid_run_stops_mis_and_the_wirg_generator_and_keeps_the_last_checkpoint(
    rough_flow, tmp_path, monkeypatch
):
    """NaN injected into the second chunk of proposals (MIS) and into the third scale (the WIRG generator): each run
    stops with SamplingDiverged, and the checkpoint of the work before is on disk."""
    from rgppl.errors import SamplingDiverged
    from rgppl.infer.training import TrainedFlow
    from rgppl.wirg import sampler

    real_draw, draws = TrainedFlow.draw, []

    def poisoned_draw(self, key, n, batch=2048):
        x, log_q, w = real_draw(self, key, n, batch)
        draws.append(n)
        return (x, log_q, np.where(np.arange(len(w)) == 0, np.nan, w)) if len(draws) == 3 else (x, log_q, w)

    monkeypatch.setattr(TrainedFlow, "draw", poisoned_draw)  # draw 1 starts the chains, draw 2 is the first chunk
    path = tmp_path / "mis"
    with pytest.raises(SamplingDiverged, match="non-finite field or weight"):
        sample(
            rough_flow.hamiltonian,
            MIS(rough_flow, MISSettings(chains=2, warmup=0, samples=60, checkpoint_every=20)),
            seed=3,
            checkpoint=path,
            checkpoint_seconds=0,  # a checkpoint after every chunk
            progress=False,
        )
    assert checkpoints.saved_meta(path)["done"] == 20  # the chunk before the NaN

    fields = np.random.default_rng(0).normal(size=(64, 8, 8)).astype(np.float32)
    model = fit_wirg(fields, FitSettings(potentials=4, ml_iterations=0), progress=False)
    real_scale, scales = sampler.sample_scale, []

    def poisoned_scale(*args):
        free, stats = real_scale(*args)
        scales.append(1)
        return (free.at[0].set(np.nan), stats) if len(scales) == 3 else (free, stats)

    monkeypatch.setattr(sampler, "sample_scale", poisoned_scale)
    path = tmp_path / "generate"
    with pytest.raises(SamplingDiverged):
        sample(
            None,
            WIRG(model, GeneratorSettings(samples=8, groups=2, warmup=10, steps=5)),
            seed=0,
            checkpoint=path,
            checkpoint_seconds=0,
            progress=False,
        )
    assert checkpoints.saved_meta(path)["done"] == 1  # a scale before the NaN, whole
