"""Figures of a run or of several runs of one model: traces, observable distributions, field statistics.

Every figure is written atomically (:func:`rgppl.storage.atomic_write`): a full disk leaves no half-written PNG."""

import arviz_plots as azp
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402

from rgppl.diagnostics import mean_with_error  # noqa: E402
from rgppl.lattice import Lattice  # noqa: E402
from rgppl.observables import momentum_power, radial_average, radial_bins, two_point  # noqa: E402
from rgppl.storage import atomic_write  # noqa: E402
from rgppl.wavelets import pyramid  # noqa: E402


def _save(figure, path, **options) -> None:
    """Write ``figure`` (a matplotlib figure or an ArviZ plot collection) to ``path`` atomically, then close it."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, **options))
    plt.close("all")


def plot_traces(dt, var_names: list[str], path) -> None:
    """ArviZ trace and marginal of each scalar observable, per chain."""
    collection = azp.plot_trace_dist(dt, var_names=var_names, backend="matplotlib")
    _save(collection, path)


REFERENCE_LABELS = ("reference", "exact")  # a run under one of these names is what the others are compared with


def _reference(runs: dict, reference: str | None) -> str | None:
    return reference or next((label for label in REFERENCE_LABELS if label in runs), None)


def _log_ticks(axis) -> None:
    """Labelled ticks at 1, 2 and 5 per decade: a spectrum at small L spans less than one decade."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def _ratio_panel(ax, x, ratio, error, label, step: bool = False) -> None:
    """``ratio`` (a run over the reference) with its one-sigma band, and the line at 1."""
    line = ax.step(x, ratio, where="mid", lw=1.2)[0] if step else ax.plot(x, ratio, "o-", ms=3, lw=1.2)[0]
    ax.fill_between(x, ratio - error, ratio + error, step="mid" if step else None, alpha=0.3, color=line.get_color())
    ax.axhline(1.0, color="k", lw=0.7)
    ax.set_ylabel(f"/ {label}")


def _histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density of ``values[chain, draw]`` in ``edges`` and its error: Poisson counts scaled by ``n / ESS``."""
    counts = np.histogram(values.ravel(), edges)[0].astype(float)
    n = values.size
    ess = min(n, float(mean_with_error(values)["ess_bulk"]))
    widths = np.diff(edges)
    return counts / (n * widths), np.sqrt(counts * n / ess) / (n * widths)


def plot_distributions(
    runs: dict, var_names: list[str], path, exact: dict | None = None, reference: str | None = None
) -> None:
    """Histograms of each scalar observable for every run, with error bands from each run's ESS; the exact mean
    dashed where known.  With a reference run (``reference``, or a run named "reference" or "exact"), a panel
    under each histogram shows every other run's density over the reference's, with its band."""
    exact = exact or {}
    reference = _reference(runs, reference)
    columns = min(3, len(var_names))
    rows = -(-len(var_names) // columns)
    heights = [3, 1] if reference else [1]
    fig, axes = plt.subplots(
        rows * len(heights),
        columns,
        figsize=(4.2 * columns, (4.2 if reference else 3.2) * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": heights * rows},
    )
    for slot, name in enumerate(var_names):
        row, column = divmod(slot, columns)
        ax = axes[row * len(heights), column]
        values = {label: dt.posterior[name].values for label, dt in runs.items()}
        edges = np.histogram_bin_edges(np.concatenate([v.ravel() for v in values.values()]), bins=40)
        centres = 0.5 * (edges[1:] + edges[:-1])
        densities = {label: _histogram(v, edges) for label, v in values.items()}
        for label, (density, error) in densities.items():
            line = ax.step(centres, density, where="mid", lw=1.3, label=f"{label}: {values[label].mean():.4g}")[0]
            ax.fill_between(
                centres, np.maximum(density - error, 0), density + error, step="mid", alpha=0.25, color=line.get_color()
            )
        if name in exact:
            ax.axvline(exact[name], color="k", ls="--", lw=1, label=f"exact mean: {exact[name]:.4g}")
        ax.set_title(name)
        ax.legend(fontsize=7)
        if reference:
            below = axes[row * 2 + 1, column]
            below.sharex(ax)
            base, base_error = densities[reference]
            with np.errstate(divide="ignore", invalid="ignore"):
                for label, (density, error) in densities.items():
                    if label != reference:
                        ratio = density / base
                        band = ratio * np.hypot(error / density, base_error / base)
                        _ratio_panel(below, centres, ratio, band, reference, step=True)
            below.set_ylim(0.5, 1.5)
    for slot in range(len(var_names), rows * columns):
        row, column = divmod(slot, columns)
        for offset in range(len(heights)):
            axes[row * len(heights) + offset, column].set_visible(False)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def _spectra(runs: dict, lattice: Lattice, index: np.ndarray, n_bins: int) -> dict:
    """Each run's radial power spectrum, mean and MCSE per bin (ArviZ's, over chains and draws)."""
    out = {}
    for label, dt in runs.items():
        phi = dt.posterior["phi"].values
        power = np.asarray(radial_average(momentum_power(jnp.asarray(phi)), index, n_bins))
        stats = mean_with_error(power.reshape(*phi.shape[:2], n_bins))
        out[label] = (np.asarray(stats["mean"]), np.asarray(stats["mcse"]))
    return out


def plot_field_statistics(runs: dict, path, spectrum: np.ndarray | None = None, reference: str | None = None) -> None:
    """Radial power spectrum with error bands, two-point function along an axis, field histogram (log) and a
    sample field.

    ``spectrum`` (Fourier eigenvalues of a quadratic energy) adds the exact ``<|phi_k|^2> = 1/M_k`` curve.  Under
    the spectrum, each run over the reference run (``reference``, or a run named "reference" or "exact"), or over
    the exact spectrum, with one-sigma bands of both errors.
    """
    fig, axes = plt.subplots(2, 4, figsize=(17, 5.2), gridspec_kw={"height_ratios": [3, 1]})
    first = next(iter(runs.values()))
    lattice = Lattice(first.posterior["phi"].shape[-2:])
    index, k = radial_bins(lattice)
    spectra = _spectra(runs, lattice, index, len(k))
    for label, dt in runs.items():
        power, error = spectra[label]
        line = axes[0, 0].plot(k, power, "o-", ms=3, label=label)[0]
        axes[0, 0].fill_between(k, power - error, power + error, alpha=0.3, color=line.get_color())
        phi = jnp.asarray(dt.posterior["phi"].values.reshape(-1, *lattice.shape))
        g = np.asarray(two_point(phi)).mean(axis=0)
        axes[0, 1].plot(np.arange(lattice.shape[0]), g[:, 0], "o-", ms=3, label=label)
        axes[0, 2].hist(np.asarray(phi).ravel(), bins=80, density=True, histtype="step", lw=1.4, label=label)
    reference = _reference(runs, reference)
    exact_power = None
    if spectrum is not None:
        exact_power = np.asarray(radial_average(jnp.asarray(1.0 / spectrum), index, len(k)))
        axes[0, 0].plot(k, exact_power, "k--", lw=1, label="exact")
        axes[0, 1].plot(
            np.arange(lattice.shape[0]), np.real(np.fft.ifft2(1.0 / spectrum))[:, 0], "k--", lw=1, label="exact"
        )
    if reference or exact_power is not None:
        base, base_error = spectra[reference] if reference else (exact_power, np.zeros_like(exact_power))
        for label, (power, error) in spectra.items():
            if label != reference:
                ratio = power / base
                _ratio_panel(
                    axes[1, 0], k, ratio, ratio * np.hypot(error / power, base_error / base), reference or "exact"
                )
        axes[1, 0].sharex(axes[0, 0])
        axes[1, 0].set(xlabel="|k|")
    else:
        axes[1, 0].set_visible(False)
    axes[0, 0].set(xscale="log", yscale="log", ylabel="P(|k|) = <|phi_k|^2>", title="radial power spectrum")
    _log_ticks(axes[0, 0].xaxis)
    _log_ticks(axes[0, 0].yaxis)
    axes[0, 1].set(xlabel="r (lattice units)", ylabel="G(r, 0)", title="two-point function")
    axes[0, 2].set(yscale="log", xlabel="phi", ylabel="density", title="field histogram")
    image = axes[0, 3].imshow(first.posterior["phi"].values[0, -1], cmap="RdBu_r")
    axes[0, 3].set_title("last draw, chain 0")
    fig.colorbar(image, ax=axes[0, 3])
    for ax in axes[0, :3]:
        ax.legend(fontsize=7)
    for ax in axes[1, 1:]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_training(losses: np.ndarray, monitor: list, path, ln_z_exact: float | None = None) -> None:
    """SVI loss per step (and its running mean), F_q estimates with error bars, and -ln Z when known."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    steps = np.arange(1, len(losses) + 1)
    window = max(1, len(losses) // 50)
    ax.plot(steps, losses, color="0.75", lw=0.6, label="loss per step")
    ax.plot(
        steps[window - 1 :],
        np.convolve(losses, np.ones(window) / window, "valid"),
        lw=1.4,
        label=f"running mean ({window})",
    )
    if monitor:
        ax.errorbar(
            [m["step"] for m in monitor],
            [m["F_q"] for m in monitor],
            [m["F_q_err"] for m in monitor],
            fmt="o",
            ms=4,
            label="F_q estimate",
        )
    if ln_z_exact is not None:
        ax.axhline(-ln_z_exact, color="k", ls="--", lw=1, label="-ln Z (exact)")
    low = np.percentile(losses, 1) if ln_z_exact is None else -ln_z_exact
    ax.set_ylim(low - 0.05 * abs(low) - 1, np.percentile(losses, 90) + 1)
    ax.set(xlabel="SVI step", ylabel="nats", title="training: F_q = E_q[ln q + E] >= -ln Z")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_latent_independence(table, path) -> None:
    """Per-scale neighbour dependence of the latent variables against the physical field at the same sites."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, stat, title in zip(axes, ("corr", "abs_corr"), ("correlation of values", "correlation of magnitudes")):
        ax.plot(table.index, table[f"{stat}_physical"], "o-", label="physical field")
        ax.plot(table.index, table[f"{stat}_latent"], "s-", label="latent variables")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="scale (0 = finest)", ylabel="neighbour correlation", title=title, xticks=list(table.index))
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_wirg_scales(model, deviations: dict, fields, path) -> None:
    """Left: the standard deviation of the coarse field ``phi_j`` against its side for every run (data units).
    Right: the learned scalar potential of every scale, ``v_j(phi) = sum_k theta_k sigmoid((phi - c_k) / w_k)``,
    over the central 99.8 % of the field it acts on in the training ``fields`` (the fitted field
    ``model.standardise(phi)`` at that scale), against that field in units of its standard deviation, so that
    every scale's curve spans where its data lie; shifted to start at 0."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sides = [model.L >> j for j in range(model.levels + 1)]
    for label, values in deviations.items():
        axes[0].loglog(sides, values, "o-", ms=4, label=label)
    axes[0].set(xlabel="side of phi_j", ylabel="std of phi_j", title="per-scale standard deviation")
    axes[0].legend(fontsize=8)
    coarse, _ = pyramid(model.standardise(np.asarray(fields)), model.wavelet, model.levels)
    acted_on = {int(c.shape[-1]): np.asarray(c).ravel() for c in coarse}  # side -> the values a potential sees
    for scale in model.scales:
        ansatz = scale.ansatz
        if not ansatz.centres:
            continue
        side = ansatz.side * (1 if ansatz.coarsest else 2)
        values = acted_on[side]
        grid = np.linspace(*np.quantile(values, [0.001, 0.999]), 200)
        weights = np.asarray(scale.theta)[ansatz.n_quadratic : ansatz.n_quadratic + len(ansatz.centres)]
        centres, widths = np.asarray(ansatz.centres), np.asarray(ansatz.widths)
        potential = (weights / (1 + np.exp(-(grid[:, None] - centres) / widths))).sum(axis=1)
        kind = "E_J" if ansatz.coarsest else "conditional"
        axes[1].plot(grid / values.std(), potential - potential[0], label=f"{kind}, phi_j side {side}")
    axes[1].set(
        xlabel=f"{model.transform.describe()} at scale j / its std", ylabel="v_j(phi)", title="learned potentials"
    )
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path, dpi=110)
