"""The NeuralRG job of a model card: train, bound, sample, compare, write.

``rgppl run CARD`` with ``sampler = "neuralrg"`` calls :func:`run_neuralrg`, which

1. trains :class:`~rgppl.flows.AutoNeuralRG` by SVI (``[flow]``, ``[svi]``; checkpoint ``svi_checkpoint``);
   the data of the forward and mixed objectives and of ``pretrain_steps`` is ``[data] path``, or for the
   Ising dual without it ``TRAINING_FIELDS`` fields drawn through its spins (:func:`ising_dual_fields`);
   with ``[[svi.grow]]`` stages, first on those smaller lattices (``svi_L<side>_checkpoint``), each
   flow grown into the next (:func:`~rgppl.infer.grow`),
2. runs the independence sampler (``[mis]``), NeuTra-NUTS (``[neutra]``) and plain NUTS (``[nuts]``),
3. estimates the free energy (``[free_energy]``): F_q, IS ln Z, ESS fraction, k-hat, KL to the exact value,
4. writes each run (``mis/``, ``neutra/``, ``nuts/``: netCDF, summaries, figures), the comparison
   (``comparison.md/csv``), ``training.png``, ``latents.md/png``, ``summary.md`` and ``record.json``, whose
   figures are the free-energy table and every (observable, sampler) row of the comparison.
"""

import json

from rgppl.diagnostics import compare, scalar_names
from rgppl.ensembles import ising_dual_fields, load_ensemble
from rgppl.exact import exact_observables
from rgppl.infer.collective import latent_independence
from rgppl.infer.free_energy import free_energy
from rgppl.infer.independence import run_mis
from rgppl.infer.neutra import run_neutra
from rgppl.infer.training import grow, train_flow
from rgppl.lattice import Lattice
from rgppl.mcmc import run_nuts
from rgppl.plots import plot_distributions, plot_field_statistics, plot_latent_independence, plot_training
from rgppl.record import Stopwatch, figure, table_figures, write_record
from rgppl.report import markdown_table, run_cost, write_run
from rgppl.storage import atomic_write, atomic_write_text

TRAINING_FIELDS = 65536
WRITES = (
    "summary.md, record.json, comparison.md/csv, training.png, latents.md/png, distributions.png, fields.png "
    "and mis/, neutra/, nuts/ (each with posterior.nc)"
)
FREE_ENERGY_ROWS = [
    ("F_q", "F_q_err"),
    ("ln_z_is", "ln_z_is_err"),
    ("ln_z_exact", None),
    ("kl_nats", "F_q_err"),
    ("kl_nats_is", "kl_nats_is_err"),
    ("relative_error_F", None),
    ("ess_fraction", None),
    ("k_hat", None),
]


def _free_energy_table(stats: dict) -> str:
    rows = [
        f"| {name} | {stats[name]:.6g} | {stats[err]:.2g} |" if err else f"| {name} | {stats[name]:.6g} | |"
        for name, err in FREE_ENERGY_ROWS
        if name in stats
    ]
    return "\n".join(["| quantity | value | standard error |", "|---|---|---|", *rows])


def _steps(card) -> str:
    """The training in words: ``"1500 ML + 3000 SVI steps on 8 x 8, then 800 SVI steps"``."""
    said = lambda svi: (
        f"{svi.pretrain_steps} ML + {svi.steps} SVI steps" if svi.pretrain_steps else f"{svi.steps} SVI steps"
    )
    return ", then ".join([f"{said(svi)} on {side} x {side}" for side, svi in card.grow] + [said(card.svi)])


def _free_energy_figures(stats: dict, mis_acceptance: float) -> list[dict]:
    """F_q, IS ln Z against the exact ln Z, the KL in nats (F_q + ln Z: F_q is a bound, not an estimate of -ln Z,
    so it has no z of its own; and F_q + ln Z_IS, the estimate where no exact ln Z is known), ESS fraction, k-hat,
    MIS acceptance."""
    ln_z = stats.get("ln_z_exact")
    return [
        figure("F_q", stats["F_q"], stats["F_q_err"]),
        figure("ln_z_is", stats["ln_z_is"], stats["ln_z_is_err"], reference=ln_z),
        figure("kl_nats", stats.get("kl_nats"), stats["F_q_err"] if ln_z is not None else None),
        figure("kl_nats_is", stats.get("kl_nats_is"), stats["kl_nats_is_err"]),
        figure("relative_error_F", stats.get("relative_error_F")),
        figure("ess_fraction", stats["ess_fraction"]),
        figure("k_hat", stats["k_hat"]),
        figure("mis_acceptance", mis_acceptance),
    ]


def training_data(h, svi, data_file, seed: int):
    """The fields that ``svi``'s maximum-likelihood steps (and forward or mixed objective) fit on ``h``'s lattice.

    ``data_file``'s ensemble if given; else, when ``svi`` trains on data, ``TRAINING_FIELDS`` fields of the Ising
    dual drawn through its spins (:func:`~rgppl.ensembles.ising_dual_fields`); else ``None``.
    """
    if data_file:
        return load_ensemble(data_file, h.lattice)
    return ising_dual_fields(h, TRAINING_FIELDS, seed=seed) if svi.trains_on_data else None


def run_neuralrg(card, out, *, resume: bool = False, progress: bool = True) -> dict:
    """Run the NeuralRG job of ``card`` into ``out``; return the record (also ``record.json``)."""
    h, clock, trained = card.hamiltonian, Stopwatch(), None
    for side, settings in card.grow:
        smaller = h.on(Lattice(side))
        with clock.stage("data"):
            data = training_data(smaller, settings, None, card.seed)
        with clock.stage("training"):
            trained = train_flow(
                smaller,
                card.flow,
                settings,
                data=data,
                init=None if trained is None else grow(trained, smaller),
                seed=card.seed,
                checkpoint=out / f"svi_L{side}_checkpoint",
                resume=resume,
                progress=progress,
            )
    with clock.stage("data"):
        data = training_data(h, card.svi, card.data, card.seed)
    with clock.stage("training"):
        trained = train_flow(
            h,
            card.flow,
            card.svi,
            data=data,
            init=None if trained is None else grow(trained, h),
            seed=card.seed,
            checkpoint=out / "svi_checkpoint",
            resume=resume,
            progress=progress,
        )
    with clock.stage("sampling"):
        runs = {
            "mis": run_mis(
                trained,
                card.mis,
                seed=card.seed,
                checkpoint=out / "mis_checkpoint",
                resume=resume,
                progress=progress,
            ),
            "neutra": run_neutra(
                trained,
                card.neutra,
                seed=card.seed,
                checkpoint=out / "neutra_checkpoint",
                resume=resume,
                progress=progress,
            ),
            "nuts": run_nuts(
                h, card.nuts, seed=card.seed, checkpoint=out / "nuts_checkpoint", resume=resume, progress=progress
            ),
        }
    with clock.stage("evaluation"):
        stats = free_energy(trained, samples=card.free_energy_samples, seed=card.seed)
        exact = exact_observables(h)
        for label, dt in runs.items():
            write_run(
                dt,
                out / label,
                exact=exact,
                name=f"{card.name}: {label}",
                description=card.description,
                spectrum=h.quadratic_spectrum(),
            )
        names = scalar_names(runs["nuts"])
        table = compare(runs, exact=exact)
        atomic_write(out / "comparison.csv", table.to_csv)
        atomic_write_text(out / "comparison.md", markdown_table(table) + "\n")
        plot_distributions(runs, names, out / "distributions.png", exact)
        plot_field_statistics(runs, out / "fields.png", h.quadratic_spectrum())
        plot_training(trained.losses, trained.monitor, out / "training.png", stats.get("ln_z_exact"))
        mis_phi = runs["mis"].posterior["phi"].values
        latents = latent_independence(trained.flow, mis_phi.reshape(-1, *mis_phi.shape[2:])[:4000])
        atomic_write_text(out / "latents.md", markdown_table(latents) + "\n")
        plot_latent_independence(latents, out / "latents.png")
    mis_acceptance = runs["mis"].attrs["acceptance"]
    details = {
        "n_params": trained.n_params,
        "training_time_s": trained.training_time_s,
        "training_monitor": trained.monitor,
        "exact": exact,
        "cost": {label: run_cost(dt) for label, dt in runs.items()},
    }
    record = write_record(
        out,
        job="neuralrg",
        card=card.resolved(),
        stages=clock.seconds,
        figures=_free_energy_figures(stats, mis_acceptance) + table_figures(table),
        details=details,
    )
    text = [
        f"# {card.name}",
        "",
        card.description,
        "",
        f"Model: `{json.dumps(h.describe())}`",
        "",
        f"NeuralRG flow: {trained.n_params} parameters, {_steps(card)} in {trained.training_time_s:.0f} s; "
        f"MIS acceptance {mis_acceptance:.3f}.",
        "",
        "## Free energy (nats)",
        "",
        _free_energy_table(stats),
        "",
        "## Samplers side by side",
        "",
        markdown_table(table),
        "",
        "## Latent variables per scale",
        "",
        markdown_table(latents),
        "",
    ]
    atomic_write_text(out / "summary.md", "\n".join(text))
    return record
