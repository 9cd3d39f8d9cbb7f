import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rgppl import checkpoints
from rgppl.cards import BUILT_IN_CARDS, load_card
from rgppl.cli import main
from rgppl.errors import InputError
from rgppl.exact import free_field_logz
from rgppl.hamiltonians import ising_dual
from rgppl.observables import tail_statistics
from rgppl.wirg.fit import FitSettings
from rgppl.wirg.sources import DataSource
from tests.records import figures_by, valid_record

GOOD = """
name = "tiny"
[lattice]
shape = [4, 4]
[hamiltonian]
preset = "free_field"
m2 = 0.5
[run]
sampler = "nuts"
seed = 1
[nuts]
chains = 2
warmup = 100
samples = 200
"""


def write(tmp_path, text, name="card.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("folder", [BUILT_IN_CARDS, Path(__file__).parents[1] / "benchmarks" / "cards"])
def test_every_built_in_and_benchmark_card_is_valid(folder):
    cards = sorted(folder.glob("*.toml"))
    assert len(cards) >= 5
    for path in cards:
        card = load_card(path)
        assert card.name == path.stem


def test_card_terms_and_presets_build_the_same_hamiltonian(tmp_path):
    explicit = load_card(BUILT_IN_CARDS / "phi4_hopping_L16.toml").hamiltonian
    phi = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16)), jnp.float32)
    from rgppl.hamiltonians import phi4_hopping

    np.testing.assert_allclose(explicit.energy(phi), phi4_hopping(16, 0.68).energy(phi), rtol=1e-6)
    dual = load_card(BUILT_IN_CARDS / "ising_dual_tc_L4.toml").hamiltonian
    np.testing.assert_allclose(dual.energy(phi[:, :4, :4]), ising_dual(4).energy(phi[:, :4, :4]), rtol=1e-6)


def test_custom_term_from_an_import_path(tmp_path):
    card = GOOD.replace(
        'preset = "free_field"\nm2 = 0.5',
        """terms = [
  { type = "gradient" }, { type = "mass", m2 = 1.0 },
  { type = "custom", function = "tests.custom_terms:plaquette", name = "plaquette" },
]""",
    )
    h = load_card(write(tmp_path, card)).hamiltonian
    assert [t.kind for t in h.terms] == ["gradient", "mass", "custom"]
    assert np.isfinite(float(h.energy(jnp.ones((4, 4)))))


BAD = [
    (
        "unknown term",
        ('preset = "free_field"\nm2 = 0.5', 'terms = [{ type = "sextic", g = 1.0 }]'),
        "hamiltonian.terms[0].type",
        "valid term types",
    ),
    ("bad coupling", ("m2 = 0.5", "m2 = -0.5"), "m2", "must be a number > 0"),
    ("coupling of the wrong type", ("m2 = 0.5", 'm2 = "heavy"'), "hamiltonian.m2", "must be a finite number"),
    ("negative lattice size", ("shape = [4, 4]", "shape = [-4, 4]"), "lattice.shape", "integer >= 2"),
    ("missing lattice", ("[lattice]\nshape = [4, 4]\n", ""), "lattice", "must have a [lattice] table"),
    ("missing shape", ("shape = [4, 4]", ""), "lattice.shape", "shape = L"),
    ("missing name", ('name = "tiny"', ""), "name", "a card needs name"),
    ("wrong type of seed", ("seed = 1", 'seed = "one"'), "run.seed", "an integer from 0 to 2^32 - 1"),
    ("wrong type of chains", ("chains = 2", "chains = 2.5"), "nuts.chains", "an integer"),
    ("unknown sampler", ('sampler = "nuts"', 'sampler = "gibbs"'), "run.sampler", "valid samplers"),
    ("unknown precision", ('sampler = "nuts"', 'sampler = "nuts"\nprecision = "float16"'), "run.precision", "one of"),
    (
        "negative checkpoint interval",
        ('sampler = "nuts"', 'sampler = "nuts"\ncheckpoint_seconds = -1'),
        "run.checkpoint_seconds",
        "a number of seconds >= 0",
    ),
    ("unknown preset coupling", ("m2 = 0.5", "m2 = 0.5\nmu = 1.0"), "hamiltonian.mu", "valid keys"),
    ("unknown top-level key", ('name = "tiny"', 'name = "tiny"\nlatice = 3'), "latice", "valid keys"),
    (
        "bad custom import",
        ('preset = "free_field"\nm2 = 0.5', 'terms = [{ type = "custom", function = "nowhere.at_all:f" }]'),
        "function",
        "could not be imported",
    ),
    (
        "cluster sampler on a non-phi4 model",
        (
            'preset = "free_field"\nm2 = 0.5',
            'terms = [{ type = "ising_dual", beta = 0.4, alpha = 2.0 }, { type = "mass", m2 = 1.0 }]',
        ),
        "hamiltonian.terms",
        "a single ising_dual term",
        'sampler = "cluster"',
    ),
    (
        "cluster sampler on an odd lattice",
        ("shape = [4, 4]", "shape = [5, 5]"),
        "lattice.shape",
        "even lattice sides",
        'sampler = "cluster"',
    ),
    (
        "neuralrg on a side that is not a power of two",
        ("shape = [4, 4]", "shape = [6, 6]"),
        "lattice.shape",
        "power of 2",
        'sampler = "neuralrg"',
    ),
    (
        "too many flow levels",
        ("[nuts]", "[flow]\nlevels = 5\n[nuts]"),
        "flow.levels",
        "at most log2(L)",
        'sampler = "neuralrg"',
    ),
    (
        "a spline of one bin",
        ("[nuts]", "[flow]\nknots = 1\n[nuts]"),
        "flow.knots",
        "number of bins >= 2",
        'sampler = "neuralrg"',
    ),
    ("unknown flow key", ("[nuts]", "[flow]\ndepth = 3\n[nuts]"), "flow.depth", "valid keys", 'sampler = "neuralrg"'),
    (
        "forward objective without data",
        ("[nuts]", '[svi]\nobjective = "forward"\n[nuts]'),
        "svi.objective",
        "[data] path",
        'sampler = "neuralrg"',
    ),
    (
        "pretraining without data",
        ("[nuts]", "[svi]\npretrain_steps = 100\n[nuts]"),
        "svi.pretrain_steps",
        "[data] path",
        'sampler = "neuralrg"',
    ),
    (
        "pretraining steps off the report grid",
        ("[nuts]", "[svi]\npretrain_steps = 75\n[nuts]"),
        "svi.pretrain_steps",
        "multiple of report_every",
        'sampler = "neuralrg"',
    ),
    (
        "unknown gradient estimator",
        ("[nuts]", '[svi]\ngradient = "score"\n[nuts]'),
        "svi.gradient",
        "one of",
        'sampler = "neuralrg"',
    ),
    (
        "growth stage not a power of two",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 6"),
        "svi.grow[0].side",
        "a power of two",
        'sampler = "neuralrg"',
    ),
    (
        "growth stages out of order",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 8\n[[svi.grow]]\nside = 4"),
        "svi.grow[1].side",
        "larger than the stage before",
        'sampler = "neuralrg"',
    ),
    (
        "growth stage as large as the lattice",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 16"),
        "svi.grow[0].side",
        "below the lattice's side 16",
        'sampler = "neuralrg"',
    ),
    (
        "growth stage pretraining a model without its own data",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 8\npretrain_steps = 100"),
        "svi.grow[0].pretrain_steps",
        "only the Ising dual",
        'sampler = "neuralrg"',
    ),
    (
        "bad growth stage setting",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 8\nsteps = 0"),
        "svi.grow[0].steps",
        "integer >= 1",
        'sampler = "neuralrg"',
    ),
    (
        "unknown growth stage key",
        ("shape = [4, 4]", "shape = [16, 16]\n[[svi.grow]]\nside = 8\nrate = 1"),
        "svi.grow[0].rate",
        "valid keys",
        'sampler = "neuralrg"',
    ),
    (
        "negative learning rate",
        ("[nuts]", "[svi]\nlearning_rate = -1.0\n[nuts]"),
        "svi.learning_rate",
        "positive number",
        'sampler = "neuralrg"',
    ),
    (
        "bad neutra setting",
        ("[nuts]", "[neutra]\nchains = 0\n[nuts]"),
        "neutra.chains",
        "integer >= 1",
        'sampler = "neuralrg"',
    ),
    (
        "wirg on a side that is not a power of two",
        ("shape = [4, 4]", "shape = [6, 6]"),
        "lattice.shape",
        "power of 2",
        'sampler = "wirg"',
    ),
    (
        "wirg radius list of the wrong length",
        ('preset = "free_field"\nm2 = 0.5', 'preset = "phi4_hopping"\n[fit]\nradius = [1, 2]'),
        "fit.radius",
        "a list of 3 integers",
        'sampler = "wirg"',
    ),
    (
        "wirg with an unknown transform",
        ('preset = "free_field"\nm2 = 0.5', 'preset = "phi4_hopping"\n[fit]\ntransform = "log"'),
        "fit.transform",
        "shifted_log",
        'sampler = "wirg"',
    ),
    (
        "wirg fields not a multiple of the groups",
        ('preset = "free_field"\nm2 = 0.5', 'preset = "phi4_hopping"\n[generator]\nsamples = 10'),
        "generator.samples",
        "multiple of generator.groups",
        'sampler = "wirg"',
    ),
    (
        "wirg on a model without a reference sampler",
        (
            'preset = "free_field"\nm2 = 0.5',
            'terms = [{ type = "ising_dual", beta = 0.4, alpha = 2.0 }, { type = "mass", m2 = 1.0 }]',
        ),
        "hamiltonian.terms",
        "sum_x v",
        'sampler = "wirg"',
    ),
    (
        "no Hamiltonian",
        ('[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n', ""),
        "hamiltonian",
        "must have a [hamiltonian] table",
    ),
    (
        "wirg with neither a Hamiltonian nor data",
        ('[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n', ""),
        "hamiltonian",
        "give [data] path",
        'sampler = "wirg"',
    ),
    (
        "wirg surrogate beside a Hamiltonian",
        ("[nuts]", '[data]\nsurrogate = "lognormal"\n[nuts]'),
        "data.surrogate",
        "drop the [hamiltonian]",
        'sampler = "wirg"',
    ),
    (
        "unknown surrogate",
        ('[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n', '[data]\nsurrogate = "gaussian"\n'),
        "data.surrogate",
        "valid surrogates",
        'sampler = "wirg"',
    ),
    (
        "non-positive surrogate parameter",
        ('[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n', '[data]\nsurrogate = "lognormal"\nsigma = -0.8\n'),
        "data.sigma",
        "positive number",
        'sampler = "wirg"',
    ),
    (
        "held-out reference without data",
        ('[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n', '[data]\nsurrogate = "lognormal"\nholdout = 0.25\n'),
        "data.holdout",
        "give data.path",
        'sampler = "wirg"',
    ),
    (
        "alpha below the bound",
        ('preset = "free_field"\nm2 = 0.5', 'preset = "ising_dual"\nbeta = 0.44\nalpha = 0.2'),
        "ising_dual.alpha",
        "positive definite",
    ),
]


@pytest.mark.parametrize(
    "label, edit, field, valid, sampler", [(*b, 'sampler = "nuts"')[:5] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_cards_get_a_clear_error(tmp_path, capsys, label, edit, field, valid, sampler):
    path = write(tmp_path, GOOD.replace(*edit).replace('sampler = "nuts"', sampler))
    with pytest.raises(InputError) as info:
        load_card(path)
    message = str(info.value)
    assert str(path) in message and field in message and valid in message
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rgppl: error:") and "Traceback" not in err and err.count("\n") == 1


def test_unreadable_cards(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_card(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="not valid TOML"):
        load_card(write(tmp_path, "name = [unclosed"))


def test_cli_writes_readable_netcdf_json_and_never_overwrites(tmp_path, capsys):
    card = write(tmp_path, GOOD)
    out = tmp_path / "run"
    assert main(["run", str(card), "--out", str(out), "--quiet"]) == 0
    for name in (
        "posterior.nc",
        "summary.md",
        "summary.csv",
        "record.json",
        "trace.png",
        "distributions.png",
        "fields.png",
        "card.toml",
        "checkpoint",
    ):
        assert (out / name).stat().st_size > 0, name
    tree = xr.load_datatree(out / "posterior.nc", engine="h5netcdf")
    assert tree.posterior["phi"].dims == ("chain", "draw", "x", "y")
    assert tree.posterior["phi"].shape == (2, 200, 4, 4)
    assert "n_steps" in tree.sample_stats
    record = valid_record(out)
    assert record["job"] == "sample" and record["card"]["run"] == {
        "sampler": "nuts",
        "seed": 1,
        "output": "results/tiny",
        "precision": "float32",
        "checkpoint_seconds": 10.0,
    }
    assert record["card"]["nuts"]["target_accept"] == 0.8  # the resolved card holds the defaults too
    assert record["details"]["exact"]["ln_z"] == pytest.approx(free_field_logz(4, 0.5), rel=1e-12)
    figures = figures_by(record, "name")
    assert set(figures) >= {"m", "m2", "e", "binder", "chi"} and {f["run"] for f in figures.values()} == {"nuts"}
    assert figures["m2"]["reference"] == pytest.approx(1 / (16 * 0.5)) and figures["m2"]["stderr"] > 0
    assert figures["m2"]["z"] == pytest.approx(
        (figures["m2"]["value"] - figures["m2"]["reference"]) / figures["m2"]["stderr"]
    )
    assert record["details"]["cost"]["gradient_evaluations"] == int(tree.sample_stats["n_steps"].sum())
    assert set(record["stages"]) == {"sampling", "evaluation"} and all(t > 0 for t in record["stages"].values())
    assert record["provenance"]["versions"]["numpyro"] and record["provenance"]["machine"]["cores"] >= 1
    printed = capsys.readouterr().out
    assert "| m2 |" in printed
    page = (out / "index.html").read_text()  # the run's page: its figures, tables and plots together
    assert f">{figures['m2']['value']:.5g}<" in page and 'href="record.json"' in page
    assert all(f'src="{name}"' in page for name in ("trace.png", "distributions.png", "fields.png"))

    assert main(["run", str(card), "--out", str(out), "--quiet"]) == 0
    assert (tmp_path / "run-2" / "posterior.nc").exists()
    assert "run-2" in capsys.readouterr().out


def test_cli_runs_the_cluster_sampler_and_resumes(tmp_path):
    card = write(
        tmp_path,
        GOOD.replace('sampler = "nuts"', 'sampler = "cluster"').replace(
            "[nuts]\nchains = 2\nwarmup = 100\nsamples = 200",
            "[cluster]\nchains = 2\nwarmup = 50\nsamples = 100\ncheckpoint_every = 50",
        ),
    )
    out = tmp_path / "cluster"
    assert main(["run", str(card), "--out", str(out), "--quiet"]) == 0
    record = valid_record(out)
    assert record["card"]["run"]["sampler"] == "cluster" and record["details"]["cost"]["draws"] == 200
    assert figures_by(record, "name")["m2"]["reference"] == pytest.approx(1 / (16 * 0.5))
    first = xr.load_datatree(out / "posterior.nc", engine="h5netcdf").posterior["phi"].values
    assert main(["run", str(card), "--out", str(out), "--resume", "--quiet"]) == 0
    again = xr.load_datatree(out / "posterior.nc", engine="h5netcdf").posterior["phi"].values
    np.testing.assert_array_equal(first, again)


NEURALRG = (
    GOOD.replace('sampler = "nuts"', 'sampler = "neuralrg"')
    + """
[flow]
width = 8
couplings = 2
kernel = 1
knots = 0
[svi]
steps = 100
batch = 32
learning_rate = 1e-2
checkpoint_every = 50
[free_energy]
samples = 1024
[mis]
chains = 2
samples = 300
[neutra]
chains = 2
warmup = 50
samples = 100
"""
)


def test_cli_runs_the_neuralrg_job_and_reports_the_free_energy(tmp_path, capsys):
    """On 8 x 8, after a first stage on 4 x 4 grown into it."""
    out = tmp_path / "flow"
    card = NEURALRG.replace("shape = [4, 4]", "shape = [8, 8]") + "[[svi.grow]]\nside = 4\nsteps = 100\n"
    assert main(["run", str(write(tmp_path, card)), "--out", str(out), "--quiet"]) == 0
    record = valid_record(out)
    figures = figures_by(record, "name", "run")
    for key in ("F_q", "ln_z_is", "kl_nats", "ess_fraction", "mis_acceptance"):
        assert np.isfinite(figures[key, None]["value"]), key
    ln_z = free_field_logz(8, 0.5)
    assert (
        figures["ln_z_is", None]["reference"] == pytest.approx(ln_z, rel=1e-12)
        and figures["ln_z_is", None]["stderr"] > 0
    )
    assert figures["F_q", None]["z"] is None  # a bound: the KL figure states how far it is from -ln Z
    assert [stage["side"] for stage in record["card"]["svi"]["grow"]] == [4]
    assert checkpoints.saved_meta(out / "svi_L4_checkpoint")["phase"] == 0
    assert "100 SVI steps on 4 x 4, then 100 SVI steps" in (out / "summary.md").read_text()
    assert figures["kl_nats", None]["value"] == pytest.approx(figures["F_q", None]["value"] + ln_z)
    kl_is = figures["kl_nats_is", None]  # the importance estimate beside the exact KL, low by ln Z_IS's bias
    assert kl_is["value"] == pytest.approx(figures["F_q", None]["value"] + figures["ln_z_is", None]["value"])
    assert {run for name, run in figures if name == "m2"} == {"mis", "neutra", "nuts"}
    assert set(record["stages"]) == {"data", "training", "sampling", "evaluation"}
    for name in (
        "summary.md",
        "comparison.md",
        "comparison.csv",
        "training.png",
        "latents.md",
        "latents.png",
        "distributions.png",
        "fields.png",
        "svi_checkpoint",
        "mis/posterior.nc",
        "neutra/posterior.nc",
        "nuts/posterior.nc",
    ):
        assert (out / name).stat().st_size > 0, name
    assert xr.load_datatree(out / "neutra" / "posterior.nc", engine="h5netcdf").posterior["phi"].shape == (2, 100, 8, 8)
    assert "kl_nats" in capsys.readouterr().out


WIRG = (
    GOOD.split("[nuts]")[0]
    .replace('sampler = "nuts"', 'sampler = "wirg"')
    .replace('preset = "free_field"\nm2 = 0.5', 'preset = "phi4_hopping"')
    + """
[cluster]
chains = 2
warmup = 50
samples = 100
thin = 2
[fit]
potentials = 6
mirror_images = true
[generator]
samples = 200
warmup = 40
steps = 20
"""
)


def test_cli_runs_the_wirg_job_and_resumes_without_refitting(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the reference ensembles are cached under ./results/ensembles
    card = write(tmp_path, WIRG.replace("shape = [4, 4]", "shape = [8, 8]"))
    out = tmp_path / "wirg"
    assert main(["run", str(card), "--out", str(out), "--quiet"]) == 0
    record = valid_record(out)
    details = record["details"]
    assert [s["side"] for s in details["scales"]] == [1, 1, 2, 4]
    refinement = ("ml_mismatch", "ml_mismatch_noise")  # every scale here has side <= ml_max_side, so is refined
    assert all(len(s[name]) == FitSettings().ml_iterations for s in details["scales"] for name in refinement)
    assert all(0.3 < s["acceptance"] < 0.8 for s in details["generator_scales"])
    figures = figures_by(record, "name", "run")
    assert {run for name, run in figures if name == "m2"} == {"wirg", "reference"}  # and "nuts" with a [nuts] table
    assert figures["std_phi_0", "wirg"]["reference"] == pytest.approx(details["scale_std"]["reference"][0])
    fidelity = figures["m2_vs_reference", "wirg"]  # the generated fields against the independent ensemble
    assert fidelity["reference"] == pytest.approx(figures["m2", "reference"]["value"], rel=1e-6)
    assert np.isfinite(fidelity["z"]) and fidelity["reference_source"] == "reference"
    rows = pd.read_csv(out / "fidelity.csv")  # every statistic of rgppl.fidelity, each a figure of the record
    assert {"spectrum", "scale_mean_square", "histogram", "binder"} == set(rows["statistic"])
    assert figures["fidelity_scale_mean_square_0", "wirg"]["z"] == pytest.approx(
        rows["z"][rows.statistic == "scale_mean_square"].iloc[0]
    )
    assert details["fidelity_worst_abs_z"] == pytest.approx(rows["z"].abs().max())
    training = [figure for (name, run), figure in figures.items() if run == "training" and name.startswith("fidelity_")]
    assert len(training) > 0 and all(np.isfinite(figure["z"]) for figure in training)  # the data against the reference
    assert details["training_fidelity_worst_abs_z"] == pytest.approx(max(abs(figure["z"]) for figure in training))
    assert "training_worst_abs_z" in (out / "summary.md").read_text()
    assert set(record["stages"]) == {"data", "fitting", "sampling", "evaluation"}
    energy = details["microscopic_energy"]
    assert {"J(1,0)", "a_4"} <= {row["term"] for row in energy["couplings"]} and np.isfinite(energy["gradient_error"])
    for name in (
        "summary.md",
        "comparison.md",
        "scales.png",
        "fields.png",
        "fit/scale_1.npz",
        "fit/scale_top.npz",
        "fit/free_energy_1.npz",
        "wirg/posterior.nc",
        "reference/posterior.nc",
    ):
        assert (out / name).stat().st_size > 0, name
    tree = xr.load_datatree(out / "wirg" / "posterior.nc", engine="h5netcdf")
    assert tree.posterior["phi"].shape == (4, 50, 8, 8) and tree.observed_data["phi"].shape == (200, 8, 8)
    fitted = (out / "fit" / "scale_1.npz").stat().st_mtime_ns
    assert main(["run", str(card), "--out", str(out), "--resume", "--quiet"]) == 0
    assert (out / "fit" / "scale_1.npz").stat().st_mtime_ns == fitted  # resumed: the fit was read, not redone
    again = xr.load_datatree(out / "wirg" / "posterior.nc", engine="h5netcdf").posterior["phi"].values
    np.testing.assert_array_equal(again, tree.posterior["phi"].values)


SURROGATE = """
name = "tiny_surrogate"
[lattice]
shape = 8
[run]
sampler = "wirg"
[data]
surrogate = "lognormal"
fields = 400
[fit]
potentials = 6
transform = "shifted_log"
ml_iterations = 0
[generator]
samples = 200
warmup = 40
steps = 20
"""


def test_cli_runs_a_wirg_card_on_fields_without_a_hamiltonian(tmp_path, capsys):
    out = tmp_path / "surrogate"
    assert main(["run", str(write(tmp_path, SURROGATE)), "--out", str(out), "--quiet"]) == 0
    assert "lognormal surrogate on 8x8" in capsys.readouterr().out
    record = valid_record(out)
    details = record["details"]
    assert record["card"]["hamiltonian"] is None and details["training_fields"] == 400
    shift = details["transform"]["shift"]
    assert (
        details["transform"]["name"] == "shifted_log" and f"ln(phi + {shift:.4g})" in (out / "summary.md").read_text()
    )
    assert {entry["run"] for entry in record["figures"] if entry["name"] == "m2"} == {"wirg", "reference"}
    tails = {row["quantity"]: row for row in details["tails"]}
    tail_figures = figures_by(record, "name")
    assert tail_figures["tail_pixel kurtosis"]["z"] == pytest.approx(tails["pixel kurtosis"]["z"])
    assert set(tails) == {
        "P(phi > 2 std)",
        "P(phi > 4 std)",
        "P(phi > 6 std)",
        "P(phi > 8 std)",
        "pixel skewness",
        "pixel kurtosis",
    }
    reference = xr.load_datatree(out / "reference" / "posterior.nc", engine="h5netcdf").posterior["phi"].values
    expected = tail_statistics(reference, float(np.std(reference)))
    for name in ("P(phi > 2 std)", "pixel skewness", "pixel kurtosis"):
        assert tails[name]["reference"] == pytest.approx(float(np.mean(expected[name])), rel=1e-5)
        assert np.isfinite(tails[name]["z"])
    couplings = details["microscopic_energy"]["couplings"]
    assert "J(1,0)" in {row["term"] for row in couplings} and all(
        set(row) == {"term", "recovered"} for row in couplings
    )
    assert reference.shape == (1, 400, 8, 8)
    assert xr.load_datatree(out / "wirg" / "posterior.nc", engine="h5netcdf").posterior["phi"].shape == (4, 50, 8, 8)
    assert "Pixel tails beside the reference" in (out / "summary.md").read_text()


def test_user_fields_without_a_hamiltonian_keep_a_held_out_reference(tmp_path):
    fields = np.random.default_rng(0).normal(size=(40, 8, 8)).astype(np.float32)
    np.save(tmp_path / "maps.npy", fields)
    card = load_card(
        write(tmp_path, SURROGATE.replace('surrogate = "lognormal"\nfields = 400', 'path = "maps.npy"\nholdout = 0.2'))
    )
    assert card.hamiltonian is None
    train, reference = card.source.load(card.lattice, card.hamiltonian, card.cluster, card.seed)
    np.testing.assert_array_equal(train.posterior["phi"].values[0], fields[:32])
    np.testing.assert_array_equal(reference.posterior["phi"].values[0], fields[32:])
    with pytest.raises(InputError, match="at least two"):
        DataSource(path=tmp_path / "maps.npy", holdout=0.99).load(card.lattice, None, card.cluster, 0)


def test_the_card_reference_is_generated_from_the_settings_and_up_to_date(capsys):
    assert main(["cards", "--reference"]) == 0
    printed = capsys.readouterr().out
    assert "| `target_accept` | `0.8` | float |" in printed and "## [generator]" in printed
    assert (Path(__file__).parents[1] / "docs" / "cards.md").read_text() == printed, (
        "docs/cards.md is stale: rgppl cards --reference > docs/cards.md"
    )


def test_resume_continues_only_a_run_of_the_same_card_and_touches_nothing_else(tmp_path, capsys):
    card = write(tmp_path, GOOD)
    out = tmp_path / "run"
    assert main(["run", str(card), "--out", str(out), "--quiet"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    other = write(tmp_path, GOOD.replace("m2 = 0.5", "m2 = 0.7"), name="other.toml")
    assert main(["run", str(other), "--out", str(out), "--resume", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "rgppl: error:" in error and "--resume" in error and "'tiny'" in error and "Traceback" not in error
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before  # byte for byte
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["run", str(card), "--out", str(foreign), "--resume", "--quiet"]) == 2
    assert "no run.json" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "mine"
    longer = write(tmp_path, GOOD.replace("samples = 200", "samples = 300"), name="longer.toml")
    assert main(["run", str(longer), "--out", str(out), "--resume", "--quiet"]) == 0  # a finished run, extended
    tree = xr.load_datatree(out / "posterior.nc", engine="h5netcdf")
    assert tree.posterior["phi"].shape == (2, 300, 4, 4)


@pytest.mark.parametrize(
    "section, old, new",
    [
        ("cluster", "chunk", "cluster.checkpoint_every"),
        ("fit", "chunk", "fit.batch"),
        ("fit", "symmetric", "fit.mirror_images"),
        ("generator", "chains", "generator.groups"),
        ("generator", "fields", "generator.samples"),
        ("mis", "chunk", "mis.checkpoint_every"),
        ("flow", "train_symmetric", "svi.train_q_sym"),
        ("svi", "data", "data.path"),
        ("free_energy", "draws", "free_energy.samples"),
    ],
)
def test_a_renamed_key_gets_an_error_that_names_the_new_one(tmp_path, section, old, new):
    text = {"cluster": WIRG.replace('sampler = "wirg"', 'sampler = "cluster"')}.get(section, WIRG)
    text = NEURALRG if section in ("mis", "flow", "svi", "free_energy") else text
    text = text.replace("shape = [4, 4]", "shape = [8, 8]").replace(f"[{section}]\n", f"[{section}]\n{old} = 4\n")
    with pytest.raises(InputError, match=rf"`{section}.{old}` = 4 is invalid; the key was renamed: write {new}"):
        load_card(write(tmp_path, text))


def test_the_readme_lists_every_built_in_card():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [path.stem for path in sorted(BUILT_IN_CARDS.glob("*.toml")) if f"`{path.stem}`" not in readme]
    assert not missing, f"README.md's card table lacks {missing}"
