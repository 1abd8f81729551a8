"""
The built wheel carries the twistd plugin, and an install into a clean
virtual environment runs C{twistd lbproxy --help} (the plugin is easy to
lose: see style-anchors §8), prints twisted_lb's version and serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The environment for the clean install: nothing of this checkout on the path.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

pytestmark = pytest.mark.slow


def test_wheel_has_plugin_and_installs(tmp_path: Path) -> None:
    """The wheel holds the plugin but no twisted/__init__.py, and twistd lbproxy --help works."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(wheels), str(REPO)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("twisted_lb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/twisted_lb_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert "twisted_lb/py.typed" in names
    # The manager's charts: uPlot (with its licence) and the chart script, served by the proxy.
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "charts.js"):
        assert f"twisted_lb/admin/static/{name}" in names
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=CLEAN_ENV
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True, timeout=600, cwd=tmp_path, env=CLEAN_ENV,
    )
    result = subprocess.run(
        [str(venv / "bin" / "twistd"), "lbproxy", "--help"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=CLEAN_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout and "--demo" in result.stdout
    # Its own version, not Twisted's, from both commands.
    from twisted_lb import __version__

    for argv in (
        [str(venv / "bin" / "twistd"), "lbproxy", "--version"],
        [str(python), "-m", "twisted_lb", "--version"],
    ):
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=CLEAN_ENV
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"twisted_lb {__version__} ("), result.stdout
    # And it runs: a configuration checked, then served until it says it is ready.
    config = tmp_path / "site.toml"
    config.write_text(
        'workers = 1\n[[listen]]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
        '[balancers.app]\n[[balancers.app.members]]\nurl = "ajp://127.0.0.1:1"\n'
        '[[routes]]\npath = "/"\nbalancer = "app"\n'
    )
    twistd = str(venv / "bin" / "twistd")
    check = subprocess.run(
        [twistd, "-n", "lbproxy", "--check", "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=CLEAN_ENV,
    )
    assert check.returncode == 0 and "configuration OK" in check.stderr, check.stderr
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        proxy = subprocess.Popen(
            [twistd, "-n", "lbproxy", "--config", str(config)],
            cwd=tmp_path, env=CLEAN_ENV, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "ready: listening on 127.0.0.1:" not in log.read_text():
                assert proxy.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            proxy.terminate()
            proxy.wait(30)
