"""The card reference, generated from the settings classes so that it cannot drift from what runs.

Every section's keys and defaults are read off a minimal card of each sampler, resolved by
:meth:`rgppl.cards.Card.resolved` exactly as a run resolves it; the types come from the settings classes'
fields and the summaries from their docstrings.  ``rgppl cards --reference`` prints it; ``docs/cards.md``
holds it, and a test checks that the file is what this module generates.
"""

import inspect
import json
from dataclasses import fields, is_dataclass
from pathlib import Path

from rgppl.cards import SAMPLERS, parse_card
from rgppl.loop import CHECKPOINT_SECONDS

MINIMAL = {  # the smallest valid card of each sampler: every other setting is a default
    "nuts": {"hamiltonian": {"preset": "free_field"}},
    "cluster": {"hamiltonian": {"preset": "phi4_hopping"}},
    "neuralrg": {"hamiltonian": {"preset": "free_field"}},
    "wirg": {"hamiltonian": {"preset": "phi4_hopping"}},
}
EXTRA_KEYS = {  # keys of a section that no settings class holds: (type, meaning)
    ("svi", "grow"): ("list of tables", "[[svi.grow]] stages on smaller lattices, each with side and SVI keys"),
    ("free_energy", "samples"): ("int", "flow draws for F_q and importance-sampled ln Z"),
}


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _types(settings) -> dict:
    return {f.name: _type_name(f.type) for f in fields(settings)} if is_dataclass(settings) else {}


def _summary(settings) -> str:
    doc = inspect.getdoc(type(settings)) if is_dataclass(settings) else ""
    return (doc or "").split("\n\n")[0].replace("\n", " ")


def _value(value) -> str:
    """A default as it is written in TOML (unset where it has none)."""
    return "unset" if value is None else f"`{json.dumps(value)}`"


def card_reference() -> str:
    """The reference of every card section, as markdown."""
    sections, used_by = {}, {}
    for sampler in SAMPLERS:
        card = parse_card(
            {"name": "reference", "lattice": {"shape": 8}, "run": {"sampler": sampler}, **MINIMAL[sampler]},
            Path("reference.toml"),
        )
        for name, settings in card.sections().items():
            if name not in sections or not is_dataclass(sections[name][0]):  # a settings class documents itself
                sections[name] = (settings, card.resolved()[name])
            used_by.setdefault(name, []).append(sampler)
    lines = [
        "# Card reference",
        "",
        "Generated from the settings classes by `rgppl cards --reference`; do not edit. A card is a TOML file",
        "with `name`, `[lattice] shape`, a `[hamiltonian]` (a `preset` with its couplings, or `terms`) and",
        "`[run] sampler`, `seed`, `precision` (`float32` or `float64`) and `checkpoint_seconds` (the least wall",
        f"time between two checkpoints within a stage; {CHECKPOINT_SECONDS:g} by default, 0 for one every",
        "`checkpoint_every`); each section below is optional and every key in it has the default shown. An unknown",
        "key is an error that names it.",
        "",
    ]
    for name, (settings, resolved) in sections.items():
        types = _types(settings)
        samplers = ", ".join(f'`sampler = "{sampler}"`' for sampler in used_by[name])
        lines += [f"## [{name}]", "", f"Used by {samplers}.", ""]
        if summary := _summary(settings):
            lines += [summary, ""]
        lines += ["| key | default | type |", "|---|---|---|"]
        for key, value in resolved.items():
            kind = types.get(key) or EXTRA_KEYS.get((name, key), ("", ""))[0]
            meaning = EXTRA_KEYS.get((name, key), ("", ""))[1]
            cell = f"{kind}: {meaning}" if meaning else kind
            lines.append(f"| `{key}` | {_value(value)} | {cell.replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines)
