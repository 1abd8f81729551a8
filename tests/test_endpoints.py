"""
Listener endpoint strings get the kernel's listen backlog unless they give
one (twisted_lb.endpoints.with_default_backlog), and a real listener has it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import (
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.endpoints import (
    FALLBACK_BACKLOG,
    default_backlog,
    server_endpoint,
    with_default_backlog,
)
from twisted_lb.service import ProxyService


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:8080", "tcp:8080:backlog=777"),
        ("tcp:8080:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1:backlog=777"),
        ("tcp:8080:127.0.0.1", "tcp:8080:127.0.0.1:backlog=777"),
        ("TCP:8080", "TCP:8080:backlog=777"),
        ("tcp6:8080:interface=\\:\\:1", "tcp6:8080:interface=\\:\\:1:backlog=777"),
        (
            "ssl:8443:privateKey=k.pem:certKey=c.pem",
            "ssl:8443:privateKey=k.pem:certKey=c.pem:backlog=777",
        ),
        ("unix:/run/lb.sock", "unix:/run/lb.sock:backlog=777"),
        # given by name or by position: kept
        ("tcp:8080:backlog=10", "tcp:8080:backlog=10"),
        ("tcp:8080:interface=127.0.0.1:backlog=10", "tcp:8080:interface=127.0.0.1:backlog=10"),
        ("tcp:8080:127.0.0.1:10", "tcp:8080:127.0.0.1:10"),
        ("tcp6:8080:10", "tcp6:8080:10"),
        # no backlog of their own
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_with_default_backlog(description: str, expected: str) -> None:
    assert with_default_backlog(description, 777) == expected


def test_default_backlog_reads_somaxconn(tmp_path: Path) -> None:
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("8192\n")
    assert default_backlog(str(somaxconn)) == 8192
    assert default_backlog(str(tmp_path / "missing")) == FALLBACK_BACKLOG
    garbage = tmp_path / "garbage"
    garbage.write_text("lots\n")
    assert default_backlog(str(garbage)) == FALLBACK_BACKLOG


def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on C{port} (ss's Send-Q of a listener)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[2])


class ListenerBacklogTests(TestCase):
    """A proxy's listeners and the admin endpoint listen with the backlog."""

    def test_listener_backlog(self):
        """Without backlog= the kernel's somaxconn (Twisted's default is 50); with it, as given."""
        return defer.Deferred.fromCoroutine(self._listener_backlog())

    async def _listener_backlog(self) -> None:
        config = ProxyConfig(
            listeners=(
                ListenerConfig("tcp:0:interface=127.0.0.1"),
                ListenerConfig("tcp:0:interface=127.0.0.1:backlog=20"),
            ),
            balancers=(BalancerConfig("c", (MemberConfig(url="ajp://127.0.0.1:9", route="a"),)),),
            routes=(RouteConfig("/", "c"),),
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        ports = []
        for listening in service.listening:
            port = await listening._waitingForPort
            ports.append(port.getHost().port)
        self.assertEqual(_listen_backlog(ports[0]), default_backlog())
        self.assertGreater(default_backlog(), 50)
        self.assertEqual(_listen_backlog(ports[1]), 20)

    @defer.inlineCallbacks
    def test_server_endpoint_backlog(self):
        """server_endpoint (the admin listener) has the default too."""
        from twisted.internet.protocol import Factory, Protocol

        endpoint = server_endpoint(
            reactor, "tcp:0:interface=127.0.0.1", "site.toml", "admin.endpoint"
        )
        port = yield endpoint.listen(Factory.forProtocol(Protocol))
        self.addCleanup(port.stopListening)
        self.assertEqual(_listen_backlog(port.getHost().port), default_backlog())
