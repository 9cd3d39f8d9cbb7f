"""Writing a run to disk: the DataTree as netCDF, summary tables (markdown, CSV, JSON) and figures.

A run never overwrites an earlier one: if the requested directory already holds results, the run
goes to the first free ``DIR-2``, ``DIR-3``, ... and says so (``resume`` reuses the directory).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rgppl.diagnostics import cost_figures, scalar_names, summary
from rgppl.plots import plot_distributions, plot_field_statistics, plot_traces

CHECKPOINT = "checkpoint.npz"


def output_directory(requested: Path, resume: bool) -> Path:
    """``requested`` if it is new or empty (or ``resume``), else the first free ``requested-N``."""
    requested = Path(requested)
    if resume or not requested.exists() or not any(requested.iterdir()):
        return requested
    n = 2
    while (candidate := requested.with_name(f"{requested.name}-{n}")).exists():
        n += 1
    return candidate


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


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


def run_record(dt, table: pd.DataFrame, exact: dict, context: dict) -> dict:
    """Everything the run printed, as a JSON-ready dictionary."""
    stats = getattr(dt, "sample_stats", None)
    observables = {name: {column: _finite_or_none(row[column]) for column in table.columns}
                   for name, row in table.iterrows()}
    return {
        **context,
        "hamiltonian": json.loads(dt.attrs["hamiltonian"]),
        "cost": {**cost_figures(dt), "warmup_time_s": dt.attrs.get("warmup_time_s"),
                 "warmup_gradient_evaluations": dt.attrs.get("warmup_gradient_evaluations"),
                 "divergences": int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else None},
        "exact": {k: float(v) for k, v in exact.items()},
        "observables": observables,
    }


def write_run(dt, out: Path, *, exact: dict, context: dict, spectrum: np.ndarray | None = None) -> dict:
    """Write ``posterior.nc``, ``summary.{md,csv,json}``, ``trace.png``, ``distributions.png``, ``fields.png``."""
    out.mkdir(parents=True, exist_ok=True)
    dt.to_netcdf(out / "posterior.nc", engine="h5netcdf")
    names = scalar_names(dt)
    table = summary(dt, exact=exact)
    table.to_csv(out / "summary.csv")
    record = run_record(dt, table, exact, context)
    (out / "summary.json").write_text(json.dumps(record, indent=2))
    cost = record["cost"]
    text = [
        f"# {context.get('name', 'run')}",
        "",
        context.get("description", ""),
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
    (out / "summary.md").write_text("\n".join(text))
    runs = {cost["sampler"]: dt}
    plot_traces(dt, [n for n in ("m", "abs_m", "m2", "e", "spin_m2") if n in names], out / "trace.png")
    plot_distributions(runs, names, out / "distributions.png", exact)
    plot_field_statistics(runs, out / "fields.png", spectrum)
    return record
