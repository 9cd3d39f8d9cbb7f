"""A run directory's page, ``index.html``: its provenance, stage times, figures, tables and plots together.

Everything on the page is read back from what the run wrote: ``record.json`` (:mod:`rgppl.record`) for the
provenance, stages and figures, the run's markdown tables (``summary.md``, ``comparison.md``, ...) and its
``*.png`` plots.  The same markdown is the run's section of the documentation's results page, so the two
cannot disagree.
"""

import html
import re
from pathlib import Path

import markdown
import pandas as pd

from rgppl.record import read_record
from rgppl.report import markdown_table
from rgppl.storage import atomic_write_text

TABLES = ("summary.md", "comparison.md", "latents.md")  # in the order they are shown
STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:13px}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
code{background:#f6f6f6;padding:0 3px}"""


def _demoted(text: str, levels: int) -> str:
    """Markdown with every heading ``levels`` deeper."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", text, flags=re.M)


def _figures(record: dict) -> str:
    rows = pd.DataFrame(record["figures"])
    columns = [c for c in ("name", "run", "value", "stderr", "reference", "z", "ess_bulk", "ess_per_s") if c in rows]
    return markdown_table(rows[columns].set_index("name"))


def run_page_markdown(run: Path, *, level: int = 1, link: str = "") -> str:
    """The page of the run in directory ``run`` as markdown, its title at heading ``level``; files are linked as
    ``link + name`` (a path from where the page is served)."""
    run = Path(run)
    record = read_record(run / "record.json")
    source, card = record["provenance"], record["card"]
    commit = (source["commit"] or "no commit")[:10] + (" (uncommitted changes)" if source["dirty"] else "")
    head = "#" * level
    lines = [
        f"{head} {run.name}",
        "",
        f"Job `{record['job']}` of card `{card.get('name', run.name)}`, run {source['date'][:16].replace('T', ' ')} "
        f"UTC at commit `{commit}` on {source['machine']['cpu']} ({source['machine']['cores']} cores). "
        f"[The record]({link}record.json) holds every setting and figure.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in record["stages"].items()),
        "",
    ]
    if record["figures"]:
        lines += [f"{head}# Figures", "", _figures(record), ""]
    for name in TABLES:
        if (run / name).exists():
            text = (run / name).read_text()
            text = re.sub(r"\A# .*\n", "", text) if name == "summary.md" else text  # the page has the title
            text = re.sub(r"<(?=[\w|])", "&lt;", text)  # "<m^2>" is physics, not an HTML tag
            lines += [f"{head}# {name.removesuffix('.md')}", "", _demoted(text.strip(), level + 1), ""]
    for plot in sorted(run.glob("*.png")):
        lines += [f"![{plot.stem}]({link}{plot.name})", ""]
    return "\n".join(lines)


def write_run_page(run: Path) -> Path:
    """Write ``run/index.html``, the run's page; returns its path."""
    run = Path(run)
    body = markdown.markdown(run_page_markdown(run), extensions=["tables"])
    page = (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(run.name)}</title>"
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
    atomic_write_text(run / "index.html", page)
    return run / "index.html"
