"""
Tests for the C{twistd lbproxy} plugin and L{twisted_lb.tap}.

Whether the codec imports Twisted is checked by
C{tests/ajp/test_no_twisted_import.py}.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.service import IService, IServiceMaker, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from zope.interface.verify import verifyObject

from twisted_lb import tap
from twisted_lb.demo import DemoService

_CONFIG = """\
[[listen]]
endpoint = "tcp:0:interface=127.0.0.1"

[balancers.app]

[[balancers.app.members]]
url = "ajp://127.0.0.1:8009"

[[routes]]
path = "/"
balancer = "app"
"""


def _lbproxy() -> IServiceMaker:
    [plugin] = [p for p in getPlugins(IServiceMaker) if p.tapname == "lbproxy"]
    return plugin


def test_plugin_found() -> None:
    """getPlugins(IServiceMaker) finds one lbproxy plugin that provides IServiceMaker."""
    plugin = _lbproxy()
    assert verifyObject(IServiceMaker, plugin)
    assert plugin.options is tap.Options
    assert plugin.makeService is tap.makeService


def _options(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


def test_config_option(tmp_path: Path) -> None:
    """--config FILE names an existing configuration file."""
    config = tmp_path / "site.toml"
    config.write_text(_CONFIG)
    options = _options("--config", str(config))
    assert options["config"] == str(config)
    assert not options["demo"]


def test_demo_option() -> None:
    """--demo alone is accepted and keeps the default listeners."""
    options = _options("--demo")
    assert options["demo"]
    assert options["config"] is None
    assert options["demo-https"] == "tcp:8443:interface=127.0.0.1"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--demo", "--config", __file__],
    ],
    ids=["neither", "both"],
)
def test_usage_errors(argv: list[str]) -> None:
    """Neither option or both options raise UsageError."""
    with pytest.raises(usage.UsageError):
        _options(*argv)


def test_missing_file_is_one_line() -> None:
    """A missing file ends the program with one line (twistd prints usage for a UsageError)."""
    with pytest.raises(SystemExit) as raised:
        _options("--config", "/nonexistent/site.toml")
    assert str(raised.value) == "twisted_lb: /nonexistent/site.toml: no such configuration file"


def test_demo_service_builds(tmp_path: Path) -> None:
    """--demo builds a DemoService without listening or writing anything."""
    reactor = MemoryReactorClock()
    options = _options(
        "--demo",
        "--demo-dir", str(tmp_path),
        "--demo-https", "tcp:0:interface=127.0.0.1",
        "--demo-http", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    service = tap._make_service(options, reactor)
    assert isinstance(service, DemoService)
    assert IService.providedBy(service)
    assert not service.running
    assert reactor.tcpServers == []
    assert list(tmp_path.iterdir()) == []


def test_config_service_builds(tmp_path: Path) -> None:
    """--config builds a MultiService around the proxy (and its SIGHUP reloader) without
    listening until started."""
    config = tmp_path / "site.toml"
    config.write_text("workers = 1\n" + _CONFIG)
    reactor = MemoryReactorClock()
    service = tap._make_service(_options("--config", str(config)), reactor)
    assert isinstance(service, MultiService)
    assert [type(s).__name__ for s in service] == ["ProxyService", "ReloadOnSignal"]
    assert reactor.tcpServers == []


def test_bad_config_exits(tmp_path: Path) -> None:
    """An invalid configuration file ends the program with a message, not a traceback."""
    config = tmp_path / "site.toml"
    config.write_text("[[listen]]\nendpoint = 5\n")
    with pytest.raises(SystemExit) as raised:
        tap._make_service(_options("--config", str(config)), MemoryReactorClock())
    assert "configuration error" in str(raised.value)


@pytest.mark.parametrize("where, key", [("listen", "listen[0].endpoint"), ("admin", "admin.endpoint")])
@pytest.mark.parametrize(
    "kind, problem",
    [
        ("missing", "cannot be read: No such file or directory"),
        ("directory", "cannot be read: Is a directory"),
        ("not-pem", "not a PEM certificate and private key"),
    ],
)
def test_endpoint_file_errors_are_configuration_errors(
    tmp_path: Path, where: str, key: str, kind: str, problem: str
) -> None:
    """
    A file named in an ssl: endpoint string (a listener's or the admin
    listener's) that is missing, a directory or not PEM ends --check with a
    configuration error naming the key, the file and the problem, not a
    traceback.
    """
    pem = tmp_path / "server.pem"
    if kind == "directory":
        pem.mkdir()
    elif kind == "not-pem":
        pem.write_text("not a certificate\n")
    endpoint = f"ssl:0:interface=127.0.0.1:privateKey={pem}:certKey={pem}"
    text = "workers = 1\n" + _CONFIG
    if where == "listen":
        text = text.replace('"tcp:0:interface=127.0.0.1"', f'"{endpoint}"')
    else:
        text += f'\n[admin]\nendpoint = "{endpoint}"\n'
    config = tmp_path / "site.toml"
    config.write_text(text)
    with pytest.raises(SystemExit) as raised:
        tap._make_service(_options("--config", str(config), "--check"), MemoryReactorClock())
    message = str(raised.value)
    assert message.startswith(f"twisted_lb: configuration error: {config}: {key}: ")
    assert str(pem) in message and problem in message


def test_check_lists_every_refused_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """
    --check on an Apache file with five refused lines names all five (file,
    line, directive, reason) in one run and exits non-zero; the warnings
    for accepted lines are printed once per directive.
    """
    config = tmp_path / "httpd.conf"
    config.write_text(
        "Listen 127.0.0.1:0\n"
        "LogFormat a\n"
        "LogFormat b\n"
        "RewriteRule ^/(.*) http://x/$1 [P,CO=a:b:c]\n"
        "<Proxy balancer://app>\n"
        "  BalancerMember ajp://127.0.0.1:8009 route=n1 frobnicate=2\n"
        "</Proxy>\n"
        "ProxyPass /app balancer://app\n"
        "Frobnicate yes\n"
        "ProxyRequests On\n"
        "<LocationMatch ^/x>\n"
        "</LocationMatch>\n"
    )
    with pytest.raises(SystemExit) as raised:
        tap._make_service(_options("--config", str(config), "--check"), MemoryReactorClock())
    message = str(raised.value)
    lines = message.splitlines()
    assert lines[0] == "twisted_lb: 5 configuration errors:"
    for line, (number, name) in zip(
        lines[1:],
        [(4, "RewriteRule"), (6, "BalancerMember"), (9, "Frobnicate"), (10, "ProxyRequests"),
         (11, "<LocationMatch>")],
        strict=True,
    ):
        assert line.startswith(f"  {config}: line {number}: ") and name in line
    warnings = capsys.readouterr().err.splitlines()
    assert [w for w in warnings if "LogFormat" in w] == [
        "warning: line 2 and 1 more line: LogFormat is accepted and has no effect on proxying: "
        "twisted_lb writes its own logs (access_log and log_format in the native file)"
    ]
