import gc
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rgppl import exact, loop
from rgppl.diagnostics import mean_with_error, summary
from rgppl.errors import InputError, SamplingDiverged
from rgppl.hamiltonians import Custom, Gradient, Hamiltonian, Mass, free_field, ising_dual
from rgppl.lattice import Lattice
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.observables import momentum_power
from tests.stats import family_threshold

FAST = NUTSSettings(chains=4, warmup=300, samples=1000, checkpoint_every=1000)


@pytest.mark.parametrize("dense_mass", [False, True])
def test_free_field_nuts_propagator_within_ess_error_bars(dense_mass):
    h = free_field(4, m2=0.5)
    dt = run_nuts(h, replace(FAST, dense_mass=dense_mass), seed=0, progress=False)
    power = np.asarray(momentum_power(jnp.asarray(dt.posterior["phi"].values)))
    stats = mean_with_error(power)
    z = (stats["mean"] - exact.free_field_propagator(4, 0.5)) / stats["mcse"]
    assert np.all(stats["ess_bulk"] > 400)
    assert np.max(np.abs(z)) < family_threshold(z.size), z


def test_ising_dual_nuts_m2_at_tc_on_4x4_matches_exact():
    h = ising_dual(4)
    dt = run_nuts(h, NUTSSettings(chains=4, warmup=500, samples=2000, checkpoint_every=2000), seed=1, progress=False)
    reference = exact.ising_moments(4, h.terms[0].beta)
    assert abs(reference["m2"] - 0.7613589086) < 1e-9
    table = summary(dt, exact={"spin_m2": reference["m2"], "spin_binder": reference["binder"]})
    assert table.loc["spin_m2", "ess_bulk"] > 400
    assert np.all(np.abs(table.loc[["spin_m2", "spin_binder"], "z"]) < family_threshold(2)), table


@pytest.mark.parametrize("chains, chain_method", [(2, "vectorized"), (2, "sequential"), (1, "vectorized")])
def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path, chains, chain_method):
    h = free_field(4, m2=1.0)
    settings = NUTSSettings(chains=chains, warmup=50, samples=60, checkpoint_every=30, chain_method=chain_method)
    whole = run_nuts(h, settings, seed=3, progress=False)
    path = tmp_path / "nuts.npz"
    short = replace(settings, samples=30)
    run_nuts(h, short, seed=3, checkpoint=path, progress=False)
    resumed = run_nuts(h, settings, seed=3, checkpoint=path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.posterior["phi"].values, whole.posterior["phi"].values)
    assert resumed.attrs["gradient_evaluations"] == whole.attrs["gradient_evaluations"]
    with pytest.raises(InputError, match="different model"):
        run_nuts(free_field(4, m2=2.0), settings, seed=3, checkpoint=path, resume=True, progress=False)


def test_the_progress_bars_do_not_change_the_draws(capsys):
    h = free_field(4, m2=1.0)
    settings = NUTSSettings(chains=2, warmup=40, samples=20, checkpoint_every=10)
    shown = run_nuts(h, settings, seed=5, progress=True)
    assert "warmup" in capsys.readouterr().err
    silent = run_nuts(h, settings, seed=5, progress=False)
    np.testing.assert_array_equal(shown.posterior["phi"].values, silent.posterior["phi"].values)


def _memory_mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def test_runs_and_chunks_do_not_pile_up_compiled_samplers():
    """The loop is compiled once per run and released with it.  Through NumPyro's MCMC every chunk of a
    multi-chain run compiled afresh and every run's compiled loops kept ~460 memory mappings for the life of
    the process: a long run, or many, hit the kernel's limit of 65530 and aborted in LLVM.  (A finished run's
    loop is freed when Python's cycle collector runs, hence ``gc.collect``.)"""
    settings = NUTSSettings(chains=2, warmup=20, samples=200, checkpoint_every=20)
    run_nuts(free_field(4), settings, seed=0, progress=False)
    gc.collect()
    before = _memory_mappings()
    for seed in (1, 2, 3):
        run_nuts(free_field(4), settings, seed=seed, progress=False)
    gc.collect()
    assert _memory_mappings() - before < 150


def _compilations(run) -> int:
    """How many XLA programs ``run()`` compiles."""
    names = []
    listener = lambda name, duration, **kwargs: names.append(name)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        run()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return names.count("/jax/core/compile/backend_compile_duration")


def test_the_sampling_loop_is_compiled_once_per_run_whatever_its_number_of_chunks():
    """Through NumPyro's MCMC.run each chunk of a multi-chain run compiled afresh (94 programs for 2 chunks,
    254 for 10): 19 s a chunk for a NeuTra model on 16 x 16."""
    run = lambda samples, seed: run_nuts(
        free_field(4),
        NUTSSettings(chains=2, warmup=20, samples=samples, checkpoint_every=20),
        seed=seed,
        progress=False,
    )
    run(20, 0)
    long, short = _compilations(lambda: run(200, 1)), _compilations(lambda: run(40, 2))
    assert max(long, short) <= 5, (long, short)


def test_non_finite_energy_stops_with_a_clear_message():
    broken = Hamiltonian(Lattice(4), (Custom(lambda p: jnp.sum(p) * jnp.nan, name="broken"),))
    with pytest.raises(SamplingDiverged, match="not finite"):
        run_nuts(broken, NUTSSettings(chains=2, warmup=10, samples=10), progress=False)


def test_an_energy_that_is_nan_over_part_of_the_field_space_stops_the_run():
    """NumPyro rejects a proposal of NaN energy as a divergence and goes on; rgppl measures the energy one step from
    the chain that diverged, finds it non-finite and stops."""
    walled = Hamiltonian(
        Lattice(4),
        (Gradient(1.0), Mass(1.0), Custom(lambda p: jnp.where(jnp.mean(p) > 0.3, jnp.nan, 0.0), name="walled")),
    )
    with pytest.raises(SamplingDiverged, match="not finite at .* points one step"):
        run_nuts(walled, NUTSSettings(chains=2, warmup=100, samples=100, checkpoint_every=50), progress=False)


def test_settings_are_validated():
    with pytest.raises(InputError, match="nuts.chains"):
        NUTSSettings(chains=0)
    with pytest.raises(InputError, match="nuts.target_accept"):
        NUTSSettings(target_accept=1.5)
    with pytest.raises(InputError, match="nuts.dense_mass"):
        NUTSSettings(dense_mass="yes")


def test_a_single_chain_keeps_the_chain_axis():
    dt = run_nuts(free_field(4), NUTSSettings(chains=1, warmup=30, samples=40, checkpoint_every=20), progress=False)
    assert dt.posterior["phi"].shape == (1, 40, 4, 4)
    assert dt.sample_stats["n_steps"].shape == (1, 40)


def test_ising_dual_nuts_moments_at_tc_on_8x8_match_the_transfer_matrix():
    h = ising_dual(8)
    dt = run_nuts(h, NUTSSettings(chains=4, warmup=1000, samples=4000, checkpoint_every=4000), seed=4, progress=False)
    reference = exact.ising_moments(8, h.terms[0].beta)
    assert abs(reference["m2"] - 0.6469115750) < 1e-9
    table = summary(
        dt, ["spin_m2", "spin_binder"], exact={"spin_m2": reference["m2"], "spin_binder": reference["binder"]}
    )
    assert np.all(table["ess_bulk"] > 400)
    assert np.all(np.abs(table["z"]) < family_threshold(2)), table


def test_a_run_killed_in_its_warm_up_resumes_to_the_uninterrupted_draws(tmp_path, monkeypatch):
    h = free_field(4, m2=1.0)
    settings = NUTSSettings(chains=2, warmup=60, samples=40, checkpoint_every=20)
    whole = run_nuts(h, settings, seed=5, progress=False)
    path, saves = tmp_path / "nuts", []
    real_save = loop._save

    def killed_after_two(*args):  # the kill arrives after the second warm-up checkpoint
        if len(saves) == 2:
            raise KeyboardInterrupt
        saves.append(args)
        real_save(*args)

    monkeypatch.setattr(loop, "_save", killed_after_two)
    with loop.checkpointing_every(0), pytest.raises(KeyboardInterrupt):  # a checkpoint every 20 draws
        run_nuts(h, settings, seed=5, checkpoint=path, progress=False)
    monkeypatch.setattr(loop, "_save", real_save)
    assert [args[3].phase for args in saves] == [0, 0]  # both checkpoints fell inside the warm-up
    resumed = run_nuts(h, settings, seed=5, checkpoint=path, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.posterior["phi"].values, whole.posterior["phi"].values)
    np.testing.assert_array_equal(resumed.sample_stats["step_size"].values, whole.sample_stats["step_size"].values)
    assert resumed.attrs["warmup_gradient_evaluations"] == whole.attrs["warmup_gradient_evaluations"]


@pytest.mark.parametrize("seconds, phases", [(0, [0, 0, 0, 1, 1]), (3600, [0, 1])])
def test_checkpoints_fall_every_checkpoint_every_draws_no_more_often_than_checkpoint_seconds(
    seconds, phases, tmp_path, monkeypatch
):
    """Within a phase a checkpoint waits for ``checkpoint_seconds`` to pass since the last one; a phase's end always
    writes one.  A number of seconds that is not one >= 0 is refused."""
    h, saves = free_field(4, m2=1.0), []
    settings = NUTSSettings(chains=2, warmup=60, samples=40, checkpoint_every=20)
    real_save = loop._save
    monkeypatch.setattr(loop, "_save", lambda *args: saves.append(args[3].phase) or real_save(*args))
    with loop.checkpointing_every(seconds):
        run_nuts(h, settings, seed=5, checkpoint=tmp_path / "nuts", progress=False)
    assert saves == phases
    with pytest.raises(InputError, match="checkpoint_seconds.*a number of seconds >= 0"):
        with loop.checkpointing_every(float("nan")):
            pass


def test_a_checkpoint_of_an_earlier_rgppl_a_file_is_refused_with_a_clear_error(tmp_path):
    h, settings = free_field(4, m2=1.0), NUTSSettings(chains=2, warmup=10, samples=20, checkpoint_every=10)
    path = tmp_path / "old.npz"
    np.savez(path, state_0=np.zeros(2))  # as rgppl wrote checkpoints before Orbax
    with pytest.raises(InputError, match="no complete checkpoint"):
        run_nuts(h, settings, seed=0, checkpoint=path, resume=True, progress=False)
    with pytest.raises(InputError, match="this is a file"):
        run_nuts(h, settings, seed=0, checkpoint=path, progress=False)
