"""mkdocs hooks: the pages generated from the code and the records, so that none of them can go stale.

* ``docs/cards.md`` must be what ``rgppl cards --reference`` prints (it is committed for readers of the
  repository); a stale one fails the build.
* ``results.md`` is generated from the current benchmark records (``benchmarks/results/current/*/record.json``)
  with each run's page (:mod:`rgppl.run_page`), and the records and plots are published beside it.
* The notebooks (jupytext scripts in ``notebooks/``) are executed into ``docs/notebooks/*.ipynb`` (ignored by
  git), which mkdocs-jupyter renders with their outputs; a cell that raises fails the build.  With
  ``RGPPL_NOTEBOOK_SMALL=1`` they run at the tests' small size (as in CI).  A notebook is executed again only
  when its script is newer than its output.
"""

import os
import tempfile
from pathlib import Path

import jupytext
import nbclient
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

from rgppl.card_reference import card_reference
from rgppl.run_page import run_page_markdown

ROOT = Path(__file__).parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "current"
RESULTS_INTRO = """# Results

Every figure rgppl publishes comes from a record: a run of a built-in card (a *recipe*) on this project's
reference machine, with its provenance (commit, package versions, machine, date) and the wall time of each
stage.  This page is generated from the current records in `benchmarks/results/current/` when the site is
built; `python benchmarks/record.py RECIPE` runs a recipe again and archives the record it replaces.
Each run directory also holds this section as its own `index.html`.

"""


def _check_card_reference() -> None:
    if (ROOT / "docs" / "cards.md").read_text() != card_reference() + "\n":  # as `print` writes it
        raise PluginError("docs/cards.md is stale: regenerate it with `rgppl cards --reference > docs/cards.md`")


def _execute_notebooks() -> None:
    target = ROOT / "docs" / "notebooks"
    target.mkdir(exist_ok=True)
    for script in sorted((ROOT / "notebooks").glob("*.py")):
        executed = target / f"{script.stem}.ipynb"
        if executed.exists() and executed.stat().st_mtime > script.stat().st_mtime:
            continue
        notebook = jupytext.read(script)
        with tempfile.TemporaryDirectory() as workdir:  # the notebooks write their plots to the working directory
            nbclient.NotebookClient(
                notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": workdir}}
            ).execute()
        jupytext.write(notebook, executed)


def on_pre_build(config) -> None:
    """Check the card reference and execute the notebooks before mkdocs collects the pages."""
    _check_card_reference()
    os.environ.setdefault("MPLBACKEND", "Agg")
    _execute_notebooks()


def on_files(files, config):
    """Add the generated results page, and the records and plots it shows."""
    sections = []
    for record in sorted(RECORDS.glob("*/record.json")):
        run = record.parent
        sections.append(run_page_markdown(run, level=2, link=f"results/{run.name}/"))
        for path in [record, *sorted(run.glob("*.png"))]:
            files.append(File.generated(config, f"results/{run.name}/{path.name}", abs_src_path=str(path)))
    files.append(File.generated(config, "results.md", content=RESULTS_INTRO + "\n".join(sections)))
    return files
