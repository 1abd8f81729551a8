"""
The documentation site builds with Sphinx, warnings as errors: every page in
a toctree, every link and anchor between pages resolves, the API reference of
C{twisted_lb.api} is drawn from its docstrings.

Skipped when Sphinx is not installed (C{pip install -e '.[docs]'}), unless
C{CI} is set, where the test extra has it and a skip would hide a broken build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    try:
        import furo  # noqa: F401
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the docs dependencies are missing: {e}")
        pytest.skip(f"the docs dependencies are missing ({e}): pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E",
         "-b", "html", str(REPO / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    assert "twisted_lb.api.ProxyService" in api and "The whole proxy as a Twisted service" in api
    for page in ("deployment", "upgrading", "changelog", "operations", "configuration"):
        assert (tmp_path / "html" / f"{page}.html").exists()
