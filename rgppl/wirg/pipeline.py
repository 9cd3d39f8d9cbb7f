"""The WIRG job of a model card: data, fit scale by scale, generate coarse to fine, compare, write.

``rgppl run CARD`` with ``sampler = "wirg"`` calls :func:`run_wirg`, which

1. takes the training fields from ``[data] path`` (a user's ensemble) or else from the cluster sampler
   (``[cluster]``, seed ``run.seed``, cached), and an independent cluster ensemble (seed ``run.seed + 1``)
   as the reference the generated fields are judged against;
2. fits every scale (``[fit]``; each scale saved under ``fit/`` as soon as it is done, so ``--resume``
   refits nothing);
3. generates fields coarse to fine (``[generator]``; checkpoint after every scale);
4. writes ``wirg/`` and ``reference/`` (netCDF, summaries, figures), plain NUTS in ``nuts/`` when the card
   has a ``[nuts]`` table, the comparison (``comparison.md/csv``), ``scales.png`` (per-scale standard
   deviations and the learned potentials) and ``summary.md/json`` with the fit and generator records and
   the microscopic energy recovered from the fit beside the card's Hamiltonian (couplings and gradient error).
"""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd

from rgppl.diagnostics import compare
from rgppl.ensembles import load_ensemble, reference_ensemble
from rgppl.exact import exact_observables
from rgppl.mcmc import run_nuts
from rgppl.plots import plot_distributions, plot_field_statistics, plot_wirg_scales
from rgppl.report import markdown_table, write_run
from rgppl.wirg.fit import fit_wirg
from rgppl.wirg.free_energy import compare_with_hamiltonian
from rgppl.wirg.model import pyramid
from rgppl.wirg.sampler import generate


ENERGY_FIELDS = 1000  # training fields the recovered microscopic energy is compared on


def scale_table(model) -> list[dict]:
    """The fit's record per scale, coarsest first."""
    return [{"side": s.ansatz.side, "kind": "energy" if s.ansatz.coarsest else "conditional",
             "parameters": s.ansatz.n_params, "condition": s.report["condition"], "loss": s.report["loss"],
             "iterations": s.report["iterations"], "time_s": s.report["time_s"]} for s in model.scales]


def scale_deviations(model, runs: dict) -> dict:
    """Root mean square of the coarse field ``phi_j`` at every scale, for every run (data units; the standard
    deviation for a field of zero mean, as phi^4's)."""
    out = {}
    for label, dt in runs.items():
        phi = dt.posterior["phi"].values.reshape(-1, model.L, model.L)
        coarse, _ = pyramid(phi, model.wavelet, model.levels)
        out[label] = [float(np.sqrt(np.mean(np.asarray(c, np.float64) ** 2))) for c in coarse]
    return out


def run_wirg(card, out, *, resume: bool = False, progress: bool = True) -> dict:
    """Run the WIRG job of ``card`` into ``out``; return the summary record (also ``summary.json``)."""
    h = card.hamiltonian
    if card.data is not None:
        fields = load_ensemble(card.data, h.lattice)
    else:
        fields = reference_ensemble(h, card.cluster, seed=card.seed, progress=progress).posterior["phi"].values
        fields = fields.reshape(-1, *h.lattice.shape)
    model = fit_wirg(fields, card.fit, seed=card.seed, checkpoint_dir=out / "fit", progress=progress)
    runs = {"wirg": generate(model, h, card.generator, seed=card.seed, data=fields,
                             checkpoint=out / "generate_checkpoint.npz", resume=resume, progress=progress),
            "reference": reference_ensemble(h, card.cluster, seed=card.seed + 1, progress=progress)}
    if card.compare_nuts:
        runs["nuts"] = run_nuts(h, card.nuts, seed=card.seed, checkpoint=out / "nuts_checkpoint.npz", resume=resume,
                                progress=progress)
    exact = exact_observables(h)
    context = {"card": str(card.path), "name": card.name, "description": card.description, "seed": card.seed}
    for label, dt in runs.items():
        write_run(dt, out / label, exact=exact, context={**context, "sampler": label}, spectrum=h.quadratic_spectrum())
    table = compare(runs, exact=exact)
    table.to_csv(out / "comparison.csv")
    (out / "comparison.md").write_text(markdown_table(table) + "\n")
    names = [n for n in ("abs_m", "m2", "e") if n in runs["wirg"].posterior]
    plot_distributions(runs, names, out / "distributions.png", exact)
    plot_field_statistics(runs, out / "fields.png", h.quadratic_spectrum())
    deviations = scale_deviations(model, runs)
    plot_wirg_scales(model, deviations, out / "scales.png")

    scales = scale_table(model)
    microscopic = compare_with_hamiltonian(model, h, fields[:ENERGY_FIELDS])
    generator = json.loads(runs["wirg"].attrs["scales"])
    record = {
        **context, "hamiltonian": h.describe(), "fit": asdict(card.fit), "generator": asdict(card.generator),
        "training_fields": len(fields), "parameters": model.n_params, "unit": model.unit,
        "fit_time_s": sum(s["time_s"] for s in scales), "generate_time_s": runs["wirg"].attrs["sampling_time_s"],
        "scales": scales, "generator_scales": generator, "scale_std": deviations,
        "microscopic_energy": microscopic,
        "comparison": json.loads(table.reset_index().to_json(orient="records")),
    }
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=float))
    std_table = pd.DataFrame(deviations, index=[f"{model.L >> j}x{model.L >> j}" for j in range(model.levels + 1)])
    std_table.index.name = "phi_j"
    text = [f"# {card.name}", "", card.description, "", f"Model: `{json.dumps(h.describe())}`", "",
            f"Wavelet conditional RG: {model.n_params} parameters over {len(model.scales)} scales, fitted on "
            f"{len(fields)} fields in {record['fit_time_s']:.1f} s; {card.generator.fields} fields generated in "
            f"{record['generate_time_s']:.1f} s.", "",
            "## Fit per scale (coarsest first)", "", markdown_table(pd.DataFrame(scales).set_index("side")), "",
            "## Generator per scale", "", markdown_table(pd.DataFrame(generator).set_index("side")), "",
            "## Standard deviation of the coarse fields", "", markdown_table(std_table), "",
            "## Generated fields beside the reference", "", markdown_table(table), "",
            "## Microscopic energy recovered from the fit", "",
            f"E_0 = E_J + sum_j (Ebar_j - Ftilde_j), projected on E = -sum_x sum_s J_s phi_x phi_(x+s) + "
            f"sum_x sum_p a_p phi_x^p beside the card's Hamiltonian projected the same way; relative error of "
            f"grad E_0 over {min(len(fields), ENERGY_FIELDS)} training fields: {microscopic['gradient_error']:.4f}.", "",
            markdown_table(pd.DataFrame(microscopic["couplings"]).set_index("term")), ""]
    (out / "summary.md").write_text("\n".join(text))
    return record
