"""One verb for every sampler: ``sample(hamiltonian, config, *, seed, checkpoint=None)`` returns an ArviZ DataTree.

The type of ``config`` selects the sampler:

| config | sampler |
|---|---|
| ``NUTSSettings(...)`` | NumPyro's NUTS on ``p ∝ exp(-E)`` (:func:`rgppl.mcmc.run_nuts`) |
| ``ClusterSettings(...)`` | Metropolis + Swendsen-Wang (Ising-dual: spins) (:func:`rgppl.ensembles.run_cluster`) |
| ``MIS(trained_flow, MISSettings(...))`` | independence sampler, the flow as proposal (:func:`rgppl.infer.run_mis`) |
| ``NeuTra(trained_flow, NUTSSettings(...))`` | NUTS in the flow's latent space (:func:`rgppl.infer.run_neutra`) |
| ``WIRG(fitted_model, GeneratorSettings())`` | coarse-to-fine generation (:func:`rgppl.wirg.generate`) |

Every DataTree follows :mod:`rgppl.diagnostics`' contract (``posterior.phi[chain, draw, x, y]`` with the
scalar observables; ``sample_stats`` under ArviZ's names), so :func:`rgppl.diagnostics.compare` puts any of
them side by side.  ``checkpoint`` (a directory, :mod:`rgppl.checkpoints`) is written after every chunk, and
``resume=True`` continues it exactly, whatever the sampler.
"""

from dataclasses import dataclass
from functools import singledispatch

from rgppl.ensembles import ClusterSettings, run_cluster
from rgppl.errors import InputError, require
from rgppl.infer.independence import MISSettings, run_mis
from rgppl.infer.neutra import run_neutra
from rgppl.infer.training import TrainedFlow
from rgppl.loop import CHECKPOINT_SECONDS, checkpointing_every
from rgppl.mcmc import NUTSSettings, run_nuts
from rgppl.precision import computing_in
from rgppl.wirg.model import WIRGModel
from rgppl.wirg.sampler import GeneratorSettings, generate


def _require_parts(config, name: str, fitted: type, settings: type) -> None:
    """The config's first field is a ``fitted`` object (a trained flow, a fitted model), its ``settings`` of their
    class."""
    first = getattr(config, "flow", None) if hasattr(config, "flow") else config.model
    where = "flow" if hasattr(config, "flow") else "model"
    require(
        isinstance(first, fitted),
        f"{name}.{where}",
        type(first).__name__,
        f"a {fitted.__name__} ({'rgppl.train_flow' if fitted is TrainedFlow else 'rgppl.fit_wirg'} makes one)",
    )
    require(
        isinstance(config.settings, settings),
        f"{name}.settings",
        type(config.settings).__name__,
        f"a {settings.__name__}",
    )


@dataclass(frozen=True)
class MIS:
    """The Metropolized independence sampler with the trained flow ``flow`` as its proposal."""

    flow: TrainedFlow
    settings: MISSettings = MISSettings()

    def __post_init__(self):
        _require_parts(self, "mis", TrainedFlow, MISSettings)


@dataclass(frozen=True)
class NeuTra:
    """NUTS in the latent space of the trained flow ``flow`` (stock NumPyro ``NeuTraReparam``)."""

    flow: TrainedFlow
    settings: NUTSSettings = NUTSSettings()

    def __post_init__(self):
        _require_parts(self, "neutra", TrainedFlow, NUTSSettings)


@dataclass(frozen=True)
class WIRG:
    """The coarse-to-fine generator of a fitted wavelet conditional model; ``coarse`` fixes a coarse field
    (super-resolution, see :func:`rgppl.wirg.generate`)."""

    model: WIRGModel
    settings: GeneratorSettings = GeneratorSettings()
    coarse: object = None

    def __post_init__(self):
        _require_parts(self, "wirg", WIRGModel, GeneratorSettings)


def _same_model(hamiltonian, trained: TrainedFlow) -> None:
    require(
        trained.hamiltonian.describe() == hamiltonian.describe(),
        "hamiltonian",
        hamiltonian.name,
        f"the flow was trained on {trained.hamiltonian.describe()}; sample the model it was trained on",
    )


@singledispatch
def _run(config, hamiltonian, seed, checkpoint, resume, progress):
    raise InputError(
        "config",
        type(config).__name__,
        "one of NUTSSettings, ClusterSettings, MIS(flow), NeuTra(flow) or WIRG(model) (rgppl.sampling)",
    )


@_run.register
def _(config: NUTSSettings, hamiltonian, seed, checkpoint, resume, progress):
    return run_nuts(hamiltonian, config, seed=seed, checkpoint=checkpoint, resume=resume, progress=progress)


@_run.register
def _(config: ClusterSettings, hamiltonian, seed, checkpoint, resume, progress):
    return run_cluster(hamiltonian, config, seed=seed, checkpoint=checkpoint, resume=resume, progress=progress)


@_run.register
def _(config: MIS, hamiltonian, seed, checkpoint, resume, progress):
    _same_model(hamiltonian, config.flow)
    return run_mis(config.flow, config.settings, seed=seed, checkpoint=checkpoint, resume=resume, progress=progress)


@_run.register
def _(config: NeuTra, hamiltonian, seed, checkpoint, resume, progress):
    _same_model(hamiltonian, config.flow)
    return run_neutra(config.flow, config.settings, seed=seed, checkpoint=checkpoint, resume=resume, progress=progress)


@_run.register
def _(config: WIRG, hamiltonian, seed, checkpoint, resume, progress):
    return generate(
        config.model,
        hamiltonian,
        config.settings,
        seed=seed,
        coarse=config.coarse,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
    )


def sample(
    hamiltonian,
    config,
    *,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    precision: str = "float32",
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
):
    """Draw from ``p(phi) ∝ exp(-E(phi))`` of ``hamiltonian`` with the sampler ``config`` selects; a DataTree.

    ``hamiltonian`` may be ``None`` only for :class:`WIRG` on fields of unknown energy.  One root key
    ``PRNGKey(seed)`` per run: the same seed gives the same draws, on any number of devices
    (:mod:`rgppl.mesh`).  ``precision``: ``"float32"`` or ``"float64"`` (:mod:`rgppl.precision`).
    ``checkpoint=PATH`` writes checkpoints there, at most one per ``checkpoint_seconds`` within a stage and one at
    each stage's end (:func:`rgppl.loop.checkpointing_every`).
    """
    require(
        hamiltonian is not None or isinstance(config, WIRG),
        "hamiltonian",
        None,
        "a Hamiltonian (only the WIRG generator samples fields of unknown energy)",
    )
    with computing_in(precision), checkpointing_every(checkpoint_seconds):
        return _run(config, hamiltonian, seed, checkpoint, resume, progress)
