"""Writing a run to disk: the DataTree as netCDF, summary tables (markdown, CSV) and figures.

The run's figures and provenance go to its ``record.json`` (:mod:`rgppl.record`).

A run never overwrites an earlier one: if the requested directory already holds results, the run
goes to the first free ``DIR-2``, ``DIR-3``, ... and says so (``resume`` reuses the directory).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rgppl.diagnostics import cost_figures, scalar_names, summary
from rgppl.plots import plot_distributions, plot_field_statistics, plot_traces
from rgppl.storage import atomic_write, atomic_write_netcdf, atomic_write_text

CHECKPOINT = "checkpoint"


def output_directory(requested: Path, resume: bool) -> Path:
    """``requested`` if it is new or empty (or ``resume``), else the first free ``requested-N``."""
    requested = Path(requested)
    if resume or not requested.exists() or not any(requested.iterdir()):
        return requested
    n = 2
    while (candidate := requested.with_name(f"{requested.name}-{n}")).exists():
        n += 1
    return candidate


def _format(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.5g}"


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured markdown table (index as the first column)."""
    names = table.index.names if table.index.nlevels > 1 else [table.index.name or ""]
    header = [*names, *table.columns]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        index = index if isinstance(index, tuple) else (index,)
        lines.append("| " + " | ".join([*map(str, index), *map(_format, row.values)]) + " |")
    return "\n".join(lines)


def run_cost(dt) -> dict:
    """What a run cost: draws, warm-up and sampling wall time, gradient evaluations, divergences."""
    stats = getattr(dt, "sample_stats", None)
    return {
        **cost_figures(dt),
        "warmup_time_s": dt.attrs.get("warmup_time_s"),
        "warmup_gradient_evaluations": dt.attrs.get("warmup_gradient_evaluations"),
        "divergences": int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else None,
    }


def write_run(
    dt, out: Path, *, exact: dict, name: str, description: str = "", spectrum: np.ndarray | None = None
) -> pd.DataFrame:
    """Write ``posterior.nc``, ``summary.{md,csv}``, ``trace.png``, ``distributions.png``, ``fields.png``;
    return the summary table (:func:`rgppl.diagnostics.summary`) whose rows are the run's figures."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_netcdf(out / "posterior.nc", dt)
    names = scalar_names(dt)
    table = summary(dt, exact=exact)
    atomic_write(out / "summary.csv", table.to_csv)
    cost = run_cost(dt)
    text = [
        f"# {name}",
        "",
        description,
        "",
        f"Model: `{dt.attrs['hamiltonian']}`",
        "",
        f"Sampler: {cost['sampler']}, {cost['draws']} draws, {cost['sampling_time_s']:.1f} s sampling "
        f"(+{cost['warmup_time_s'] or 0:.1f} s warm-up), {cost['gradient_evaluations']:.0f} gradient evaluations"
        + (f", {cost['divergences']} divergences." if cost["divergences"] is not None else "."),
        "",
    ]
    if "ln_z" in exact:
        text += [f"Exact ln Z = {exact['ln_z']:.10g}", ""]
    text += [markdown_table(table), ""]
    atomic_write_text(out / "summary.md", "\n".join(text))
    runs = {cost["sampler"]: dt}
    plot_traces(dt, [n for n in ("m", "abs_m", "m2", "e", "spin_m2") if n in names], out / "trace.png")
    plot_distributions(runs, names, out / "distributions.png", exact)
    plot_field_statistics(runs, out / "fields.png", spectrum)
    return table
