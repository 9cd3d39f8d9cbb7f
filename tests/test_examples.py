"""Every code block of the README and of the documentation's pages runs, so that no example goes stale.

* Python blocks run as written, a page's blocks in order in one namespace, in a fresh working directory.
  The README's three examples are jobs of minutes; they run with the smaller sizes (and, for NeuTra on a
  barely trained flow, a shallower tree) in ``SMALLER``, each a replacement that must still find its text, so
  that a changed example cannot silently escape.
* TOML blocks are cards, and must load.
* In shell blocks every ``rgppl`` command is checked: ``rgppl run CARD`` and ``rgppl check CARD`` by
  ``rgppl check CARD``; the set-up and test commands are the CI's own (``.ci/run``).
"""

import re
from pathlib import Path

import pytest

from rgppl.cards import load_card
from rgppl.cli import main

ROOT = Path(__file__).parents[1]
GENERATED = {"cards.md"}  # generated from the code (docs/hooks.py checks it), not written by hand
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)]
SMALLER = {
    "README.md": [
        ("NUTSSettings(chains=4, samples=2000)", "NUTSSettings(chains=2, warmup=100, samples=200)"),
        (
            "sample(dual, NUTSSettings(), seed=1)",
            "sample(dual, NUTSSettings(chains=2, warmup=100, samples=200), seed=1)",
        ),
        ("dual = ising_dual(8)\nsvi", "dual = ising_dual(4)\nsvi"),
        ("pretrain_steps=1000, steps=2000", "pretrain_steps=50, steps=50"),
        ("ising_dual_fields(dual, 65536)", "ising_dual_fields(dual, 512)"),
        ("MISSettings(samples=5000)", "MISSettings(samples=200)"),
        ("NUTSSettings(samples=1000)", "NUTSSettings(chains=2, warmup=50, samples=50, max_tree_depth=4)"),
        ("phi4_hopping(32, 0.68)", "phi4_hopping(8, 0.68)"),
        ("reshape(-1, 32, 32)", "reshape(-1, 8, 8)"),
        ("ClusterSettings(samples=1000, thin=10)", "ClusterSettings(warmup=100, samples=50, thin=4)"),
        ("FitSettings(mirror_images=True)", "FitSettings(mirror_images=True, ml_iterations=0)"),
        ("GeneratorSettings(samples=4000)", "GeneratorSettings(samples=400)"),
    ],
}
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def blocks(page: Path, language: str) -> list[str]:
    """The page's fenced blocks in ``language``, with its replacements of ``SMALLER`` applied."""
    text = page.read_text()
    for old, new in SMALLER.get(page.name, []):
        assert old in text, f"{page.name} no longer holds {old!r}: update SMALLER with the example"
        text = text.replace(old, new)
    return [body for lang, body in FENCE.findall(text) if lang == language]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__example__"}
    for number, code in enumerate(blocks(page, "python")):
        exec(compile(code, f"{page.name}, python block {number + 1}", "exec"), namespace)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_cards_and_commands_are_valid(page, tmp_path, capsys):
    for number, card in enumerate(blocks(page, "toml")):
        path = tmp_path / f"card{number}.toml"
        path.write_text(card)
        assert load_card(path).name
    for command in (c.strip() for block in blocks(page, "bash") for c in re.split(r"&&|\n", block)):
        words = command.split()
        if words and words[0].endswith("rgppl") and words[1] in ("run", "check"):
            assert main(["check", words[2]]) == 0, command
