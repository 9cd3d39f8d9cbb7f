"""Wavelet conditional RG on the long-tailed surrogate of weak-lensing maps (rgppl.surrogates).

Lognormal fields with a power-law spectrum (slope 2.5, k0 = 0.1, sigma_g = 0.8: skewness about 3): train
on one exact ensemble (seed 0), generate, and compare with an independent exact ensemble (seed 1), for
three models: fitted to kappa itself, to kappa with the extra per-scale potentials (``detail_potentials``
sigmoids of the wavelet coefficients and as many ``variance_potentials``, detail variances modulated by the
coarse field), and to ``ln(kappa + shift)`` with the zero-skewness shift (``transform = "shifted_log"``,
:mod:`rgppl.wirg.transform`), the generated fields mapped back to kappa.  Every figure is a mean over fields with
its standard error (the fields are independent), as ratio generated / reference and z = difference / combined
standard error:

* the tails of the pixel histogram: the fraction of pixels beyond 2, 4, 6 and 8 data standard deviations;
* the skewness and kurtosis of the pixel values, and the kurtosis of the finest wavelet coefficients;
* the radial power spectrum per bin and the standard deviation of the coarse field at every scale;
* per conditional, the standard deviation of the details drawn given the training coarse fields against
  the training details' (each conditional alone, without the errors of the coarser scales).

    python benchmarks/wirg_surrogate.py               # the recorded run (see README)
    python benchmarks/wirg_surrogate.py --L 16 --train 1000 --fields 1000   # a quick look
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from rgppl.diagnostics import make_datatree
from rgppl.observables import power_spectrum, tail_statistics
from rgppl.plots import plot_field_statistics
from rgppl.report import markdown_table
from rgppl.surrogates import lognormal_fields
from rgppl.wirg import FitSettings, GeneratorSettings, fit_wirg, generate, pyramid
from rgppl.wirg.sampler import sample_scale

sys.path.insert(0, str(Path(__file__).parent))
from wirg import compare  # noqa: E402  (the same generated-vs-reference statistics as the phi^4 benchmark)

RESULTS = Path(__file__).parent / "results"
TAILS = (2, 4, 6, 8)  # pixel thresholds in units of the data's standard deviation


def field_statistics(phi: np.ndarray, std: float, wavelet: str, levels: int) -> dict:
    """Per-field values whose means are compared: tail fractions, moments, wavelet kurtosis, scale std."""
    values = tail_statistics(phi, std, TAILS)
    coarse, details = pyramid(phi, wavelet, levels)
    finest = np.asarray(details[0], np.float64).reshape(len(phi), -1)
    values["finest wavelet <d^4> / std^4"] = np.mean(finest**4, axis=1) / std**4
    for j, c in enumerate(coarse):
        values[f"<phi_{j}^2> ({c.shape[-1]}x{c.shape[-1]})"] = np.mean(np.asarray(c, np.float64) ** 2, axis=(1, 2))
    return values


def rows_for(label: str, generated: np.ndarray, reference: np.ndarray, model) -> list[dict]:
    std = float(reference.std())
    gen = field_statistics(generated, std, model.wavelet, model.levels)
    ref = field_statistics(reference, std, model.wavelet, model.levels)
    rows = []
    for name in ref:
        mean, ratio, z = compare(gen[name], ref[name], 4)
        rows.append({"model": label, "quantity": name, "generated": float(mean), "reference": float(np.mean(ref[name])),
                     "ratio": float(ratio), "z": float(z)})
    k, gen_p = power_spectrum(generated)
    _, ref_p = power_spectrum(reference)
    mean, ratio, z = compare(gen_p, ref_p, 4)
    for i, kk in enumerate(np.asarray(k)):
        rows.append({"model": label, "quantity": f"P(|k| = {kk:.2f})", "generated": mean[i],
                     "reference": float(np.mean(np.asarray(ref_p)[:, i])), "ratio": ratio[i], "z": z[i]})
    return rows


def conditional_rows(label: str, model, train: np.ndarray, args) -> list[dict]:
    """Each conditional alone: details drawn given the training coarse fields, their std against the data's."""
    coarse, details = pyramid(model.standardise(train), model.wavelet, model.levels)
    settings = GeneratorSettings(fields=len(train), warmup=args.warmup, steps=args.steps)
    rows = []
    for index, scale in enumerate(model.scales[1:], start=1):
        j = model.levels - index + 1
        drawn, _ = sample_scale(jax.random.PRNGKey(index), scale, coarse[j], settings)
        data_std, drawn_std = float(np.std(details[j - 1])), float(np.std(drawn))
        side = scale.ansatz.side
        rows.append({"model": label, "quantity": f"std of details | data phi_{j} ({side}x{side})",
                     "generated": drawn_std, "reference": data_std, "ratio": drawn_std / data_std})
    return rows


def ratio_and_z(quality: pd.DataFrame, quantity: str) -> pd.Series:
    """``ratio (z)`` of one quantity for every model, as text."""
    rows = quality.xs(quantity, level="quantity")
    return rows["ratio"].map("{:.3f}".format) + rows["z"].map(" ({:+.1f})".format)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--L", type=int, default=32)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--fields", type=int, default=4000)
    parser.add_argument("--radius", type=int, default=2)
    parser.add_argument("--potentials", type=int, default=12)
    parser.add_argument("--extra-potentials", type=int, default=12, help="detail and variance potentials")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    start = time.perf_counter()
    L = args.L
    train = np.asarray(lognormal_fields(jax.random.PRNGKey(0), L, args.train))
    reference = np.asarray(lognormal_fields(jax.random.PRNGKey(1), L, args.fields))

    rows, records, runs = [], [], {"reference": make_datatree(None, reference.reshape(4, -1, L, L))}
    base = FitSettings(radius=args.radius, potentials=args.potentials)
    extra = args.extra_potentials
    variants = {"kappa": base,
                f"kappa, {extra} + {extra} extra potentials": replace(base, detail_potentials=extra,
                                                                      variance_potentials=extra),
                "ln(kappa + shift)": replace(base, transform="shifted_log")}
    for label, settings in variants.items():
        tic = time.perf_counter()
        model = fit_wirg(train, settings, progress=False)
        fit_time = time.perf_counter() - tic
        dt = generate(model, None, GeneratorSettings(fields=args.fields, warmup=args.warmup, steps=args.steps), seed=2,
                      progress=False)
        generated = dt.posterior.phi.values.reshape(-1, L, L)
        runs[label] = dt
        rows += rows_for(label, generated, reference, model) + conditional_rows(label, model, train, args)
        scales = json.loads(dt.attrs["scales"])
        records.append({"model": label, "fitted field": model.transform.describe(), "parameters": model.n_params,
                        "fit_s": fit_time,
                        "generate_s": dt.attrs["sampling_time_s"], "min acceptance": min(r["acceptance"] for r in scales),
                        "max tau_energy": max(r["tau_energy"] for r in scales),
                        "max condition": max(s.report["condition"] for s in model.scales)})
        print(f"{label} done after {time.perf_counter() - start:.0f} s", flush=True)

    quality = pd.DataFrame(rows).set_index(["model", "quantity"])
    spectrum = quality[quality.index.get_level_values("quantity").str.startswith("P(|k|")]
    conditional = quality[quality.index.get_level_values("quantity").str.startswith("std of details")]
    summary = pd.DataFrame({
        "max |conditional std ratio - 1|": conditional.groupby(level="model")["ratio"].apply(
            lambda r: float(np.max(np.abs(r - 1)))),
        "max |P(k) ratio - 1|": spectrum.groupby(level="model")["ratio"].apply(lambda r: float(np.max(np.abs(r - 1)))),
        "max |z| of P(k)": spectrum.groupby(level="model")["z"].apply(lambda z: float(np.max(np.abs(z)))),
        **{f"P(> {t} std) ratio (z)": ratio_and_z(quality, f"P(phi > {t} std)") for t in TAILS},
        "<kappa^2> ratio (z)": ratio_and_z(quality, f"<phi_0^2> ({L}x{L})"),
        "skewness ratio (z)": ratio_and_z(quality, "pixel skewness"),
        "kurtosis ratio (z)": ratio_and_z(quality, "pixel kurtosis"),
        "finest wavelet kurtosis ratio (z)": ratio_and_z(quality, "finest wavelet <d^4> / std^4"),
    })
    RESULTS.mkdir(exist_ok=True)
    plot_field_statistics(runs, RESULTS / "wirg_surrogate.png")
    text = [
        f"Lognormal surrogate (slope 2.5, k0 = 0.1, sigma_g = 0.8), L = {L}: {args.train} exact training fields "
        f"(seed 0), {args.fields} generated, against {args.fields} independent exact fields (seed 1); Haar, radius "
        f"{args.radius}, {args.potentials} sigmoid potentials of the finer field per scale; MALA {args.warmup} + "
        f"{args.steps} steps per scale. Figure: `benchmarks/results/wirg_surrogate.png` (spectra, two-point "
        "function, log histograms).",
        "",
        markdown_table(summary),
        "",
        markdown_table(pd.DataFrame(records).set_index("model")),
        "",
        markdown_table(quality),
        "",
        f"[total {time.perf_counter() - start:.0f} s]",
    ]
    print("\n".join(text))
    (RESULTS / "wirg_surrogate.md").write_text("\n".join(text) + "\n")
    (RESULTS / "wirg_surrogate.json").write_text(json.dumps({
        "settings": vars(args), "summary": summary.reset_index().to_dict("records"), "runs": records,
        "quality": quality.reset_index().to_dict("records")}, indent=1, default=float))


if __name__ == "__main__":
    main()
