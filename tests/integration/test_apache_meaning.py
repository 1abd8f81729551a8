"""
Apache httpd files keep their meaning end to end: each test writes a file
in the style of a real deployment, reads it with the Apache reader and
sends real requests through the proxy it describes.
"""

from __future__ import annotations

import os
import socket
import tempfile
import textwrap

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.config import read_apache
from twisted_lb.service import ProxyService

from .support import Node


def raw_request(port: int, data: bytes) -> defer.Deferred[bytes]:
    """Send C{data} to 127.0.0.1:C{port}; the first bytes of the answer."""

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            return s.recv(65536)

    return deferToThread(talk)


class ApacheSite:
    """An Apache file for the test, read and served on real sockets."""

    def __init__(self, test: TestCase, text: str) -> None:
        directory = tempfile.mkdtemp()
        test.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        self.path = os.path.join(directory, "httpd.conf")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        self.config, self.warnings = read_apache(self.path)
        self.service = ProxyService(self.config, reactor)

    async def start(self) -> list[int]:
        """Start the proxy; the ports of its listeners, in the file's order."""
        self.service.startService()
        ports = []
        for listening in self.service.listening:
            port = await listening._waitingForPort
            ports.append(port.getHost().port)
        return ports


class TraceEnableTests(TestCase):
    """TraceEnable Off (Debian's security.conf) answers TRACE with 405."""

    timeout = 30

    def setUp(self) -> None:
        self.node = Node("node1")
        self.addCleanup(self.node.stop)

    @defer.inlineCallbacks
    def serve(self, trace: str) -> defer.Generator[defer.Deferred[object], object, int]:
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            {trace}
            <Proxy balancer://app>
                BalancerMember {self.node.url} route=node1
            </Proxy>
            ProxyPass / balancer://app/
            """,
        )
        self.addCleanup(site.service.stopService)
        [port] = yield defer.Deferred.fromCoroutine(site.start())
        return port

    @defer.inlineCallbacks
    def test_trace_refused(self):
        port = yield self.serve("TraceEnable Off")
        answer = yield raw_request(port, b"TRACE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 405"), answer[:60])
        # Other methods still pass.
        answer = yield raw_request(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])

    @defer.inlineCallbacks
    def test_trace_passed_by_default(self):
        port = yield self.serve("")
        answer = yield raw_request(port, b"TRACE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(answer.startswith(b"HTTP/1.1 405"), answer[:60])
