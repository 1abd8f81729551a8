"""
Request bodies streamed through the proxy on real loopback sockets: the member
gets the request and the first body bytes while the client is still sending
(the client sends one block, pauses, then the rest; the members note when
their first body bytes came), and the whole body; over AJP a chunked body is
an unknown length (no Content-Length) and the member may answer before the
body ended; to an HTTP member a chunked body stays chunked. The same against
real Tomcat is tests/interop/test_streamed_upload.py.
"""

from __future__ import annotations

import socket
import time
from typing import NamedTuple

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    RequestBody,
    Role,
    SendBodyChunk,
    SendHeaders,
)
from twisted_lb.request_body import ChunkedDecoder, LengthDecoder
from twisted_lb.service import ProxyService

from .support import start_proxy


class _Member(NamedTuple):
    url: str
    name: str


BLOCK = bytes(range(256)) * 256  # 64 KiB
BLOCKS = 32  # 2 MiB in all


class _EarlyAJPMember(Protocol):
    """An AJP container that answers "started" after the first body bytes, "done N" at the end."""

    def connectionMade(self) -> None:
        self.codec = AJPConnection(Role.CONTAINER)
        self.forward: ForwardRequest | None = None
        self.received = 0
        self.first_body_at = 0.0
        self.factory.members.append(self)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.codec.receive_data(data)
        while (event := self.codec.next_event()) is not NEED_DATA:
            if isinstance(event, CPing):
                self.transport.write(self.codec.send(CPong()))
            elif isinstance(event, ForwardRequest):
                self.forward = event
                if event.header(b"content-length") is None:
                    self.ask()
            elif isinstance(event, RequestBody):
                if not event.data:
                    self.transport.write(
                        self.codec.send(SendBodyChunk(b"done %d\n" % self.received))
                        + self.codec.send(EndResponse(True))
                    )
                    continue
                if not self.received:
                    self.first_body_at = time.time()
                    self.transport.write(
                        self.codec.send(
                            SendHeaders(200, b"200", ((b"Content-Type", b"text/plain"),))
                        )
                        + self.codec.send(SendBodyChunk(b"started\n"))
                    )
                self.received += len(event.data)
                self.ask()

    def ask(self) -> None:
        self.transport.write(self.codec.send(GetBodyChunk(8186)))


class _EarlyHTTPMember(Protocol):
    """An HTTP/1.1 member that answers "started" after the first body bytes, "done N" at the end."""

    def connectionMade(self) -> None:
        self.head = b""
        self.decoder: ChunkedDecoder | LengthDecoder | None = None
        self.received = 0
        self.first_body_at = 0.0
        self.factory.members.append(self)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.decoder is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, _, data = self.head.partition(b"\r\n\r\n")
            lower = self.head.lower()
            if b"transfer-encoding: chunked" in lower:
                self.decoder = ChunkedDecoder()
            else:
                length = int(lower.split(b"content-length: ")[1].split(b"\r\n")[0])
                self.decoder = LengthDecoder(length)
        pieces, _ = self.decoder.feed(data)
        size = sum(len(p) for p in pieces)
        if size and not self.received:
            self.first_body_at = time.time()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nstarted\n\r\n"
            )
        self.received += size
        if self.decoder.done:
            line = b"done %d\n" % self.received
            self.transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))


#: How long the client pauses after its first block.
PAUSE = 0.5


def _talk(port: int, head: bytes, chunked: bool) -> tuple[bytes, float]:
    """
    Send the head and one block, pause, send the rest; the whole answer, and
    when the client went on after its pause.
    """

    def frame(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + frame(BLOCK))
        time.sleep(PAUSE)
        resumed = time.time()
        for _ in range(BLOCKS - 1):
            s.sendall(frame(BLOCK))
        if chunked:
            s.sendall(b"0\r\n\r\n")
        while data := s.recv(65536):
            answer += data
            if answer.endswith(b"\r\n0\r\n\r\n"):
                break
    return answer, resumed


class StreamedBodyTests(TestCase):
    timeout = 30

    def setUp(self):
        self.services: list[ProxyService] = []
        self.ports: list[object] = []

    @defer.inlineCallbacks
    def tearDown(self):
        for service in self.services:
            yield service.stopService()
        for port in self.ports:
            yield port.stopListening()

    @defer.inlineCallbacks
    def start(self, member: type[Protocol], scheme: str):
        factory = Factory.forProtocol(member)
        factory.members = []  # type: ignore[attr-defined]
        self.members = factory.members  # type: ignore[attr-defined]
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.ports.append(listening)
        member = _Member(f"{scheme}://127.0.0.1:{listening.getHost().port}", "m")
        service, base = yield defer.Deferred.fromCoroutine(start_proxy([member]))  # type: ignore[list-item]
        self.services.append(service)
        self.port = int(base.rsplit(":", 1)[1])

    def head(self, framing: bytes) -> bytes:
        return b"POST /up HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % framing

    def assert_streamed(self, result: tuple[bytes, float]) -> None:
        answer, resumed = result
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:300])
        self.assertIn(b"started\n", answer)
        self.assertIn(b"done %d\n" % (BLOCKS * len(BLOCK)), answer)
        # The member had the first bytes while the client still held the rest.
        self.assertLess(self.members[0].first_body_at, resumed)

    @defer.inlineCallbacks
    def test_chunked_to_ajp_is_an_unknown_length(self):
        yield self.start(_EarlyAJPMember, "ajp")
        result = yield deferToThread(
            _talk, self.port, self.head(b"Transfer-Encoding: chunked"), True
        )
        self.assert_streamed(result)
        # Answered before the body ended: the connection ends with the answer.
        self.assertIn(b"Connection: close\r\n", result[0])
        forward = self.members[0].forward
        self.assertIsNone(forward.header(b"content-length"))
        self.assertIsNone(forward.header(b"transfer-encoding"))

    @defer.inlineCallbacks
    def test_length_to_ajp(self):
        yield self.start(_EarlyAJPMember, "ajp")
        size = BLOCKS * len(BLOCK)
        result = yield deferToThread(
            _talk, self.port, self.head(b"Content-Length: %d" % size), False
        )
        self.assert_streamed(result)
        self.assertEqual(self.members[0].forward.header(b"content-length"), b"%d" % size)

    @defer.inlineCallbacks
    def test_chunked_to_http_stays_chunked(self):
        yield self.start(_EarlyHTTPMember, "http")
        result = yield deferToThread(
            _talk, self.port, self.head(b"Transfer-Encoding: chunked"), True
        )
        self.assert_streamed(result)
        self.assertIn(b"transfer-encoding: chunked", self.members[0].head.lower())
