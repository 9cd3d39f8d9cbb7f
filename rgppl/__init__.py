"""rgppl: renormalization-group-inspired probabilistic inference on lattice field theories (JAX + NumPyro).

The public API, listed once.  A model is a :class:`Hamiltonian` (a lattice and a sum of terms, or a preset);
:func:`sample` draws from it with the sampler its config selects and returns an ArviZ DataTree;
:func:`summary` and :func:`compare` read DataTrees against :func:`exact_observables`.  NeuralRG flows are
trained with :func:`train_flow` (an :class:`AutoNeuralRG` guide) and bound the free energy with
:func:`free_energy`; the wavelet conditional RG learns fields scale by scale with :func:`fit_wirg`.
Model cards (TOML) are read by :func:`load_card` and run by the ``rgppl`` command; each run writes a
record (:func:`read_record`).
"""

from importlib.metadata import PackageNotFoundError, version

from rgppl.cards import Card, load_card
from rgppl.diagnostics import compare, summary
from rgppl.ensembles import ClusterSettings, reference_ensemble
from rgppl.errors import InputError, SamplingDiverged
from rgppl.exact import exact_observables
from rgppl.flows import AutoNeuralRG, FlowSettings
from rgppl.hamiltonians import (
    Custom,
    DoubleWell,
    Gradient,
    Hamiltonian,
    Hopping,
    IsingDual,
    Mass,
    Quartic,
    free_field,
    ising_dual,
    phi4_hopping,
    phi4_lattice_qft,
)
from rgppl.infer import MISSettings, SVISettings, TrainedFlow, free_energy, grow, train_flow
from rgppl.lattice import Lattice
from rgppl.mcmc import NUTSSettings
from rgppl.record import read_record
from rgppl.sampling import MIS, WIRG, NeuTra, sample
from rgppl.wirg import FitSettings, GeneratorSettings, WIRGModel, fit_wirg

try:
    __version__ = version("rgppl")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "MIS",
    "WIRG",
    "AutoNeuralRG",
    "Card",
    "ClusterSettings",
    "Custom",
    "DoubleWell",
    "FitSettings",
    "FlowSettings",
    "GeneratorSettings",
    "Gradient",
    "Hamiltonian",
    "Hopping",
    "InputError",
    "IsingDual",
    "Lattice",
    "MISSettings",
    "Mass",
    "NUTSSettings",
    "NeuTra",
    "Quartic",
    "SVISettings",
    "SamplingDiverged",
    "TrainedFlow",
    "WIRGModel",
    "__version__",
    "compare",
    "exact_observables",
    "fit_wirg",
    "free_energy",
    "free_field",
    "grow",
    "ising_dual",
    "load_card",
    "phi4_hopping",
    "phi4_lattice_qft",
    "read_record",
    "reference_ensemble",
    "sample",
    "summary",
    "train_flow",
]
