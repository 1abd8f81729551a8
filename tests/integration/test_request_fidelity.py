"""
What an AJP member is told about a client's request, on real loopback
sockets: the client's protocol, the server name when the client sent no
Host, the host of an absolute-form target; and what the client is told when
the proxy closes its connection.
"""

from __future__ import annotations

import socket
import time
from typing import Any

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
from twisted_lb.exchange import request_protocol
from twisted_lb.routing import fallback_host, host_name
from twisted_lb.service import ProxyService
from twisted_lb.testing import FaultyAJPMember

from ..robustness.support import raw_exchange


def _status(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def _head(answer: bytes) -> list[bytes]:
    return answer.partition(b"\r\n\r\n")[0].split(b"\r\n")


def test_request_protocol() -> None:
    assert request_protocol(b"HTTP/1.0") == b"HTTP/1.0"
    assert request_protocol(b"HTTP/1.1") == b"HTTP/1.1"
    # twisted.web's name for HTTP/2, as Apache (and so mod_proxy_ajp) spells it.
    assert request_protocol(b"HTTP/2") == b"HTTP/2.0"
    assert request_protocol(b"HTTP/9.9") == b"HTTP/1.1"


class _Case(TestCase):
    timeout = 20
    listener: dict[str, Any] = {}

    def setUp(self) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self.member = FaultyAJPMember().start()
        self.addCleanup(self.member.stop)
        config = ProxyConfig(
            listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", **self.listener),),
            balancers=(
                BalancerConfig(
                    "cluster",
                    (MemberConfig(url=self.member.url, route="node1", timeout=2.0, ping=0.5),),
                ),
            ),
            routes=(RouteConfig("/app", "cluster"),),
        )
        self.proxy = ProxyService(config, reactor)
        self.proxy.startService()
        port = await self.proxy.listening[0]._waitingForPort
        self.port = port.getHost().port

    def tearDown(self) -> defer.Deferred[None]:
        return self.proxy.stopService()

    def send(self, data: bytes) -> defer.Deferred[bytes]:
        return raw_exchange(self.port, data)

    @property
    def forward(self) -> Any:
        return self.member.requests[-1].forward


class ProtocolTests(_Case):
    @defer.inlineCallbacks
    def test_client_protocol_reaches_the_member(self):
        """
        AJP's protocol field is the client's (it was always HTTP/1.1), on the
        fast lane and on twisted.web's.
        """
        for request, protocol in (
            (b"GET /app HTTP/1.0\r\nHost: a\r\n\r\n", b"HTTP/1.0"),
            (b"POST /app HTTP/1.0\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", b"HTTP/1.0"),
            (b"GET /app HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", b"HTTP/1.1"),
            (
                b"POST /app HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
                b"HTTP/1.1",
            ),
        ):
            answer = yield self.send(request)
            self.assertEqual(_status(answer), 200, answer[:200])
            self.assertEqual(self.forward.protocol, protocol, request)


class ConnectionCloseTests(_Case):
    @defer.inlineCallbacks
    def test_http_1_0_response_says_close(self):
        """
        HTTP/1.0, with or without Connection: keep-alive: the proxy closes
        after the response, and the response says so (Twisted said nothing,
        so a keep-alive client could not tell).
        """
        for extra in (b"", b"Connection: keep-alive\r\n"):
            answer = yield self.send(b"GET /app HTTP/1.0\r\nHost: a\r\n" + extra + b"\r\n")
            self.assertEqual(_status(answer), 200, answer[:200])
            self.assertIn(b"Connection: close", _head(answer), answer[:300])

    def test_http_1_0_keep_alive_client_sees_the_close_at_once(self):
        """
        A keep-alive HTTP/1.0 client reading until the server closes gets the
        end of the connection right after the response.
        """

        def talk() -> tuple[bytes, float]:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"GET /app HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
                started = time.monotonic()
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                return data, time.monotonic() - started

        from twisted.internet.threads import deferToThread

        def check(result: tuple[bytes, float]) -> None:
            data, seconds = result
            self.assertEqual(_status(data), 200)
            self.assertLess(seconds, 3)

        return deferToThread(talk).addCallback(check)

    @defer.inlineCallbacks
    def test_http_1_1_keep_alive_says_nothing(self):
        answer = yield self.send(
            b"GET /app HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
            b"GET /app HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        first, _, second = answer.partition(b"HTTP/1.1 200 ")
        self.assertNotIn(b"Connection: close", _head(answer))
        self.assertIn(b"Connection: close", second)


class NoHostTests(_Case):
    @defer.inlineCallbacks
    def test_server_name_is_the_listener_address(self):
        """
        HTTP/1.0 without Host: AJP's server_name is the address the client
        connected to, with its port (it was empty: Tomcat built
        C{Location: http://:PORT/}); no Host header is made up.
        """
        answer = yield self.send(b"GET /app HTTP/1.0\r\n\r\n")
        self.assertEqual(_status(answer), 200, answer[:200])
        self.assertEqual(self.forward.server_name, b"127.0.0.1")
        self.assertEqual(self.forward.server_port, self.port)
        self.assertIsNone(self.member.requests[-1].header(b"host"))

    @defer.inlineCallbacks
    def test_host_header_still_wins(self):
        yield self.send(b"GET /app HTTP/1.0\r\nHost: www.example.com:8443\r\n\r\n")
        self.assertEqual(self.forward.server_name, b"www.example.com")
        yield self.send(b"GET /app HTTP/1.0\r\nHost: [::1]:8443\r\n\r\n")
        self.assertEqual(self.forward.server_name, b"[::1]")


class ServerNameTests(_Case):
    listener = {"server_name": "www.example.com"}

    @defer.inlineCallbacks
    def test_server_name_is_the_configured_one(self):
        """With the listener's server_name (Apache's ServerName), that name."""
        answer = yield self.send(b"GET /app HTTP/1.0\r\n\r\n")
        self.assertEqual(_status(answer), 200, answer[:200])
        self.assertEqual(self.forward.server_name, b"www.example.com")
        yield self.send(b"GET /app HTTP/1.0\r\nHost: other.example\r\n\r\n")
        self.assertEqual(self.forward.server_name, b"other.example")


@pytest.mark.parametrize(
    ("server_name", "local", "port", "secure", "expected"),
    [
        (None, "127.0.0.1", 8080, False, b"127.0.0.1:8080"),
        (None, "127.0.0.1", 80, False, b"127.0.0.1"),
        (None, "127.0.0.1", 443, True, b"127.0.0.1"),
        (None, "::1", 8443, True, b"[::1]:8443"),
        (None, "", 0, False, b"localhost"),
        (b"www.example.com", "127.0.0.1", 8080, False, b"www.example.com:8080"),
        (b"www.example.com:80", "127.0.0.1", 8080, False, b"www.example.com:80"),
        (b"[::1]", "::1", 8080, False, b"[::1]:8080"),
        (b"[::1]:81", "::1", 8080, False, b"[::1]:81"),
    ],
)
def test_fallback_host(server_name, local, port, secure, expected) -> None:
    assert fallback_host(server_name, local, port, secure) == expected


def test_host_name() -> None:
    assert host_name(b"a.example:8080") == b"a.example"
    assert host_name(b"a.example") == b"a.example"
    assert host_name(b"[::1]:8080") == b"[::1]"
    assert host_name(b"") == b""
