"""The NeuralRG job of a model card: train, bound, sample, compare, write.

``rgppl run CARD`` with ``sampler = "neuralrg"`` calls :func:`run_neuralrg`, which

1. trains :class:`~rgppl.flows.AutoNeuralRG` by SVI (``[flow]``, ``[svi]``; checkpoint ``svi_checkpoint.npz``);
   the data of the forward and mixed objectives and of ``pretrain_steps`` is ``svi.data``, or for the
   Ising dual without it ``TRAINING_FIELDS`` fields drawn through its spins (:func:`ising_dual_fields`);
   with ``[[svi.grow]]`` stages, first on those smaller lattices (``svi_L<side>_checkpoint.npz``), each
   flow grown into the next (:func:`~rgppl.infer.grow`),
2. estimates the free energy (``[free_energy]``): F_q, IS ln Z, ESS fraction, k-hat, KL to the exact value,
3. runs the independence sampler (``[mis]``), NeuTra-NUTS (``[neutra]``) and plain NUTS (``[nuts]``),
4. writes each run (``mis/``, ``neutra/``, ``nuts/``: netCDF, summaries, figures), the comparison
   (``comparison.md/csv``), ``training.png``, ``latents.md/png`` and ``summary.md/json``.
"""

import json
from dataclasses import asdict

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
from rgppl.report import markdown_table, write_run

TRAINING_FIELDS = 65536
FREE_ENERGY_ROWS = [("F_q", "F_q_err"), ("ln_z_is", "ln_z_is_err"), ("ln_z_exact", None), ("kl_nats", "F_q_err"),
                    ("relative_error_F", None), ("ess_fraction", None), ("k_hat", None)]


def _free_energy_table(stats: dict) -> str:
    rows = [f"| {name} | {stats[name]:.6g} | {stats[err]:.2g} |" if err else f"| {name} | {stats[name]:.6g} | |"
            for name, err in FREE_ENERGY_ROWS if name in stats]
    return "\n".join(["| quantity | value | standard error |", "|---|---|---|", *rows])


def _steps(card) -> str:
    """The training in words: ``"1500 ML + 3000 SVI steps on 8 x 8, then 800 SVI steps"``."""
    said = lambda svi: f"{svi.pretrain_steps} ML + {svi.steps} SVI steps" if svi.pretrain_steps else f"{svi.steps} SVI steps"
    return ", then ".join([f"{said(svi)} on {side} x {side}" for side, svi in card.grow] + [said(card.svi)])


def run_neuralrg(card, out, *, resume: bool = False, progress: bool = True) -> dict:
    """Run the NeuralRG job of ``card`` into ``out``; return the summary record (also ``summary.json``)."""
    h = card.hamiltonian
    trained = None
    for side, settings in card.grow:
        smaller = h.on(Lattice(side))
        data = ising_dual_fields(smaller, TRAINING_FIELDS, seed=card.seed) if settings.trains_on_data else None
        trained = train_flow(smaller, card.flow, settings, data=data, init=None if trained is None else grow(trained, smaller),
                             seed=card.seed, checkpoint=out / f"svi_L{side}_checkpoint.npz", resume=resume, progress=progress)
    if card.data:
        data = load_ensemble(card.data, h.lattice)
    elif card.svi.trains_on_data:
        data = ising_dual_fields(h, TRAINING_FIELDS, seed=card.seed)
    else:
        data = None
    trained = train_flow(h, card.flow, card.svi, data=data, init=None if trained is None else grow(trained, h), seed=card.seed,
                         checkpoint=out / "svi_checkpoint.npz", resume=resume, progress=progress)
    stats = free_energy(trained, draws=card.free_energy_draws, seed=card.seed)
    exact = exact_observables(h)
    runs = {"mis": run_mis(trained, card.mis, seed=card.seed, progress=progress),
            "neutra": run_neutra(trained, card.neutra, seed=card.seed, checkpoint=out / "neutra_checkpoint.npz",
                                 resume=resume, progress=progress),
            "nuts": run_nuts(h, card.nuts, seed=card.seed, checkpoint=out / "nuts_checkpoint.npz", resume=resume,
                             progress=progress)}
    context = {"card": str(card.path), "name": card.name, "description": card.description, "seed": card.seed}
    for label, dt in runs.items():
        write_run(dt, out / label, exact=exact, context={**context, "sampler": label}, spectrum=h.quadratic_spectrum())
    names = scalar_names(runs["nuts"])
    table = compare(runs, exact=exact)
    table.to_csv(out / "comparison.csv")
    (out / "comparison.md").write_text(markdown_table(table) + "\n")
    plot_distributions(runs, names, out / "distributions.png", exact)
    plot_field_statistics(runs, out / "fields.png", h.quadratic_spectrum())
    plot_training(trained.losses, trained.monitor, out / "training.png", stats.get("ln_z_exact"))
    mis_phi = runs["mis"].posterior["phi"].values
    latents = latent_independence(trained.flow, mis_phi.reshape(-1, *mis_phi.shape[2:])[:4000])
    (out / "latents.md").write_text(markdown_table(latents) + "\n")
    plot_latent_independence(latents, out / "latents.png")

    record = {
        **context,
        "hamiltonian": h.describe(),
        "flow": asdict(card.flow), "svi": asdict(card.svi), "n_params": trained.n_params,
        "grow": [{"side": side, **asdict(settings)} for side, settings in card.grow],
        "training_time_s": trained.training_time_s,
        **{k: stats.get(k) for k in ("F_q", "F_q_err", "ln_z_is", "ln_z_is_err", "ln_z_exact", "kl_nats",
                                      "ess_fraction", "k_hat", "relative_error_F")},
        "mis_acceptance": runs["mis"].attrs["acceptance"],
        "training_monitor": trained.monitor,
        "comparison": json.loads(table.reset_index().to_json(orient="records")),
    }
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=float))
    text = [f"# {card.name}", "", card.description, "", f"Model: `{json.dumps(h.describe())}`", "",
            f"NeuralRG flow: {trained.n_params} parameters, {_steps(card)} in {trained.training_time_s:.0f} s; "
            f"MIS acceptance {record['mis_acceptance']:.3f}.", "", "## Free energy (nats)", "", _free_energy_table(stats), "",
            "## Samplers side by side", "", markdown_table(table), "", "## Latent variables per scale", "",
            markdown_table(latents), ""]
    (out / "summary.md").write_text("\n".join(text))
    return record
