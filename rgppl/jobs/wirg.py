"""The WIRG job of a model card: data, fit scale by scale, generate coarse to fine, compare, write.

``rgppl run CARD`` with ``sampler = "wirg"`` calls :func:`run_wirg`, which

1. takes the training fields and the reference the generated fields are judged against from the card's
   data source (:mod:`rgppl.wirg.sources`: the cluster sampler of the card's Hamiltonian, a user's
   ensemble, or the lognormal surrogate);
2. fits every scale (``[fit]``; each scale saved under ``fit/`` as soon as it is done, so ``--resume``
   refits nothing);
3. generates fields coarse to fine (``[generator]``; checkpoint after every scale);
4. writes ``wirg/`` and ``reference/`` (netCDF, summaries, figures), plain NUTS in ``nuts/`` when the card
   has a ``[nuts]`` table, the comparison (``comparison.md/csv``), ``scales.png`` (per-scale standard
   deviations and the learned potentials), the fidelity table (:func:`rgppl.fidelity.field_fidelity`: the
   spectrum bin by bin, the per-scale mean squares, the Binder cumulant and the one-point histogram, each as a z
   against the reference; ``fidelity.csv``) and ``summary.md`` with the fit and generator records and
   the microscopic energy recovered from the fit beside the card's Hamiltonian (couplings and gradient error);
   without a Hamiltonian, the recovered couplings alone and the pixel tails (fractions beyond 2-8 standard
   deviations, skewness, kurtosis) beside the reference's.  ``record.json`` holds every (observable, run) row
   of the comparison, each observable of the generated fields against the reference with its z
   (``<name>_vs_reference``), every fidelity row (``fidelity_<statistic>_<index>``, run ``wirg``; the same rows of
   the training fields against the reference, run ``training``: the error the fit inherits), each run's per-scale
   rms beside the reference's, and the tails.
"""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd

from rgppl.diagnostics import compare, compare_means, derived_quantities, mean_with_error, scalar_names
from rgppl.exact import exact_observables
from rgppl.fidelity import field_fidelity, worst
from rgppl.mcmc import run_nuts
from rgppl.observables import tail_statistics
from rgppl.plots import plot_distributions, plot_field_statistics, plot_wirg_scales
from rgppl.record import Stopwatch, figure, table_figures, write_record
from rgppl.report import markdown_table, write_run
from rgppl.storage import atomic_write, atomic_write_text
from rgppl.wavelets import pyramid
from rgppl.wirg.fit import fit_wirg
from rgppl.wirg.free_energy import compare_with_hamiltonian, microscopic_energy, project_couplings
from rgppl.wirg.sampler import generate
from rgppl.wirg.sources import field_array

WRITES = (
    "summary.md, record.json, comparison.md/csv, fidelity.csv, scales.png, distributions.png, fields.png, "
    "fit/ (one file per scale) and wirg/, reference/ (each with posterior.nc)"
)
ENERGY_FIELDS = 1000  # training fields the recovered microscopic energy is compared on


# a scale's maximum-likelihood history, where it was refined (rgppl.wirg.fit.refine_maximum_likelihood): in
# record.json, not in the summary's table
REFINEMENT = ("ml_mismatch", "ml_mismatch_noise", "ml_taken_back")


def scale_table(model) -> list[dict]:
    """The fit's record per scale, coarsest first, with the maximum-likelihood history of the scales refined."""
    return [
        {
            "side": s.ansatz.side,
            "kind": "energy" if s.ansatz.coarsest else "conditional",
            "parameters": s.ansatz.n_params,
            "condition": s.report["condition"],
            "loss": s.report["loss"],
            "iterations": s.report["iterations"],
            "time_s": s.report["time_s"],
            **{name: s.report[name] for name in REFINEMENT if name in s.report},
        }
        for s in model.scales
    ]


def scale_deviations(model, runs: dict) -> dict:
    """Root mean square of the coarse field ``phi_j`` at every scale, for every run (data units; the standard
    deviation for a field of zero mean, as phi^4's)."""
    out = {}
    for label, dt in runs.items():
        phi = dt.posterior["phi"].values.reshape(-1, model.L, model.L)
        coarse, _ = pyramid(phi, model.wavelet, model.levels)
        out[label] = [float(np.sqrt(np.mean(np.asarray(c, np.float64) ** 2))) for c in coarse]
    return out


def microscopic_couplings(model, hamiltonian, fields) -> dict:
    """The microscopic energy recovered from ``model``, projected on couplings (beside ``hamiltonian``'s, with the
    gradient error, when it is known)."""
    if hamiltonian is not None:
        return compare_with_hamiltonian(model, hamiltonian, fields)
    found = project_couplings(microscopic_energy(model), fields)
    return {"couplings": [{"term": name, "recovered": value} for name, value in found.items()]}


def tail_table(generated, reference) -> pd.DataFrame:
    """Pixel tails, skewness and kurtosis of two runs (per-field means; standard deviations of the reference)."""
    std = float(np.std(reference.posterior["phi"].values))
    theirs = tail_statistics(reference.posterior["phi"].values, std)
    rows = {}
    for name, values in tail_statistics(generated.posterior["phi"].values, std).items():
        rows[name] = {key: float(value) for key, value in compare_means(values, theirs[name]).items()}
    table = pd.DataFrame(rows).T[["mean", "reference", "ratio", "z"]]
    table.index.name = "quantity"
    return table


def _means(dt) -> dict:
    """Mean and MCSE of every scalar observable and derived quantity of a run."""
    scalars = {name: mean_with_error(dt.posterior[name].values) for name in scalar_names(dt)}
    return {
        **{name: (float(v["mean"]), float(v["mcse"])) for name, v in scalars.items()},
        **{name: (v["mean"], v["mcse"]) for name, v in derived_quantities(dt).items()},
    }


def fidelity_figures(generated, reference) -> list[dict]:
    """Each observable of the generated fields against the independent reference ensemble:
    ``z = (mean - mean_ref) / sqrt(mcse^2 + mcse_ref^2)``, both MCSEs from ArviZ's ESS."""
    ours, theirs = _means(generated), _means(reference)
    return [
        figure(
            f"{name}_vs_reference",
            mean,
            error,
            reference=theirs[name][0],
            reference_source="reference",
            run="wirg",
            z=(mean - theirs[name][0]) / np.hypot(error, theirs[name][1]),
        )
        for name, (mean, error) in ours.items()
        if name in theirs
    ]


def _fidelity_figures(table: pd.DataFrame, run: str) -> list[dict]:
    """The rows of a :func:`rgppl.fidelity.field_fidelity` table of ``run`` against the reference as figures,
    ``where`` riding along."""
    return [
        figure(
            f"fidelity_{row.statistic}_{row.index}",
            row.mean,
            reference=row.reference,
            reference_source="reference",
            run=run,
            z=row.z,
            where=row.where,
        )
        for row in table.itertuples()
    ]


def fidelity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per statistic of a fidelity table: how many rows, the largest |z| and where it is, and the ratio there."""
    rows = {}
    for statistic, group in table.groupby("statistic", sort=False):
        at = group.loc[group["z"].abs().idxmax()]
        rows[statistic] = {"rows": len(group), "worst_abs_z": abs(at["z"]), "where": at["where"], "ratio": at["ratio"]}
    summary = pd.DataFrame(rows).T
    summary.index.name = "statistic"
    return summary


def _scale_figures(deviations: dict) -> list[dict]:
    """Each run's rms of ``phi_j`` at every scale beside the reference's (no standard error: one ensemble each)."""
    reference = deviations["reference"]
    return [
        figure(f"std_phi_{j}", value, reference=reference[j], reference_source="reference", run=label)
        for label, values in deviations.items()
        if label != "reference"
        for j, value in enumerate(values)
    ]


def run_wirg(card, out, *, resume: bool = False, progress: bool = True) -> dict:
    """Run the WIRG job of ``card`` into ``out``; return the record (also ``record.json``)."""
    h, clock = card.hamiltonian, Stopwatch()
    with clock.stage("data"):
        training, reference = card.source.load(card.lattice, h, card.cluster, card.seed, progress=progress)
        fields = field_array(training)
    with clock.stage("fitting"):
        model = fit_wirg(fields, card.fit, seed=card.seed, checkpoint_dir=out / "fit", progress=progress)
    with clock.stage("sampling"):
        runs = {
            "wirg": generate(
                model,
                h,
                card.generator,
                seed=card.seed,
                data=fields,
                checkpoint=out / "generate_checkpoint",
                resume=resume,
                progress=progress,
            ),
            "reference": reference,
        }
        if card.compare_nuts:
            runs["nuts"] = run_nuts(
                h, card.nuts, seed=card.seed, checkpoint=out / "nuts_checkpoint", resume=resume, progress=progress
            )
    with clock.stage("evaluation"):
        exact = exact_observables(h) if h is not None else {}
        spectrum = h.quadratic_spectrum() if h is not None else None
        for label, dt in runs.items():
            write_run(
                dt,
                out / label,
                exact=exact,
                name=f"{card.name}: {label}",
                description=card.description,
                spectrum=spectrum,
            )
        table = compare(runs, exact=exact)
        atomic_write(out / "comparison.csv", table.to_csv)
        atomic_write_text(out / "comparison.md", markdown_table(table) + "\n")
        names = [n for n in ("abs_m", "m2", "e") if n in runs["wirg"].posterior]
        plot_distributions(runs, names, out / "distributions.png", exact)
        plot_field_statistics(runs, out / "fields.png", spectrum)
        deviations = scale_deviations(model, runs)
        plot_wirg_scales(model, deviations, fields, out / "scales.png")
        scales = scale_table(model)
        microscopic = microscopic_couplings(model, h, fields[:ENERGY_FIELDS])
        tails = tail_table(runs["wirg"], reference) if h is None else None
        fidelity = field_fidelity(runs["wirg"], reference, wavelet=model.wavelet)
        training_fidelity = field_fidelity(training, reference, wavelet=model.wavelet)
        atomic_write(out / "fidelity.csv", lambda tmp: fidelity.to_csv(tmp, index=False))
    generator = json.loads(runs["wirg"].attrs["scales"])
    figures = (
        table_figures(table)
        + fidelity_figures(runs["wirg"], reference)
        + _fidelity_figures(fidelity, "wirg")
        + _fidelity_figures(training_fidelity, "training")
        + _scale_figures(deviations)
    )
    if tails is not None:
        figures += [
            figure(
                f"tail_{name}",
                row["mean"],
                reference=row["reference"],
                reference_source="reference",
                run="wirg",
                z=row["z"],
            )
            for name, row in tails.iterrows()
        ]
    details = {
        "training_fields": len(fields),
        "parameters": model.n_params,
        "unit": model.unit,
        "transform": {"name": card.fit.transform, **asdict(model.transform)},
        "fit_time_s": sum(s["time_s"] for s in scales),
        "generate_time_s": runs["wirg"].attrs["sampling_time_s"],
        "scales": scales,
        "generator_scales": generator,
        "scale_std": deviations,
        "microscopic_energy": microscopic,
        "exact": exact,
        "tails": None if tails is None else json.loads(tails.reset_index().to_json(orient="records")),
        "fidelity_worst_abs_z": float(worst(fidelity)["all"]),
        "training_fidelity_worst_abs_z": float(worst(training_fidelity)["all"]),
        "fidelity_rows": len(fidelity),
    }
    record = write_record(out, job="wirg", card=card.resolved(), stages=clock.seconds, figures=figures, details=details)
    std_table = pd.DataFrame(deviations, index=[f"{model.L >> j}x{model.L >> j}" for j in range(model.levels + 1)])
    std_table.index.name = "phi_j"
    model_line = f"Model: `{json.dumps(h.describe())}`" if h is not None else "Fields of unknown energy."
    text = [
        f"# {card.name}",
        "",
        card.description,
        "",
        model_line,
        "",
        f"Wavelet conditional RG: {model.n_params} parameters over {len(model.scales)} scales, fitted on "
        f"{len(fields)} fields in {details['fit_time_s']:.1f} s; {card.generator.samples} fields generated in "
        f"{details['generate_time_s']:.1f} s. The scales model {model.transform.describe()} in units of its rms "
        f"({model.unit:.4g}).",
        "",
        "## Fit per scale (coarsest first)",
        "",
        markdown_table(pd.DataFrame(scales).drop(columns=list(REFINEMENT), errors="ignore").set_index("side")),
        "",
        "## Generator per scale",
        "",
        markdown_table(pd.DataFrame(generator).set_index("side")),
        "",
        "## Standard deviation of the coarse fields",
        "",
        markdown_table(std_table),
        "",
        "## Fidelity against the reference",
        "",
        f"{len(fidelity)} statistics of the generated fields against the independent reference, each as "
        "z = difference / sqrt(mcse^2 + mcse_ref^2) from ArviZ's ESS: the largest |z| of each kind "
        "(every row is in fidelity.csv). Under the null hypothesis each z is standard normal. The last column "
        "gives the training fields against the same reference: the fit inherits their error, which the generated "
        "fields' z leaves out.",
        "",
        markdown_table(
            fidelity_summary(fidelity).join(
                fidelity_summary(training_fidelity)["worst_abs_z"].rename("training_worst_abs_z")
            )
        ),
        "",
        "## Generated fields beside the reference",
        "",
        markdown_table(table),
        "",
    ]
    if tails is not None:
        text += [
            "## Pixel tails beside the reference",
            "",
            "Per-field means; the thresholds in standard deviations of the reference.",
            "",
            markdown_table(tails),
            "",
        ]
    projection = (
        "E_0 = E_J + sum_j (Ebar_j - Ftilde_j), projected on E = -sum_x sum_s J_s phi_x phi_(x+s) + "
        f"sum_x sum_p a_p phi_x^p over {min(len(fields), ENERGY_FIELDS)} training fields"
    )
    if h is not None:
        projection += (
            f", beside the card's Hamiltonian projected the same way; relative error of grad E_0: "
            f"{microscopic['gradient_error']:.4f}"
        )
    text += [
        "## Microscopic energy recovered from the fit",
        "",
        projection + ".",
        "",
        markdown_table(pd.DataFrame(microscopic["couplings"]).set_index("term")),
        "",
    ]
    atomic_write_text(out / "summary.md", "\n".join(text))
    return record
