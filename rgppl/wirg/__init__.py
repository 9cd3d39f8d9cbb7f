"""Wavelet conditional renormalisation group (Marchand, Ozawa, Biroli & Mallat, PRX 13, 041038).

``ansatz``: the conditional energy of one scale, linear in its parameters; ``fit``: score matching scale
by scale; ``model``: the fitted hierarchy; ``sampler``: coarse-to-fine MALA generation.
"""

from rgppl.wirg.ansatz import ScaleAnsatz
from rgppl.wirg.fit import FitSettings, fit_wirg, score_matching, score_matching_errors
from rgppl.wirg.model import ScaleFit, WIRGModel, pyramid
from rgppl.wirg.sampler import GeneratorSettings, generate

__all__ = ["FitSettings", "GeneratorSettings", "ScaleAnsatz", "ScaleFit", "WIRGModel", "fit_wirg", "generate",
           "pyramid", "score_matching", "score_matching_errors"]
