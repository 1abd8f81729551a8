"""Helpers for the configuration tests."""

from __future__ import annotations

import os
import textwrap

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    """The path of a file under C{tests/config/fixtures}."""
    return os.path.join(FIXTURES, name)


def write(tmp_path, name: str, text: str) -> str:
    """Write dedented C{text} to C{tmp_path/name}; return the path as a string."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)
