"""
Sphinx configuration of twisted_lb's documentation site.

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are the Markdown files of docs/ (MyST); the API reference is drawn
from the docstrings of L{twisted_lb.api}, which are written in Twisted's
epytext: L{epytext_fields} turns their fields and markup into reST as they
are read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted_lb import __version__  # noqa: E402

project = "twisted_lb"
author = "the twisted_lb authors"
copyright = "the twisted_lb authors"  # noqa: A001 (Sphinx's name)
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"twisted_lb {__version__}"
myst_heading_anchors = 4
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

_FIELDS = {
    "param": "param",
    "type": "type",
    "ivar": "ivar",
    "cvar": "cvar",
    "var": "var",
    "return": "returns",
    "rtype": "rtype",
    "raise": "raises",
    "raises": "raises",
    "keyword": "keyword",
    "note": "note",
    "see": "seealso",
}
_MARKUP = re.compile(r"([CLIBU])\{([^{}]*)\}")


def _markup(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        kind, inner = match.groups()
        if kind in "CL":
            # L{text <target>} shows text; a code span either way.
            inner = re.sub(r"\s*<[^>]*>$", "", inner)
            return f"``{inner}``" if inner else ""
        if kind == "I":
            return f"*{inner}*"
        if kind == "B":
            return f"**{inner}**"
        return inner

    previous = None
    while previous != text:
        previous, text = text, _MARKUP.sub(one, text)
    return text


def epytext_fields(app, what, name, obj, options, lines: list[str]) -> None:
    """Rewrite an epytext docstring (C{@param x:}, C{C{...}}, C{L{...}}) as reST, in place."""
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        match = re.match(r"@(\w+)(\s+[^:]+)?:(.*)$", stripped)
        if match and match.group(1) in _FIELDS:
            field, arg, rest = match.groups()
            line = f"{indent}:{_FIELDS[field]}{arg or ''}:{rest}"
        out.append(_markup(line))
    lines[:] = out


def setup(app) -> None:
    app.connect("autodoc-process-docstring", epytext_fields)
