"""Model cards: TOML files that describe a lattice, a Hamiltonian and what to run.

A card has ``name`` (``[A-Za-z0-9_.-]+``), an optional ``description``, ``[lattice] shape`` (``L`` or
``[Lx, Ly]``), a ``[hamiltonian]`` (a ``preset`` with its couplings, or ``terms``, a list of term tables
such as ``{ type = "hopping", beta = 0.68 }`` or ``{ type = "custom", function = "package.module:fn" }``),
``[run] sampler`` (``nuts``, ``cluster``, ``neuralrg`` or ``wirg``), ``seed``, ``output``, ``precision``
(``float32`` or ``float64``, :mod:`rgppl.precision`) and ``checkpoint_seconds`` (the least wall time between two
checkpoints within a stage, :func:`rgppl.loop.checkpointing_every`), and the
optional sections of its sampler's settings.  Every key and its default is listed in ``docs/cards.md``,
which ``rgppl cards --reference`` generates from the settings classes (:mod:`rgppl.card_reference`).

Every key is checked: an unknown or ill-typed key is an :class:`InputError` naming the card, the field,
the value and what is valid.  A ``wirg`` card on fields of unknown energy has no ``[hamiltonian]``; its
``[data]`` gives a path or a surrogate (:mod:`rgppl.wirg.sources`).
"""

import importlib
import inspect
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, is_dataclass
from pathlib import Path

from rgppl.ensembles import ClusterSettings, check_cluster_model, ising_dual_only, load_ensemble
from rgppl.errors import InputError, is_integer, is_number, require, require_integer, require_seed
from rgppl.flows import FlowSettings
from rgppl.hamiltonians import PRESETS, TERM_TYPES, Custom, Hamiltonian
from rgppl.infer import MISSettings, SVISettings
from rgppl.lattice import Lattice
from rgppl.loop import CHECKPOINT_SECONDS, require_checkpoint_seconds
from rgppl.mcmc import NUTSSettings
from rgppl.precision import PRECISIONS
from rgppl.storage import fingerprint
from rgppl.wirg.fit import PER_SCALE, FitSettings
from rgppl.wirg.sampler import GeneratorSettings
from rgppl.wirg.sources import DataSource

SAMPLERS = ("nuts", "cluster", "neuralrg", "wirg")
BUILT_IN_CARDS = Path(__file__).parent / "models"  # shipped inside the package; models/ at the top links here
RENAMED = {  # card section: {old key: new key}, answered with an error that names the new key
    "cluster": {"chunk": "checkpoint_every"},
    "fit": {"chunk": "batch", "symmetric": "mirror_images"},
    "generator": {"chains": "groups", "fields": "samples"},
    "mis": {"chunk": "checkpoint_every"},
    "flow": {"train_symmetric": "svi.train_q_sym"},
    "svi": {"data": "data.path"},
    "free_energy": {"draws": "samples"},
}
TOP_LEVEL = {
    "name",
    "description",
    "lattice",
    "hamiltonian",
    "run",
    "nuts",
    "cluster",
    "flow",
    "svi",
    "free_energy",
    "mis",
    "neutra",
    "data",
    "fit",
    "generator",
}


@dataclass(frozen=True)
class Card:
    """A validated model card."""

    path: Path
    name: str
    description: str
    lattice: Lattice
    hamiltonian: Hamiltonian | None  # None: a WIRG card on data of unknown energy
    sampler: str
    seed: int
    output: Path
    nuts: NUTSSettings
    cluster: ClusterSettings
    flow: FlowSettings = FlowSettings()
    svi: SVISettings = SVISettings()
    mis: MISSettings = MISSettings()
    neutra: NUTSSettings = NUTSSettings(warmup=300, samples=1000)
    free_energy_samples: int = 16384
    grow: tuple = ()  # ((side, SVISettings), ...): flows trained on smaller lattices first
    data: Path | None = None
    source: DataSource = DataSource()
    fit: FitSettings = FitSettings()
    generator: GeneratorSettings = GeneratorSettings()
    compare_nuts: bool = False
    precision: str = "float32"
    checkpoint_seconds: float = CHECKPOINT_SECONDS

    def sections(self) -> dict:
        """The settings this card's sampler uses, by card section, as dataclasses (``[svi]`` with its
        ``[[svi.grow]]`` stages, a NeuralRG card's ``[data]`` and ``[free_energy]``, as plain values)."""
        if self.sampler == "nuts":
            return {"nuts": self.nuts}
        if self.sampler == "cluster":
            return {"cluster": self.cluster}
        if self.sampler == "neuralrg":
            svi = {**asdict(self.svi), "grow": [{"side": side, **asdict(settings)} for side, settings in self.grow]}
            return {
                "data": {"path": None if self.data is None else str(self.data)},
                "flow": self.flow,
                "svi": svi,
                "free_energy": {"samples": self.free_energy_samples},
                "mis": self.mis,
                "neutra": self.neutra,
                "nuts": self.nuts,
            }
        sections = {"data": self.source, "fit": self.fit, "generator": self.generator}
        if self.hamiltonian is not None:
            sections["cluster"] = self.cluster
        if self.compare_nuts:
            sections["nuts"] = self.nuts
        return sections

    def identity(self) -> str:
        """What a resumed run must share with the run it continues: a fingerprint of the resolved card
        without its output and sample counts (a finished run may be extended to more samples) and of the
        source file of every custom term."""

        def without_counts(value):
            if isinstance(value, dict):
                return {
                    k: without_counts(v)
                    for k, v in value.items()
                    if k not in ("samples", "output", "checkpoint_seconds")
                }
            return [without_counts(v) for v in value] if isinstance(value, list) else value

        terms = () if self.hamiltonian is None else self.hamiltonian.terms
        sources = [
            Path(inspect.getsourcefile(t.fn)).read_bytes().decode(errors="replace")
            for t in terms
            if isinstance(t, Custom) and inspect.getsourcefile(t.fn)
        ]
        return fingerprint(without_counts(self.resolved()), sources)

    def resolved(self) -> dict:
        """Every setting of the card with its default filled in: the ``card`` of a run's record."""
        sections = {name: asdict(value) if is_dataclass(value) else value for name, value in self.sections().items()}
        return {
            "name": self.name,
            "description": self.description,
            "lattice": {"shape": list(self.lattice.shape)},
            "hamiltonian": None if self.hamiltonian is None else self.hamiltonian.describe(),
            "run": {
                "sampler": self.sampler,
                "seed": self.seed,
                "output": str(self.output),
                "precision": self.precision,
                "checkpoint_seconds": self.checkpoint_seconds,
            },
            **sections,
        }


def _table(data: dict, key: str, required: bool = True) -> dict:
    if key not in data:
        require(not required, key, None, f"the card must have a [{key}] table")
        return {}
    require(isinstance(data[key], dict), key, data[key], f"[{key}] must be a table")
    return data[key]


def _only(table: dict, allowed, where: str) -> None:
    for key in table:
        require(key in allowed, f"{where}.{key}" if where else key, table[key], f"valid keys are {sorted(allowed)}")


def _couplings(params: dict, allowed: list[str], where: str) -> dict:
    _only(params, allowed, where)
    for key, value in params.items():
        require(is_number(value), f"{where}.{key}", value, "a coupling must be a finite number")
    return params


def _preset(hamiltonian: dict, shape) -> Hamiltonian:
    preset = hamiltonian["preset"]
    require(preset in PRESETS, "hamiltonian.preset", preset, f"valid presets are {sorted(PRESETS)}")
    build = PRESETS[preset]
    allowed = [p for p in inspect.signature(build).parameters if p != "shape"]
    couplings = _couplings({k: v for k, v in hamiltonian.items() if k != "preset"}, allowed, "hamiltonian")
    return build(shape, **couplings)


def _import_function(spec: str, where: str):
    ok = isinstance(spec, str) and re.fullmatch(r"[\w.]+:[\w.]+", spec or "")
    require(bool(ok), where, spec, "give an importable function as 'package.module:function'")
    module_name, attribute = spec.split(":")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as error:  # noqa: BLE001 -- the user's module may raise anything while it is imported
        raise InputError(
            where,
            spec,
            f"it could not be imported ({type(error).__name__}: {error}); give "
            "'package.module:function' of a module that imports cleanly",
        ) from None
    require(callable(target), where, spec, "it must name a callable phi[Lx, Ly] -> scalar")
    return target


def _term(entry, index: int):
    where = f"hamiltonian.terms[{index}]"
    require(isinstance(entry, dict), where, entry, "each term is a table with a 'type' key")
    kind = entry.get("type")
    require(kind in TERM_TYPES, f"{where}.type", kind, f"valid term types are {sorted(TERM_TYPES)}")
    params = {k: v for k, v in entry.items() if k != "type"}
    if kind == "custom":
        _only(params, {"function", "name"}, where)
        require("function" in params, f"{where}.function", None, "a custom term needs function = 'module:function'")
        name = params.get("name", "custom")
        require(isinstance(name, str), f"{where}.name", name, "a string")
        return Custom(_import_function(params["function"], f"{where}.function"), name=name)
    cls = TERM_TYPES[kind]
    couplings = {name: f for name, f in cls.__dataclass_fields__.items() if name not in ("kind", "confining")}
    missing = [name for name, f in couplings.items() if name not in params and f.default is MISSING]
    require(
        not missing,
        f"{where}.{missing[0] if missing else ''}",
        None,
        f"a {kind} term needs {' and '.join(missing)}, "
        f'e.g. {{ type = "{kind}", {missing[0] if missing else ""} = 1.0 }}',
    )
    return cls(**_couplings(params, list(couplings), where))


def _lattice(data: dict) -> Lattice:
    lattice = _table(data, "lattice")
    _only(lattice, {"shape"}, "lattice")
    require("shape" in lattice, "lattice.shape", None, "give shape = L or shape = [Lx, Ly]")
    return Lattice(lattice["shape"])


def _hamiltonian(data: dict, name: str, lattice: Lattice) -> Hamiltonian:
    hamiltonian = _table(data, "hamiltonian")
    has_preset, has_terms = "preset" in hamiltonian, "terms" in hamiltonian
    require(has_preset != has_terms, "hamiltonian", sorted(hamiltonian), "give exactly one of 'preset' or 'terms'")
    if has_preset:
        return _preset(hamiltonian, lattice.shape)
    _only(hamiltonian, {"terms"}, "hamiltonian")
    terms = hamiltonian["terms"]
    require(isinstance(terms, list) and len(terms) > 0, "hamiltonian.terms", terms, "a non-empty list of term tables")
    return Hamiltonian(lattice, tuple(_term(t, i) for i, t in enumerate(terms)), name=name)


def _not_renamed(table: dict, section: str) -> None:
    """An old key of ``[section]`` is an error that names its new one (``RENAMED``)."""
    for old, new in RENAMED.get(section, {}).items():
        new = new if "." in new else f"{section}.{new}"
        require(
            old not in table,
            f"{section}.{old}",
            table.get(old),
            f"the key was renamed: write {new} (CHANGELOG.md lists every rename)",
        )


def _settings(data: dict, section: str, cls, **defaults):
    table = _table(data, section, required=False)
    _not_renamed(table, section.split("[")[0])
    _only(table, cls.__dataclass_fields__, section)
    try:
        return cls(**{**defaults, **table})
    except InputError as error:  # the settings name their own fields; report them under this section
        field = error.field.split(".", 1)[-1]
        raise InputError(f"{section}.{field}", error.value, error.valid) from None


def _data_path(value, where: str, path: Path, lattice: Lattice) -> Path:
    """The data file ``value`` (relative to the card), checked now: it exists and loads as fields of ``lattice``."""
    require(isinstance(value, str) and value != "", where, value, "a path to a .npy/.npz/.nc file")
    resolved = (path.parent / value).resolve()
    try:
        load_ensemble(resolved, lattice)
    except InputError as error:
        raise InputError(where, error.value, error.valid) from None
    return resolved


def _wirg_sections(data: dict, lattice: Lattice, hamiltonian: Hamiltonian | None, path: Path) -> dict:
    lattice.require_power_of_two("the wavelet hierarchy")
    table = dict(_table(data, "data", required=False))
    if "path" in table:
        table["path"] = _data_path(table["path"], "data.path", path, lattice)
    source = _settings({"data": table}, "data", DataSource)
    source.check(hamiltonian)
    if hamiltonian is not None:
        check_cluster_model(hamiltonian)  # the reference ensemble (and the training data unless [data] gives it)
    fit_table = dict(_table(data, "fit", required=False))
    for key in PER_SCALE:
        if isinstance(fit_table.get(key), list):
            fit_table[key] = tuple(fit_table[key])
    fit = _settings({"fit": fit_table}, "fit", FitSettings)
    fit.resolved_levels(lattice.shape[0])
    return {
        "source": source,
        "fit": fit,
        "generator": _settings(data, "generator", GeneratorSettings),
        "compare_nuts": "nuts" in data,
    }


def _growth_stages(stages, svi: SVISettings, flow: FlowSettings, lattice: Lattice, hamiltonian: Hamiltonian) -> tuple:
    """``[[svi.grow]]``: ``((side, SVISettings), ...)``, sides powers of two increasing below the card's."""
    require(
        isinstance(stages, list) and all(isinstance(stage, dict) for stage in stages),
        "svi.grow",
        stages,
        "a list of [[svi.grow]] tables, each with a side and SVI settings",
    )
    grow, smallest = [], 4
    for i, stage in enumerate(stages):
        where, stage = f"svi.grow[{i}]", dict(stage)
        side = stage.pop("side", None)
        valid = (
            f"a power of two from {smallest} (4, or larger than the stage before) "
            f"and below the lattice's side {lattice.shape[0]}"
        )
        require(
            is_integer(side) and smallest <= side < lattice.shape[0] and side & (side - 1) == 0,
            f"{where}.side",
            side,
            valid,
        )
        flow.resolved_levels(Lattice(side))
        settings = _settings({where: stage}, where, SVISettings, **asdict(svi))
        if not ising_dual_only(hamiltonian):
            require(
                not settings.trains_on_data,
                f"{where}.pretrain_steps",
                settings.pretrain_steps,
                "0 with the reverse objective: only the Ising dual draws data on a smaller lattice (its spins)",
            )
        grow.append((side, settings))
        smallest = 2 * side
    return tuple(grow)


def _neuralrg_sections(data: dict, lattice: Lattice, hamiltonian: Hamiltonian, path: Path) -> dict:
    flow = _settings(data, "flow", FlowSettings)
    flow.resolved_levels(lattice)
    svi_table = dict(_table(data, "svi", required=False))
    _not_renamed(svi_table, "svi")
    stages = svi_table.pop("grow", [])
    svi = _settings({"svi": svi_table}, "svi", SVISettings)
    grow = _growth_stages(stages, svi, flow, lattice, hamiltonian)
    data_table = _table(data, "data", required=False)
    _only(data_table, {"path"}, "data")
    data_file = _data_path(data_table["path"], "data.path", path, lattice) if "path" in data_table else None
    if data_file is None and not ising_dual_only(hamiltonian):
        require(
            svi.objective == "reverse",
            "svi.objective",
            svi.objective,
            "the forward and mixed objectives train on data: give [data] path = 'fields.npy'",
        )
        require(
            svi.pretrain_steps == 0,
            "svi.pretrain_steps",
            svi.pretrain_steps,
            "pretraining is maximum likelihood on data: give [data] path = 'fields.npy'",
        )
    free_energy = _table(data, "free_energy", required=False)
    _not_renamed(free_energy, "free_energy")
    _only(free_energy, {"samples"}, "free_energy")
    samples = free_energy.get("samples", 16384)
    require_integer("free_energy.samples", samples, 16)
    return {
        "flow": flow,
        "svi": svi,
        "grow": grow,
        "mis": _settings(data, "mis", MISSettings),
        "neutra": _settings(data, "neutra", NUTSSettings, warmup=300, samples=1000),
        "free_energy_samples": samples,
        "data": data_file,
    }


def parse_card(data: dict, path: Path) -> Card:
    """Validate a card's parsed TOML ``data``; ``path`` is only used for messages and defaults."""
    _only(data, TOP_LEVEL, "")
    name = data.get("name")
    require(
        isinstance(name, str) and re.fullmatch(r"[\w.-]+", name or "") is not None,
        "name",
        name,
        "a card needs name = '...' made of letters, digits, '_', '-', '.'",
    )
    description = data.get("description", "")
    require(isinstance(description, str), "description", description, "a string")
    lattice = _lattice(data)
    run = _table(data, "run")
    _only(run, {"sampler", "seed", "output", "precision", "checkpoint_seconds"}, "run")
    sampler = run.get("sampler")
    require(sampler in SAMPLERS, "run.sampler", sampler, f"valid samplers are {list(SAMPLERS)}")
    seed = require_seed(run.get("seed", 0), "run.seed")
    output = run.get("output", f"results/{name}")
    require(isinstance(output, str) and output != "", "run.output", output, "a directory path")
    precision = run.get("precision", "float32")
    require(precision in PRECISIONS, "run.precision", precision, f"one of {PRECISIONS}")
    checkpoint_seconds = require_checkpoint_seconds(
        run.get("checkpoint_seconds", CHECKPOINT_SECONDS), "run.checkpoint_seconds"
    )
    require(
        "hamiltonian" in data or sampler == "wirg",
        "hamiltonian",
        None,
        "the card must have a [hamiltonian] table (only sampler = 'wirg' learns fields of unknown energy)",
    )
    hamiltonian = _hamiltonian(data, name, lattice) if "hamiltonian" in data else None
    if sampler == "cluster":
        check_cluster_model(hamiltonian)
    sections = {"neuralrg": _neuralrg_sections, "wirg": _wirg_sections}
    extra = sections[sampler](data, lattice, hamiltonian, path) if sampler in sections else {}
    return Card(
        path,
        name,
        description,
        lattice,
        hamiltonian,
        sampler,
        seed,
        Path(output),
        _settings(data, "nuts", NUTSSettings),
        _settings(data, "cluster", ClusterSettings),
        **extra,
        precision=precision,
        checkpoint_seconds=checkpoint_seconds,
    )


def resolve_card(name) -> Path:
    """A card path as given, or a built-in card by name (``rgppl cards`` lists them)."""
    path = Path(name)
    built_in = BUILT_IN_CARDS / f"{path.stem}.toml"
    return built_in if not path.is_file() and built_in.is_file() else path


def load_card(path) -> Card:
    """Read and validate the card at ``path``, or the built-in card of that name; every problem is an
    :class:`InputError` naming the card."""
    path = resolve_card(path)
    if not path.is_file():
        raise InputError(
            "card", str(path), "no such file; give the path of a .toml model card, or a built-in card's name"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError("card", str(path), f"it is not valid TOML ({error})") from None
    except UnicodeDecodeError as error:
        raise InputError("card", str(path), f"it is not UTF-8 text ({error}); save the card as UTF-8") from None
    except OSError as error:
        raise InputError("card", str(path), f"it cannot be read ({error.strerror})") from None
    try:
        return parse_card(data, path)
    except InputError as error:
        raise error.located(str(path)) from None
