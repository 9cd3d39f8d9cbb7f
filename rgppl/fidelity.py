"""Two ensembles of fields compared statistic by statistic, each difference as a z-score.

A generator is indistinguishable from the truth when none of the statistics a physicist looks at separates its
fields from an independent ensemble.  :func:`field_fidelity` compares, for draws ``phi[chain, draw, L, L]`` of two
DataTrees:

* the radial power spectrum ``P(|k|) = <|phi_k|^2>`` (unitary FFT), bin by bin
  (:func:`rgppl.observables.power_spectrum`);
* the mean square ``<phi_j^2>`` of the coarse field at every wavelet scale ``j`` (``j = 0``: ``<phi^2>``), whose
  square root is the per-scale standard deviation of a field of zero mean;
* the Binder cumulant ``U = 1 - <m^4> / (3 <m^2>^2)`` (delta method, :func:`rgppl.diagnostics.derived_quantities`);
* the one-point histogram: the fraction of sites in each of ``histogram_bins`` equal bins spanning the
  reference's central 99.8 %.

Every per-field statistic is a mean over draws, so its error is ArviZ's MCSE from its own ESS, and
``z = (mean - mean_ref) / sqrt(mcse^2 + mcse_ref^2)``: a Markov-chain reference's autocorrelation is counted and
a generator's independent draws are not penalised.  Under the null hypothesis each z is standard normal; with
about fifty statistics the largest |z| exceeds 3.5 one time in forty.
"""

import numpy as np
import pandas as pd

from rgppl.diagnostics import compare_means, derived_quantities
from rgppl.errors import require
from rgppl.lattice import Lattice
from rgppl.observables import power_spectrum, radial_bins
from rgppl.wavelets import pyramid

HISTOGRAM_QUANTILES = (0.001, 0.999)  # the histogram's bins span these quantiles of the reference
FIDELITY_COLUMNS = ["statistic", "index", "where", "mean", "reference", "ratio", "z"]


def _fields(dt) -> np.ndarray:
    return np.asarray(dt.posterior["phi"].values, np.float64)


def _per_field(phi: np.ndarray, function) -> np.ndarray:
    """``function`` of every field of ``phi[chain, draw, L, L]``, kept as ``[chain, draw, ...]``."""
    chains, draws = phi.shape[:2]
    values = np.asarray(function(phi.reshape(chains * draws, *phi.shape[2:])), np.float64)
    return values.reshape(chains, draws, *values.shape[1:])


def _rows(statistic: str, where, ours: np.ndarray, theirs: np.ndarray) -> list[dict]:
    compared = compare_means(ours, theirs)
    return [
        {
            "statistic": statistic,
            "index": i,
            "where": float(w),
            **{key: float(np.ravel(compared[key])[i]) for key in ("mean", "reference", "ratio", "z")},
        }
        for i, w in enumerate(np.atleast_1d(where))
    ]


def _scale_mean_squares(wavelet: str):
    def mean_squares(phi):
        coarse, _ = pyramid(phi, wavelet)
        return np.stack([np.mean(np.asarray(c, np.float64) ** 2, axis=(-2, -1)) for c in coarse], axis=-1)

    return mean_squares


def field_fidelity(generated, reference, *, wavelet: str = "haar", histogram_bins: int = 30) -> pd.DataFrame:
    """Every statistic of the module docstring for ``generated`` against ``reference`` (DataTrees of the same
    lattice): one row per statistic and bin, with ``where`` the bin's ``|k|``, the scale's side or the histogram
    bin's centre, and ``z``.  Rows whose statistic is identically zero in both runs (an empty bin) are dropped."""
    ours, theirs = _fields(generated), _fields(reference)
    require(
        ours.shape[-2:] == theirs.shape[-2:],
        "reference",
        f"fields of shape {theirs.shape[-2:]}",
        f"fields of the generated ensemble's shape {ours.shape[-2:]}",
    )
    side = ours.shape[-1]
    _, k = radial_bins(Lattice(ours.shape[-2:]))
    sides = side >> np.arange(int(np.log2(side)) + 1)
    lo, hi = np.quantile(theirs, HISTOGRAM_QUANTILES)
    edges = np.linspace(lo, hi, histogram_bins + 1)
    histogram = lambda phi: np.stack(
        [np.mean((phi >= a) & (phi < b), axis=(-2, -1)) for a, b in zip(edges[:-1], edges[1:])], axis=-1
    )
    rows = [
        *_rows("spectrum", k, *(_per_field(p, lambda f: power_spectrum(f)[1]) for p in (ours, theirs))),
        *_rows("scale_mean_square", sides, *(_per_field(p, _scale_mean_squares(wavelet)) for p in (ours, theirs))),
        *_rows("histogram", 0.5 * (edges[1:] + edges[:-1]), *(_per_field(p, histogram) for p in (ours, theirs))),
    ]
    binder = [derived_quantities(dt).get("binder") for dt in (generated, reference)]
    if None not in binder:
        (a, b) = binder
        rows.append(
            {
                "statistic": "binder",
                "index": 0,
                "where": float("nan"),
                "mean": a["mean"],
                "reference": b["mean"],
                "ratio": a["mean"] / b["mean"],
                "z": (a["mean"] - b["mean"]) / np.hypot(a["mcse"], b["mcse"]),
            }
        )
    table = pd.DataFrame(rows, columns=FIDELITY_COLUMNS)
    return table[np.isfinite(table["z"])].reset_index(drop=True)


def worst(table: pd.DataFrame) -> pd.Series:
    """The largest |z| of each statistic of a :func:`field_fidelity` table, and overall (``"all"``)."""
    largest = table.assign(abs_z=table["z"].abs()).groupby("statistic")["abs_z"].max()
    return pd.concat([largest, pd.Series({"all": float(table["z"].abs().max())})])
