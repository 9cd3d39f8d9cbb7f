"""Figures of a run or of several runs of one model: traces, observable distributions, field statistics.

Every figure is written atomically (:func:`rgppl.storage.atomic_write`): a full disk leaves no half-written PNG."""

import arviz_plots as azp
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from rgppl.lattice import Lattice  # noqa: E402
from rgppl.observables import momentum_power, radial_average, radial_bins, two_point  # noqa: E402
from rgppl.storage import atomic_write  # noqa: E402


def _save(figure, path, **options) -> None:
    """Write ``figure`` (a matplotlib figure or an ArviZ plot collection) to ``path`` atomically, then close it."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, **options))
    plt.close("all")


def plot_traces(dt, var_names: list[str], path) -> None:
    """ArviZ trace and marginal of each scalar observable, per chain."""
    collection = azp.plot_trace_dist(dt, var_names=var_names, backend="matplotlib")
    _save(collection, path)


def plot_distributions(runs: dict, var_names: list[str], path, exact: dict | None = None) -> None:
    """Overlaid histograms of each scalar observable for every run; the exact mean dashed where known."""
    exact = exact or {}
    columns = min(3, len(var_names))
    rows = -(-len(var_names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, var_names, strict=False):  # spare axes are hidden below
        for label, dt in runs.items():
            values = dt.posterior[name].values.ravel()
            ax.hist(values, bins=60, density=True, histtype="step", lw=1.4, label=f"{label}: {values.mean():.4g}")
        if name in exact:
            ax.axvline(exact[name], color="k", ls="--", lw=1, label=f"exact mean: {exact[name]:.4g}")
        ax.set_title(name)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(var_names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_field_statistics(runs: dict, path, spectrum: np.ndarray | None = None) -> None:
    """Radial power spectrum, two-point function along an axis, field histogram (log) and a sample field.

    ``spectrum`` (Fourier eigenvalues of a quadratic energy) adds the exact ``<|phi_k|^2> = 1/M_k`` curve.
    """
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    first = next(iter(runs.values()))
    lattice = Lattice(first.posterior["phi"].shape[-2:])
    index, k = radial_bins(lattice)
    for label, dt in runs.items():
        phi = jnp.asarray(dt.posterior["phi"].values.reshape(-1, *lattice.shape))
        power = np.asarray(radial_average(momentum_power(phi), index, len(k))).mean(axis=0)
        axes[0].loglog(k, power, "o-", ms=3, label=label)
        g = np.asarray(two_point(phi)).mean(axis=0)
        axes[1].plot(np.arange(lattice.shape[0]), g[:, 0], "o-", ms=3, label=label)
        values = np.asarray(phi).ravel()
        axes[2].hist(values, bins=80, density=True, histtype="step", lw=1.4, label=label)
    if spectrum is not None:
        exact_power = np.asarray(radial_average(jnp.asarray(1.0 / spectrum), index, len(k)))
        axes[0].loglog(k, exact_power, "k--", lw=1, label="exact")
        axes[1].plot(
            np.arange(lattice.shape[0]), np.real(np.fft.ifft2(1.0 / spectrum))[:, 0], "k--", lw=1, label="exact"
        )
    axes[0].set(xlabel="|k|", ylabel="P(|k|) = <|phi_k|^2>", title="radial power spectrum")
    axes[0].xaxis.set_minor_formatter(NullFormatter())  # a decade or two: minor labels overlap
    axes[1].set(xlabel="r (lattice units)", ylabel="G(r, 0)", title="two-point function")
    axes[2].set(yscale="log", xlabel="phi", ylabel="density", title="field histogram")
    image = axes[3].imshow(first.posterior["phi"].values[0, -1], cmap="RdBu_r")
    axes[3].set_title("last draw, chain 0")
    fig.colorbar(image, ax=axes[3])
    for ax in axes[:3]:
        ax.legend(fontsize=7)
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


def plot_wirg_scales(model, deviations: dict, path) -> None:
    """Left: the standard deviation of the coarse field ``phi_j`` against its side for every run (data units).
    Right: the learned scalar potential of every scale, ``v_j(phi) = sum_k theta_k sigmoid((phi - c_k) / w_k)``,
    over the range it was fitted on (the fitted field ``model.standardise(phi)``, in units of its root mean square;
    shifted to start at 0)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sides = [model.L >> j for j in range(model.levels + 1)]
    for label, values in deviations.items():
        axes[0].loglog(sides, values, "o-", ms=4, label=label)
    axes[0].set(xlabel="side of phi_j", ylabel="std of phi_j", title="per-scale standard deviation")
    axes[0].legend(fontsize=8)
    for scale in model.scales:
        ansatz = scale.ansatz
        if not ansatz.centres:
            continue
        grid = np.linspace(*scale.support, 200)
        weights = np.asarray(scale.theta)[ansatz.n_quadratic : ansatz.n_quadratic + len(ansatz.centres)]
        centres, widths = np.asarray(ansatz.centres), np.asarray(ansatz.widths)
        potential = (weights / (1 + np.exp(-(grid[:, None] - centres) / widths))).sum(axis=1)
        kind = "E_J" if ansatz.coarsest else "conditional"
        axes[1].plot(
            grid, potential - potential[0], label=f"{kind}, phi_j side {ansatz.side * (1 if ansatz.coarsest else 2)}"
        )
    axes[1].set(xlabel=f"{model.transform.describe()} / rms", ylabel="v_j(phi)", title="learned scalar potentials")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path, dpi=110)
