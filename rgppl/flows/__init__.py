"""Normalizing flows on lattice fields: NeuralRG's hierarchical bijector and its NumPyro autoguide."""

from rgppl.flows.coupling import BlockCouplings
from rgppl.flows.guide import AutoNeuralRG, NeuralRGTransform, Z2Symmetrized, sample_with_log_prob
from rgppl.flows.neuralrg import FlowSettings, NeuralRGFlow, grown, level_sources, scale_index

__all__ = [
    "AutoNeuralRG",
    "BlockCouplings",
    "FlowSettings",
    "NeuralRGFlow",
    "NeuralRGTransform",
    "Z2Symmetrized",
    "grown",
    "level_sources",
    "sample_with_log_prob",
    "scale_index",
]
