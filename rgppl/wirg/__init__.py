"""Wavelet conditional renormalisation group (Marchand, Ozawa, Biroli & Mallat, PRX 13, 041038).

``ansatz``: the conditional energy of one scale, linear in its parameters; ``fit``: score matching scale
by scale; ``free_energy``: the conditionals' normalisers and the microscopic energy; ``model``: the fitted
hierarchy; ``sampler``: coarse-to-fine MALA generation, its chains started by ``gaussian``; ``numpyro_model``:
the hierarchy as NumPyro models; ``transform``: the shifted log that long-tailed data are fitted through.
"""

from rgppl.wavelets import pyramid
from rgppl.wirg.ansatz import ScaleAnsatz
from rgppl.wirg.fit import FitSettings, fit_wirg, score_matching, score_matching_errors
from rgppl.wirg.free_energy import microscopic_energy, project_couplings
from rgppl.wirg.model import ScaleFit, WIRGModel
from rgppl.wirg.numpyro_model import hierarchical_model, inpainting_model
from rgppl.wirg.sampler import GeneratorSettings, generate

__all__ = [
    "FitSettings",
    "GeneratorSettings",
    "ScaleAnsatz",
    "ScaleFit",
    "WIRGModel",
    "fit_wirg",
    "generate",
    "hierarchical_model",
    "inpainting_model",
    "microscopic_energy",
    "project_couplings",
    "pyramid",
    "score_matching",
    "score_matching_errors",
]
