"""
The demo runs from a configuration file it writes (so that the manager's
"Reload configuration" has a file to read again) and logs one access-log
line per request to standard output (C{access_log = "-"}).
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.internet.testing import MemoryReactorClock

from twisted_lb.accesslog import AccessLogFile
from twisted_lb.config import read_config
from twisted_lb.demo import demo_config, write_demo_config
from twisted_lb.service import ProxyService
from twisted_lb.tls import make_self_signed


def _config(tmp_path: Path):
    return demo_config(
        [("node1", 9001), ("node2", 9002)], tmp_path,
        "tcp:8443:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1", 8443,
        "tcp:8081:interface=127.0.0.1",
    )  # fmt: skip


def test_demo_config_file_reloads(tmp_path: Path) -> None:
    """The written file is the demo's configuration; a reload reads it (it used to be refused)."""
    make_self_signed(tmp_path / "demo-cert.pem", tmp_path / "demo-key.pem")
    path = tmp_path / "demo.toml"
    config = write_demo_config(_config(tmp_path), path)
    assert config.source == str(path)
    assert config.access_log == "-" and config.workers == 1
    assert [m.route for m in config.balancers[0].members] == ["node1", "node2"]
    assert path.read_text().startswith("# twisted_lb demo configuration")
    proxy = ProxyService(config, MemoryReactorClock())
    path.write_text(path.read_text().replace("loadfactor = 1.0", "loadfactor = 2.0", 1))
    summary = proxy.reload()
    assert "node1" in summary.describe()
    assert proxy.balancers["demo"].balancer.member_by_route("node1").loadfactor == 2.0


def test_access_log_to_standard_output(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    log = AccessLogFile("-")
    request = SimpleNamespace(
        getClientAddress=lambda: SimpleNamespace(host="127.0.0.1"),
        requestHeaders=SimpleNamespace(getRawHeaders=lambda name, default: default),
        method=b"GET", uri=b"/", clientproto=b"HTTP/1.1",
    )  # fmt: skip
    entry = {
        "request": request, "status": 200, "bytes": 5, "member": "ajp://127.0.0.1:9001",
        "route_changed": False, "attempts": 1, "upstream_seconds": 0.001,
    }  # fmt: skip
    log(entry)
    log.reopen()
    log.close()
    log(entry)  # standard output is never closed
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and '"GET / HTTP/1.1" 200 5' in lines[0]


def test_toml_dash_is_standard_output(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        'access_log = "-"\n[[listen]]\nendpoint = "tcp:0"\n[balancers.a]\n'
        '[[balancers.a.members]]\nurl = "ajp://127.0.0.1:1"\n[[routes]]\npath = "/"\nbalancer = "a"\n'
    )
    assert read_config(str(path))[0].access_log == "-"
