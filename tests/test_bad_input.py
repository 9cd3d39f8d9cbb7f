"""Bad input, fuzzed: every invalid setting, card, data file, output directory, checkpoint, custom term and API call
gets one clear error that names the field: exit status 2 and an ``rgppl: error:`` paragraph from the CLI (never a
traceback), an :class:`InputError` from the API.  Every CLI case also checks that a results directory written
before it is unchanged, byte for byte.  The cases go through ``rgppl check`` where it suffices, in-process."""

import hashlib
import shutil
import types
from dataclasses import fields
from pathlib import Path

import jax
import numpy as np
import pytest

from rgppl.cli import main
from rgppl.ensembles import ClusterSettings
from rgppl.errors import InputError
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import phi4_hopping
from rgppl.infer import MISSettings, SVISettings
from rgppl.mcmc import NUTSSettings
from rgppl.sampling import sample
from rgppl.wirg.fit import FitSettings
from rgppl.wirg.sampler import GeneratorSettings
from rgppl.wirg.sources import DataSource

HEADER = 'name = "fuzz"\n[lattice]\nshape = [{L}, {L}]\n'
MODEL = {
    "free_field": '[hamiltonian]\npreset = "free_field"\nm2 = 0.5\n',
    "phi4": '[hamiltonian]\npreset = "phi4_hopping"\n',
}
BASE = {  # sampler: (lattice side, model) of the smallest card whose sections the cases fill
    "nuts": (4, "free_field"),
    "cluster": (4, "phi4"),
    "neuralrg": (4, "free_field"),
    "wirg": (8, "phi4"),
    "surrogate": (8, None),
}
SECTIONS = {  # card section: (settings class, base card)
    "nuts": (NUTSSettings, "nuts"),
    "neutra": (NUTSSettings, "neuralrg"),
    "cluster": (ClusterSettings, "cluster"),
    "flow": (FlowSettings, "neuralrg"),
    "svi": (SVISettings, "neuralrg"),
    "mis": (MISSettings, "neuralrg"),
    "fit": (FitSettings, "wirg"),
    "generator": (GeneratorSettings, "wirg"),
    "data": (DataSource, "surrogate"),
}
TINY = (
    HEADER.format(L=4)
    + MODEL["free_field"]
    + '[run]\nsampler = "nuts"\n[nuts]\nchains = 2\nwarmup = 50\nsamples = 50\n'
)


def card(base: str, extra: str = "") -> str:
    """The base card of ``base`` with ``extra`` TOML appended (the surrogate card's ``[data]`` comes from ``extra``)."""
    side, model = BASE[base]
    sampler = "wirg" if base == "surrogate" else base
    text = HEADER.format(L=side) + (MODEL[model] if model else "") + f'[run]\nsampler = "{sampler}"\n'
    if base == "surrogate" and "[data]" not in extra:
        text += '[data]\nsurrogate = "lognormal"\n'
    return text + extra


def with_terms(terms: str) -> str:
    """The NUTS base card with ``[hamiltonian] terms = <terms>`` in place of its preset."""
    return card("nuts").replace('preset = "free_field"\nm2 = 0.5', f"terms = {terms}")


def bad_values(annotation) -> list[str]:
    """TOML values that no field of this annotated type accepts in the base cards."""
    kinds = annotation.__args__ if isinstance(annotation, types.UnionType) else (annotation,)
    values = ['"no-such-choice"'] if str in kinds else ['"x"']
    values.append("3" if bool in kinds else "true")
    if int in kinds or float in kinds:
        values += ["inf", "-1"]
    values.append("[1, 2]")  # a list: of the wrong length where a per-scale list is allowed
    return values


def setting_cases():
    for section, (cls, base) in SECTIONS.items():
        for field in fields(cls):
            if field.name == "path":  # a file: the data-file cases below
                continue
            for value in bad_values(field.type):
                table = f"[{section}]\n"
                if section == "data" and field.name != "surrogate":
                    table += 'surrogate = "lognormal"\n'
                yield pytest.param(
                    base,
                    f"{table}{field.name} = {value}\n",
                    f"{section}.{field.name}",
                    id=f"{section}.{field.name}={value}",
                )


CARD_CASES = [  # (id, card text, the field the error must name)
    ("empty card", "", "name"),
    ("not TOML", "name = \n[[[", "card"),
    ("no lattice", 'name = "x"\n[run]\nsampler = "nuts"\n' + MODEL["free_field"], "lattice"),
    ("lattice of one side", card("nuts").replace("[4, 4]", "[4]"), "lattice.shape"),
    ("lattice of three sides", card("nuts").replace("[4, 4]", "[4, 4, 4]"), "lattice.shape"),
    ("lattice side zero", card("nuts").replace("[4, 4]", "[0, 4]"), "lattice.shape"),
    ("negative lattice side", card("nuts").replace("[4, 4]", "[-4, 4]"), "lattice.shape"),
    ("lattice side a string", card("nuts").replace("[4, 4]", '"big"'), "lattice.shape"),
    ("lattice side fractional", card("nuts").replace("[4, 4]", "[4.5, 4]"), "lattice.shape"),
    ("flow on a side not a power of two", card("neuralrg").replace("[4, 4]", "[6, 6]"), "lattice.shape"),
    ("flow on a rectangle", card("neuralrg").replace("[4, 4]", "[4, 8]"), "lattice.shape"),
    ("wirg on a side not a power of two", card("wirg").replace("[8, 8]", "[12, 12]"), "lattice.shape"),
    ("cluster on odd sides", card("cluster").replace("[4, 4]", "[5, 5]"), "lattice.shape"),
    ("no run table", card("nuts").replace('[run]\nsampler = "nuts"\n', ""), "run"),
    ("unknown sampler", card("nuts").replace('"nuts"', '"gibbs"'), "run.sampler"),
    ("negative seed", card("nuts", "").replace('sampler = "nuts"\n', 'sampler = "nuts"\nseed = -1\n'), "run.seed"),
    ("seed of 2^32", card("nuts").replace('sampler = "nuts"\n', 'sampler = "nuts"\nseed = 4294967296\n'), "run.seed"),
    ("seed a float", card("nuts").replace('sampler = "nuts"\n', 'sampler = "nuts"\nseed = 1.5\n'), "run.seed"),
    ("seed a boolean", card("nuts").replace('sampler = "nuts"\n', 'sampler = "nuts"\nseed = true\n'), "run.seed"),
    ("empty output", card("nuts").replace('sampler = "nuts"\n', 'sampler = "nuts"\noutput = ""\n'), "run.output"),
    ("unknown run key", card("nuts").replace('sampler = "nuts"\n', 'sampler = "nuts"\nthreads = 4\n'), "run.threads"),
    ("unknown top-level table", card("nuts", "[hmc]\nsteps = 3\n"), "hmc"),
    ("name with a space", card("nuts").replace('"fuzz"', '"my run"'), "name"),
    ("name a number", card("nuts").replace('"fuzz"', "3"), "name"),
    (
        "description a number",
        card("nuts").replace('name = "fuzz"\n', 'name = "fuzz"\ndescription = 3\n'),
        "description",
    ),
    ("hamiltonian not a table", card("nuts").replace(MODEL["free_field"], "hamiltonian = 3\n"), "hamiltonian"),
    ("preset and terms", card("nuts").replace("m2 = 0.5", "m2 = 0.5\nterms = []"), "hamiltonian"),
    ("unknown preset", card("nuts").replace('"free_field"', '"xy_model"'), "hamiltonian.preset"),
    ("unknown coupling", card("nuts").replace("m2 = 0.5", "m2 = 0.5\nlam = 2.0"), "hamiltonian.lam"),
    ("negative mass", card("nuts").replace("m2 = 0.5", "m2 = -0.5"), "m2"),
    ("infinite mass", card("nuts").replace("m2 = 0.5", "m2 = inf"), "m2"),
    ("NaN mass", card("nuts").replace("m2 = 0.5", "m2 = nan"), "m2"),
    ("mass a string", card("nuts").replace("m2 = 0.5", 'm2 = "heavy"'), "m2"),
    ("mass a boolean", card("nuts").replace("m2 = 0.5", "m2 = true"), "m2"),
    ("mass below float32's resolution", card("nuts").replace("m2 = 0.5", "m2 = 1e-30"), "hamiltonian.terms"),
    (
        "coupling beyond float32",
        card("nuts").replace('"free_field"\nm2 = 0.5', '"ising_dual"\nalpha = 1e30'),
        "ising_dual.alpha",
    ),
    (
        "Ising dual alpha too small",
        card("nuts").replace('"free_field"\nm2 = 0.5', '"ising_dual"\nalpha = 0.1'),
        "ising_dual.alpha",
    ),
    ("empty terms", with_terms("[]"), "hamiltonian.terms"),
    ("terms not tables", with_terms("[1, 2]"), "hamiltonian.terms[0]"),
    ("term without a type", with_terms("[{ beta = 1.0 }]"), "hamiltonian.terms[0].type"),
    ("unknown term type", with_terms('[{ type = "cubic" }]'), "hamiltonian.terms[0].type"),
    (
        "term without its coupling",
        with_terms('[{ type = "hopping" }, { type = "mass", m2 = 1.0 }]'),
        "hamiltonian.terms[0].beta",
    ),
    ("term with an unknown coupling", with_terms('[{ type = "mass", m2 = 1.0, mu = 2 }]'), "hamiltonian.terms[0].mu"),
    ("quadratic energy not positive", with_terms('[{ type = "gradient", kappa = 1.0 }]'), "hamiltonian.terms"),
    ("custom term without a function", with_terms('[{ type = "custom" }]'), "hamiltonian.terms[0].function"),
    ("custom term of a missing module", with_terms('[{ type = "custom", function = "nowhere:f" }]'), "function"),
    ("custom term not module:function", with_terms('[{ type = "custom", function = "f" }]'), "function"),
    ("custom term not callable", with_terms('[{ type = "custom", function = "math:pi" }]'), "function"),
    (
        "custom term whose module raises",
        with_terms('[{ type = "custom", function = "tests.custom_terms_broken:f" }]'),
        "function",
    ),
    (
        "custom term returning a field",
        with_terms('[{ type = "custom", function = "tests.custom_terms:field_valued" }]'),
        "custom",
    ),
    (
        "custom term that cannot trace",
        with_terms('[{ type = "custom", function = "tests.custom_terms:untraceable" }]'),
        "custom",
    ),
    (
        "custom name a number",
        with_terms('[{ type = "custom", function = "tests.custom_terms:quartic", name = 3 }]'),
        "hamiltonian.terms[0].name",
    ),
    ("settings table not a table", card("nuts", "nuts = 3\n"), "nuts"),
    ("unknown settings key", card("nuts", "[nuts]\nsteps = 3\n"), "nuts.steps"),
    ("forward objective without data", card("neuralrg", '[svi]\nobjective = "forward"\n'), "svi.objective"),
    ("pretraining without data", card("neuralrg", "[svi]\npretrain_steps = 100\n"), "svi.pretrain_steps"),
    ("growth stages not a list", card("neuralrg", "[svi]\ngrow = 3\n"), "svi.grow"),
    (
        "growth side too large",
        card("neuralrg").replace("[4, 4]", "[8, 8]") + "[[svi.grow]]\nside = 8\n",
        "svi.grow[0].side",
    ),
    ("free energy samples too few", card("neuralrg", "[free_energy]\nsamples = 2\n"), "free_energy.samples"),
    ("unknown free energy key", card("neuralrg", "[free_energy]\nbatch = 2\n"), "free_energy.batch"),
    (
        "path data on a neuralrg card, with a surrogate",
        card("neuralrg", '[data]\nsurrogate = "lognormal"\n'),
        "data.surrogate",
    ),
    ("wirg without a hamiltonian or data", card("surrogate", "[data]\nfields = 100\n"), "hamiltonian"),
    ("wirg surrogate beside a hamiltonian", card("wirg", '[data]\nsurrogate = "lognormal"\n'), "data.surrogate"),
    ("wirg holdout beside a hamiltonian", card("wirg", "[data]\nholdout = 0.3\n"), "data.holdout"),
    ("wirg data path and surrogate", card("surrogate", '[data]\nsurrogate = "lognormal"\npath = "x.npy"\n'), "data"),
    (
        "mirror images of skewed data",
        card("wirg", '[fit]\nmirror_images = true\ntransform = "shifted_log"\n'),
        "fit.mirror_images",
    ),
    ("too many fit levels", card("wirg", "[fit]\nlevels = 4\n"), "fit.levels"),
    ("ML steps off the record grid", card("wirg", "[fit]\nml_steps = 10\nml_record_every = 4\n"), "fit.ml_steps"),
    (
        "wirg samples not a multiple of the groups",
        card("wirg", "[generator]\nsamples = 10\ngroups = 4\n"),
        "generator.samples",
    ),
    ("a folded flow without q_sym", card("neuralrg", "[flow]\nfold = true\nsymmetric = false\n"), "flow.symmetric"),
]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A results directory written before the bad inputs, and the hash of each of its files."""
    root = tmp_path_factory.mktemp("watched")
    path = root / "tiny.toml"
    path.write_text(TINY)
    assert main(["run", str(path), "--out", str(root / "results"), "--quiet"]) == 0
    return root / "results", path, _hashes(root / "results")


def _hashes(directory: Path) -> dict:
    return {
        p.relative_to(directory): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.rglob("*")
        if p.is_file()
    }


def clear_error(capsys, *words: str) -> str:
    """The CLI's stderr: one ``rgppl: error:`` paragraph holding one of ``words`` (a field, a path), no traceback."""
    err = capsys.readouterr().err
    assert err.startswith("rgppl: error:") and "Traceback" not in err, err
    assert any(word in err for word in words), (words, err)
    return err


def refused(argv, field: str, capsys, watched) -> str:
    """Run the CLI; assert exit status 2, one clear paragraph naming ``field``, and the watched results intact."""
    assert main(argv) == 2
    err = clear_error(capsys, field)
    assert _hashes(watched[0]) == watched[2]
    return err


def write(tmp_path: Path, text, name: str = "card.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


@pytest.mark.parametrize("base, extra, field", list(setting_cases()))
def test_a_bad_setting_is_named(base, extra, field, tmp_path, capsys, watched):
    refused(["check", str(write(tmp_path, card(base, extra)))], field, capsys, watched)


@pytest.mark.parametrize("text, field", [pytest.param(text, field, id=name) for name, text, field in CARD_CASES])
def test_a_bad_card_is_named(text, field, tmp_path, capsys, watched):
    refused(["check", str(write(tmp_path, text))], field, capsys, watched)


def test_there_are_at_least_250_bad_inputs():
    assert (
        len(list(setting_cases()))
        + len(CARD_CASES)
        + len(DATA_CASES)
        + len(OUTPUT_CASES)
        + len(CHECKPOINT_CASES)
        + len(API_CASES)
        >= 250
    )


def test_a_card_that_cannot_be_read_is_named(tmp_path, capsys, watched):
    refused(["check", str(write(tmp_path, b'name = "\xff\xfe"\n'))], "not UTF-8", capsys, watched)
    refused(["check", str(tmp_path / "missing.toml")], "no such file", capsys, watched)
    (tmp_path / "folder.toml").mkdir()
    refused(["check", str(tmp_path / "folder.toml")], "no such file", capsys, watched)
    refused(["run", str(write(tmp_path, bytes(range(256)), "binary.toml"))], "card", capsys, watched)


def _npy(array) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


FIELDS = np.random.default_rng(0).normal(size=(40, 8, 8)).astype(np.float32)
DATA_CASES = [  # (id, file name, file contents or None for no file, the words the error must hold)
    ("missing file", "fields.npy", None, "no such file"),
    ("garbage .npy", "fields.npy", b"not an array at all", "cannot be read"),
    ("truncated .npy", "fields.npy", _npy(FIELDS)[:300], "cannot be read"),
    ("pickled objects", "fields.npy", _npy(np.array([{"phi": 1}] * 40, dtype=object)), "cannot be read"),
    ("garbage .npz", "fields.npz", b"PK\x03\x04 broken zip", "cannot be read"),
    ("garbage netCDF", "fields.nc", b"\x89HDF broken", "cannot be read"),
    ("unknown suffix", "fields.txt", b"1 2 3", ".npy, .npz or .nc"),
    ("complex fields", "fields.npy", _npy(FIELDS.astype(np.complex64)), "complex"),
    ("text fields", "fields.npy", _npy(np.full((40, 8, 8), "a")), "text"),
    ("boolean fields", "fields.npy", _npy(FIELDS > 0), "boolean"),
    ("NaN in the fields", "fields.npy", _npy(np.where(FIELDS > 2, np.nan, FIELDS)), "finite values only"),
    ("beyond float32", "fields.npy", _npy(FIELDS.astype(np.float64) * 1e300), "float32's range"),
    ("one field", "fields.npy", _npy(FIELDS[:1]), "at least two fields"),
    ("fields of another lattice", "fields.npy", _npy(FIELDS[:, :4, :4]), "lattice shape"),
    ("a flat array", "fields.npy", _npy(FIELDS.ravel()), "shape [n, Lx, Ly]"),
]


@pytest.mark.parametrize("name, contents, words", [pytest.param(n, c, w, id=i) for i, n, c, w in DATA_CASES])
@pytest.mark.parametrize("sampler", ["wirg", "neuralrg"])
def test_a_bad_data_file_is_named_at_check_time(sampler, name, contents, words, tmp_path, capsys, watched):
    if contents is not None:
        write(tmp_path, contents, name)
    text = (
        card("wirg", f'[data]\npath = "{name}"\n')
        if sampler == "wirg"
        else card("neuralrg", f'[data]\npath = "{name}"\n').replace("[4, 4]", "[8, 8]")
    )
    err = refused(["check", str(write(tmp_path, text))], "data.path", capsys, watched)
    assert words in err


OUTPUT_CASES = ["a file", "under a file", "foreign directory", "another card's run", "unreadable run.json"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_a_bad_output_directory_is_refused_before_anything_is_written(case, tmp_path, capsys, watched):
    results, tiny, _ = watched
    out = tmp_path / "out"
    resume = []
    if case == "a file":
        out.write_text("mine")
    elif case == "under a file":
        (tmp_path / "file").write_text("mine")
        out = tmp_path / "file" / "out"
    elif case == "foreign directory":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        resume = ["--resume"]
    elif case == "another card's run":
        shutil.copytree(results, out)
        tiny = write(tmp_path, TINY.replace("m2 = 0.5", "m2 = 0.7"), "other.toml")
        resume = ["--resume"]
    else:
        shutil.copytree(results, out)
        (out / "run.json").write_bytes(b"\xff{")
        resume = ["--resume"]
    before = _hashes(out) if out.is_dir() else None
    assert main(["run", str(tiny), "--out", str(out), "--quiet", *resume]) == 2
    clear_error(capsys, "--resume" if resume else "out", str(out))
    if before is not None:
        assert _hashes(out) == before
    assert _hashes(watched[0]) == watched[2]


def _each_file(pattern: str, damage):
    """A damage applied to every file of the run's checkpoint whose path matches ``pattern``."""

    def apply(checkpoint: Path) -> None:
        for path in [p for p in checkpoint.rglob(pattern) if p.is_file()]:
            path.write_bytes(damage(path.read_bytes()))

    return apply


def _unfinished(checkpoint: Path) -> None:  # killed while Orbax wrote its only step: the step is still temporary
    (step,) = checkpoint.iterdir()
    step.rename(checkpoint / f"{step.name}.orbax-checkpoint-tmp-0")


def _a_file(checkpoint: Path) -> None:  # a file where the directory belongs (an earlier rgppl's checkpoint.npz)
    shutil.rmtree(checkpoint)
    checkpoint.write_bytes(b"PK\x03\x04")


CHECKPOINT_CASES = {
    "a file": _a_file,
    "empty": lambda checkpoint: [shutil.rmtree(p) for p in checkpoint.iterdir()],
    "unfinished": _unfinished,
    "truncated": _each_file("state/**/d/*", lambda data: data[: len(data) // 2]),  # the state's arrays cut in half
    "garbage": _each_file("_METADATA", lambda data: b"garbage"),
    "without its description": lambda checkpoint: [shutil.rmtree(p) for p in checkpoint.glob("*/meta")],
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_a_damaged_checkpoint_is_refused_on_resume(case, tmp_path, capsys, watched):
    results, tiny, _ = watched
    out = tmp_path / "out"
    shutil.copytree(results, out)
    CHECKPOINT_CASES[case](out / "checkpoint")
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--resume"]) == 2
    clear_error(capsys, "checkpoint")
    assert _hashes(watched[0]) == watched[2]


def _api_cases():
    import jax.numpy as jnp

    from rgppl import (
        MIS,
        WIRG,
        FlowSettings,
        Gradient,
        Hamiltonian,
        Lattice,
        NUTSSettings,
        free_field,
        ising_dual,
        phi4_hopping,
        sample,
    )
    from rgppl.hamiltonians import Custom
    from rgppl.infer import train_flow
    from rgppl.wirg import fit_wirg

    h = free_field(4)
    data = np.random.default_rng(1).normal(size=(40, 4, 4)).astype(np.float32)
    quick = NUTSSettings(warmup=10, samples=10, chains=1)
    return [
        ("seed -1", lambda: sample(h, quick, seed=-1), "seed"),
        ("seed 2^32", lambda: sample(h, quick, seed=2**32), "seed"),
        ("seed a float", lambda: sample(h, quick, seed=1.5), "seed"),
        ("seed a string", lambda: sample(h, quick, seed="0"), "seed"),
        ("samples a string", lambda: NUTSSettings(samples="100"), "nuts.samples"),
        ("target acceptance a string", lambda: NUTSSettings(target_accept="0.8"), "nuts.target_accept"),
        ("target acceptance 1", lambda: NUTSSettings(target_accept=1.0), "nuts.target_accept"),
        ("mass a string", lambda: free_field(4, m2="heavy"), "m2"),
        ("mass zero", lambda: free_field(4, m2=0.0), "m2"),
        ("beta infinite", lambda: phi4_hopping(4, float("inf")), "beta"),
        ("lattice of odd rank", lambda: Lattice((4, 4, 4)), "shape"),
        ("lattice side one", lambda: Lattice(1), "shape"),
        ("a term that is not a term", lambda: Hamiltonian(Lattice(4), ("mass",)), "hamiltonian.terms"),
        ("no terms", lambda: Hamiltonian(Lattice(4), ()), "hamiltonian.terms"),
        (
            "custom term returning a field",
            lambda: Hamiltonian(Lattice(4), (Gradient(1.0), Custom(lambda p: p))),
            "custom",
        ),
        ("custom term not callable", lambda: Custom(3.0), "custom.fn"),
        ("a flow on an odd lattice", lambda: train_flow(free_field(6), FlowSettings()), "lattice.shape"),
        ("a flow on data of another lattice", lambda: train_flow(h, FlowSettings(), data=np.zeros((8, 8, 8))), "data"),
        ("a flow on complex data", lambda: train_flow(h, FlowSettings(), data=data.astype(complex)), "data"),
        ("a WIRG fit on three fields", lambda: fit_wirg(data[:3]), "data"),
        ("a WIRG fit on strings", lambda: fit_wirg(np.full((40, 4, 4), "a")), "data"),
        ("a WIRG fit on 1e300", lambda: fit_wirg(data.astype(np.float64) * 1e300), "data"),
        ("a WIRG fit on a 6 x 6 lattice", lambda: fit_wirg(np.zeros((40, 6, 6))), "lattice"),
        ("MIS with settings for NUTS", lambda: sample(h, MIS(None, quick), seed=0), "mis"),
        ("WIRG without a model", lambda: sample(h, WIRG(None), seed=0), "model"),
        ("a config that is no sampler", lambda: sample(h, "nuts", seed=0), "config"),
        ("an Ising dual of negative beta's alpha", lambda: ising_dual(4, alpha=-1.0), "ising_dual.alpha"),
        ("a lattice of float sides", lambda: Lattice((4.0, 4.0)), "shape"),
        ("a field of the wrong shape", lambda: h.energy(jnp.zeros((3, 3))), "phi.shape"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("call, field", [pytest.param(call, field, id=name) for name, call, field in API_CASES])
def test_a_bad_api_call_raises_one_input_error_naming_the_field(call, field):
    with pytest.raises(InputError) as info:
        call()
    assert field in str(info.value)


def test_a_run_refused_before_it_computes_leaves_no_directory(tmp_path, capsys, watched):
    """Ten fields load and pass the card's checks, but are too few for the fit: the run stops at the fit, and the
    directory it had made for its results is gone."""
    np.save(tmp_path / "few.npy", FIELDS[:10])
    text = card("surrogate", '[data]\npath = "few.npy"\n')
    out = tmp_path / "out"
    refused(["run", str(write(tmp_path, text)), "--out", str(out), "--quiet"], "at least", capsys, watched)
    assert not out.exists()


def test_a_full_disk_is_one_clear_error_and_leaves_no_partial_file(tmp_path, capsys):
    """On a 64 KiB tmpfs the results do not fit: one paragraph, exit status 2, and no half-written file."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root, which this machine does not give")
    try:
        assert main(["run", str(write(tmp_path, TINY)), "--out", str(disk / "out"), "--quiet"]) == 2
        assert clear_error(capsys, "the disk is full").startswith("rgppl: error: the disk is full")
        assert not [p for p in disk.rglob("*") if ".partial-" in p.name]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_mesh_whose_batch_axis_is_explicit_is_refused_with_what_would_work():
    with jax.set_mesh(jax.make_mesh((1,), ("batch",))), pytest.raises(InputError, match="AxisType.Auto"):
        sample(phi4_hopping(4), ClusterSettings(chains=2, warmup=10, samples=10), progress=False)
