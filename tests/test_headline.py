"""The README's headline table is generated from the current records, and each headline recipe, run again
through the CLI, reproduces the figures the table quotes (slow: from a minute to an hour a recipe)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from rgppl.cli import main
from rgppl.record import find_figure, read_record
from tests.records import valid_record
from tests.stats import family_threshold

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _headline():
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other, as when run from there
    spec = importlib.util.spec_from_file_location("headline", BENCHMARKS / "headline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


headline = _headline()


def test_the_readme_headline_table_is_what_the_records_generate():
    text = headline.README.read_text()
    assert headline.readme_with_headline(text) == text, "run python benchmarks/headline.py"


def test_a_baseline_is_the_fastest_run_that_passes_its_checks():
    """Of one sampler's runs on one model and side, the fastest whose worst |z| is below ``SOUND_Z`` (or that has
    nothing to check) is the baseline; the fastest of all only where none passes."""
    import pandas as pd
    from samplers import SOUND_Z, fastest_runs

    runs = pd.DataFrame(
        [
            ("ising_dual", 8, "nuts", 22.0, SOUND_Z + 1),  # faster, but misses an exact value
            ("ising_dual", 8, "nuts", 33.0, 0.9),
            ("ising_dual", 8, "cluster", 8.0, None),
            ("phi4_hopping", 32, "wirg", 271.0, SOUND_Z + 2),
            ("phi4_hopping", 32, "wirg", 300.0, SOUND_Z + 3),
        ],
        columns=["model", "L", "sampler", "seconds_to_10000", "worst_abs_z"],
    )
    chosen = fastest_runs(runs).set_index(["model", "L", "sampler"])["seconds_to_10000"]
    assert chosen.to_dict() == {
        ("ising_dual", 8, "nuts"): 33.0,
        ("ising_dual", 8, "cluster"): 8.0,
        ("phi4_hopping", 32, "wirg"): 271.0,
    }


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted({recipe for recipe, _, _ in headline.QUOTED}))
def test_a_headline_recipe_run_again_reproduces_the_figures_the_readme_quotes(recipe, tmp_path, monkeypatch):
    """Every quoted figure with a standard error agrees with the record's within the family threshold of
    ``z = (new - quoted) / sqrt(se_new^2 + se_quoted^2)`` (the same seed on the same software gives the same
    draws, z = 0; other machines differ by round-off that chaotic chains amplify into an independent run).
    Figures without a standard error (an acceptance rate, ESS per second, a speed of the machine) are not
    compared: they are checked to be finite."""
    monkeypatch.chdir(tmp_path)  # a WIRG recipe caches its ensembles under ./results
    assert main(["run", recipe, "--out", str(tmp_path / recipe), "--quiet"]) == 0
    fresh, quoted = valid_record(tmp_path / recipe), read_record(headline.CURRENT / recipe)
    figures = [(name, run) for name_recipe, name, run in headline.QUOTED if name_recipe == recipe]
    threshold = family_threshold(len(figures))
    for name, run in figures:
        new, old = find_figure(fresh, name, run), find_figure(quoted, name, run)
        assert np.isfinite(new["value"]), (name, run)
        if old["stderr"] is not None and new["stderr"] is not None:
            z = (new["value"] - old["value"]) / np.hypot(new["stderr"], old["stderr"])
            assert abs(z) < threshold, (name, run, new["value"], old["value"], z)
