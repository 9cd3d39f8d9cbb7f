"""Inference with flow guides: training, free energies, the independence sampler, NeuTra-NUTS, latent scales."""

from rgppl.infer.collective import latent_independence, latents_by_scale, resample_scales
from rgppl.infer.free_energy import coverage_by_bin, free_energy, importance_statistics
from rgppl.infer.independence import MISSettings, run_mis
from rgppl.infer.neutra import neutra_model, run_neutra
from rgppl.infer.training import SVISettings, TrainedFlow, grow, train_flow

__all__ = [
    "MISSettings",
    "SVISettings",
    "TrainedFlow",
    "coverage_by_bin",
    "free_energy",
    "grow",
    "importance_statistics",
    "latent_independence",
    "latents_by_scale",
    "neutra_model",
    "resample_scales",
    "run_mis",
    "run_neutra",
    "train_flow",
]
