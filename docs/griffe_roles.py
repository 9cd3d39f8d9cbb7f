"""A Griffe extension for the API reference: the docstrings' Sphinx roles become mkdocs cross-references.

rgppl's docstrings name other objects as ``:func:`rgppl.sample``` or ``:class:`~rgppl.lattice.Lattice```, which
reads well in a terminal.  mkdocstrings renders docstrings as Markdown, so each role is rewritten to the
autorefs link ``[`sample`][rgppl.sample]`` when the docstrings are loaded; a name that resolves nowhere fails
``mkdocs build --strict``.  Names without a module resolve in the scope of the object that mentions them.
"""

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)`")


def _autoref(match: re.Match) -> str:
    short, target = match.groups()
    shown = target.rsplit(".", 1)[-1] if short else target
    return f"[`{shown}`][{target}]"


class SphinxRolesToAutorefs(griffe.Extension):
    """Rewrite the Sphinx roles of every loaded docstring as autorefs links."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        """Called by Griffe for every object it loads."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_autoref, obj.docstring.value)
