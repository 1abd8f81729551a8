"""
scripts/demo.sh installs what twisted_lb needs to run and nothing more;
scripts/venv.sh (and so test.sh) installs the test dependencies; both are
idempotent. Run on a copy of the scripts with a stand-in C{.venv} whose
C{python} and C{twistd} only record how they were called.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
"""


def _checkout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", root / "scripts")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    for name in ("python", "twistd"):
        (bin_dir / name).write_text(_RECORDER.format(log=log))
        (bin_dir / name).chmod(0o755)
    log.write_text("")
    return root, log


def _run(root: Path, *argv: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run(["bash", *argv], cwd=root, check=True, timeout=30, env=env)


def _installs(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "pip install" in line and "-e" in line]


def test_demo_installs_runtime_dependencies_only(tmp_path: Path) -> None:
    """demo.sh installs '.', not '.[test]', once; then starts twistd lbproxy --demo."""
    root, log = _checkout(tmp_path)
    _run(root, "scripts/demo.sh", "--demo-admin", "off")
    [install] = _installs(log)
    assert "-e . " in install + " " and "[test]" not in install
    assert log.read_text().splitlines()[-1] == "twistd -n lbproxy --demo --demo-admin off"
    log.write_text("")
    _run(root, "scripts/demo.sh")
    assert _installs(log) == []  # idempotent


def test_venv_installs_test_dependencies_and_demo_reuses_them(tmp_path: Path) -> None:
    """venv.sh installs '.[test]' once; demo.sh then installs nothing more."""
    root, log = _checkout(tmp_path)
    _run(root, "scripts/venv.sh")
    [install] = _installs(log)
    assert ".[test]" in install
    log.write_text("")
    _run(root, "scripts/venv.sh")
    _run(root, "scripts/demo.sh")
    assert _installs(log) == []


def test_test_dependencies_after_runtime_only(tmp_path: Path) -> None:
    """A .venv the demo made gets the test dependencies from venv.sh (test.sh)."""
    root, log = _checkout(tmp_path)
    _run(root, "scripts/demo.sh")
    log.write_text("")
    _run(root, "scripts/venv.sh")
    [install] = _installs(log)
    assert ".[test]" in install
