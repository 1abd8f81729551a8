"""
Tests for L{twisted_lb.ajp.container.AJPContainerProtocol}: the container side
serving an application over a L{StringTransport}, with the proxy played by a
PROXY-role L{AJPConnection}.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from tests.ajp.helpers import drain
from tests.ajp.test_protocol import FakeSink
from twisted_lb.ajp import (
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
from twisted_lb.ajp.container import (
    AJPContainerFactory,
    AJPContainerProtocol,
    ContainerRequest,
    ContainerResponse,
)
from twisted_lb.backends.ajp_protocol import AJPClientProtocol

TEXT = ((b"Content-Type", b"text/plain"),)


class AbortingTransport(StringTransport):
    """A L{StringTransport} that records L{abortConnection}."""

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class ContainerTestCase(SynchronousTestCase):
    """Common set-up: a container serving L{app} and a proxy codec."""

    def setUp(self) -> None:
        self.requests: list[ContainerRequest] = []
        self.response = ContainerResponse(200, TEXT, (b"hello",))
        self.proto = AJPContainerFactory(self.app).buildProtocol(None)
        assert isinstance(self.proto, AJPContainerProtocol)
        self.transport = AbortingTransport()
        self.proto.makeConnection(self.transport)
        self.proxy = AJPConnection(Role.PROXY)

    def app(self, request: ContainerRequest) -> ContainerResponse:
        self.requests.append(request)
        return self.response

    def send(self, *events: object) -> None:
        """Deliver C{events} from the proxy."""
        self.proto.dataReceived(b"".join(self.proxy.send(e) for e in events))  # type: ignore[arg-type]

    def pump(self) -> None:
        """Let the transport pull the whole response body, as a TCP transport would."""
        while self.transport.producer is not None:
            assert self.transport.streaming is False
            self.transport.producer.resumeProducing()

    def received(self) -> list[object]:
        """The events the proxy decodes from what the container wrote."""
        data = self.transport.value()
        if data:  # b"" would mean end of file
            self.proxy.receive_data(data)
        self.transport.clear()
        return drain(self.proxy)


class ContainerTests(ContainerTestCase):
    """Requests served by the container."""

    def test_get(self) -> None:
        """A GET is answered with the application's status, headers and body, reusable."""
        forward = ForwardRequest(b"GET", b"/app/", headers=((b"host", b"example.com"),))
        self.send(forward)
        self.pump()
        assert self.received() == [
            SendHeaders(200, b"200", TEXT),
            SendBodyChunk(b"hello"),
            EndResponse(True),
        ]
        assert self.requests == [ContainerRequest(forward, b"")]
        assert self.requests[0].header(b"HOST") == b"example.com"
        assert self.requests[0].header(b"cookie") is None
        self.proxy.start_next_cycle()
        self.send(forward)
        self.pump()
        assert self.received()[-1] == EndResponse(True)
        assert len(self.requests) == 2

    def test_post_across_asks(self) -> None:
        """A body bigger than a packet is asked for with GET_BODY_CHUNK until it is complete."""
        body = bytes(range(256)) * 80  # 20480 bytes
        forward = ForwardRequest(
            b"POST", b"/app/upload", headers=((b"content-length", b"%d" % len(body)),)
        )
        self.send(forward, RequestBody(body[:8186]))
        assert self.requests == []
        sent = 8186
        asks = []
        while not self.requests:
            [ask] = self.received()
            assert isinstance(ask, GetBodyChunk)
            asks.append(ask.length)
            self.send(RequestBody(body[sent : sent + ask.length]))
            sent += ask.length
        assert asks == [8186, len(body) - 2 * 8186]
        assert self.requests[0].body == body
        self.pump()
        assert self.received()[-1] == EndResponse(True)
        self.proxy.start_next_cycle()

    def test_small_post(self) -> None:
        """A body that fits the first packet is answered without any GET_BODY_CHUNK."""
        forward = ForwardRequest(b"POST", b"/", headers=((b"content-length", b"3"),))
        self.send(forward, RequestBody(b"a=1"))
        self.pump()
        events = self.received()
        assert not any(isinstance(e, GetBodyChunk) for e in events)
        assert self.requests[0].body == b"a=1"

    def test_head(self) -> None:
        """A HEAD is answered with headers and END_RESPONSE and no body."""
        self.send(ForwardRequest(b"HEAD", b"/app/"))
        assert self.transport.producer is None
        assert self.received() == [SendHeaders(200, b"200", TEXT), EndResponse(True)]

    def test_cping(self) -> None:
        """A CPING is answered with CPONG."""
        self.send(CPing())
        assert self.received() == [CPong()]
        self.send(ForwardRequest(b"GET", b"/"))
        self.pump()
        assert self.received()[-1] == EndResponse(True)

    def test_streaming(self) -> None:
        """The body is sent one piece per pull, a piece bigger than a packet in several chunks."""
        pulled: list[int] = []

        def body() -> Iterator[bytes]:
            for i, piece in enumerate((b"first", b"y" * 20000, b"last")):
                pulled.append(i)
                yield piece

        self.response = ContainerResponse(200, TEXT, body())
        self.send(ForwardRequest(b"GET", b"/big"))
        assert self.received() == [SendHeaders(200, b"200", TEXT)]
        producer = self.transport.producer
        assert producer is self.proto
        producer.resumeProducing()
        assert self.received() == [SendBodyChunk(b"first")]
        producer.resumeProducing()
        chunks = self.received()
        assert [len(c.data) for c in chunks] == [8184, 8184, 20000 - 2 * 8184]  # type: ignore[attr-defined]
        assert pulled == [0, 1]
        self.pump()
        assert self.received() == [SendBodyChunk(b"last"), EndResponse(True)]
        assert self.transport.producer is None

    def test_application_error(self) -> None:
        """An application that raises is answered with a 500."""

        def broken(request: ContainerRequest) -> ContainerResponse:
            raise RuntimeError("boom")

        self.proto = AJPContainerProtocol(broken)
        self.proto.makeConnection(self.transport)
        self.send(ForwardRequest(b"GET", b"/"))
        self.pump()
        events = self.received()
        assert events[0].status == 500  # type: ignore[attr-defined]
        assert events[-1] == EndResponse(True)
        self.flushLoggedErrors(RuntimeError)

    def test_protocol_error_aborts(self) -> None:
        """A malformed packet from the proxy aborts the connection."""
        packet = self.proxy.send(CPing())
        self.proto.dataReceived(b"\x41\x42" + packet[2:])
        assert self.transport.aborted
        assert self.transport.value() == b""


class LoopbackTests(SynchronousTestCase):
    """The container and L{AJPClientProtocol} wired together in memory."""

    def test_post_round_trip(self) -> None:
        """A POST bigger than a packet and its streamed answer cross the in-memory wire intact."""
        clock = Clock()
        seen: list[ContainerRequest] = []

        def echo(request: ContainerRequest) -> ContainerResponse:
            seen.append(request)
            return ContainerResponse(201, TEXT, (request.body[:10000], request.body[10000:]))

        client, server, pump = connectedServerAndClient(
            lambda: AJPContainerProtocol(echo), lambda: AJPClientProtocol(clock), clock=clock
        )
        ping = client.cping(2)
        pump.flush()
        self.successResultOf(ping)
        body = bytes(range(256)) * 100
        forward = ForwardRequest(
            b"POST", b"/echo", headers=((b"content-length", b"%d" % len(body)),)
        )
        sink = FakeSink()
        d = client.request(forward, BytesIO(body), len(body), sink, 10.0)
        pump.flush()
        assert self.successResultOf(d) is True
        assert seen[0].body == body
        assert sink.calls[0] == ("start", 201, TEXT)
        assert sink.body() == body
        assert sink.calls[-1] == ("finish",)
