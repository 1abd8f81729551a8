"""
Tests for L{twisted_lb.backends.ajp_protocol.AJPClientProtocol}: one AJP connection on a
L{StringTransport} and a L{Clock}, with the member played by a CONTAINER-role
L{AJPConnection} so that every byte the member sends is built by the codec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from io import BytesIO

from twisted.internet.error import ConnectionAborted, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.ajp.helpers import drain
from twisted_lb.ajp import (
    AJPConnection,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    RequestBody,
    RequestTooLarge,
    Role,
    SendBodyChunk,
    SendHeaders,
)
from twisted_lb.ajp._constants import RESPONSE_HEADER_CODES
from twisted_lb.backends.ajp_protocol import READ_SIZE, AJPClientProtocol
from twisted_lb.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    ResponseAborted,
    ResponseNeverReceived,
)
from twisted_lb.request_body import StreamedBody

TIMEOUT = 10.0
GET = ForwardRequest(
    b"GET",
    b"/app/index.html",
    remote_addr=b"192.0.2.7",
    server_name=b"www.example.com",
    server_port=443,
    is_ssl=True,
    headers=((b"host", b"www.example.com"), (b"accept", b"*/*")),
    query_string=b"a=1",
    route=b"node1",
    secret=b"s3cret",
)
OK_HEADERS = ((b"Content-Type", b"text/plain"), (b"Content-Length", b"11"))


def spare_member(*already_sent: object) -> AJPConnection:
    """
    A second member codec in the middle of an exchange, for packets that the
    test member itself would refuse to send (they are mangled before use).

    @param already_sent: events sent on it before it is returned.
    """
    member = AJPConnection(Role.CONTAINER)
    member.receive_data(AJPConnection(Role.PROXY).send(GET))
    drain(member)
    for event in already_sent:
        member.send(event)  # type: ignore[arg-type]
    return member


class FakeTransport(StringTransport):
    """
    A L{StringTransport} that records L{abortConnection} and, like a TCP
    transport, reports C{connectionLost} on the next turn of C{clock}.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(lenient=True)
        self.aborted = False
        self.protocol: AJPClientProtocol | None = None
        self._clock = clock

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()
        if self.connected and self.protocol is not None:
            self.connected = False
            self._clock.callLater(0, self.protocol.connectionLost, Failure(ConnectionAborted()))


class FakeSink:
    """
    A L{twisted_lb.exchange.ResponseSink} that records every call.

    @ivar calls: C{(name, *args)} tuples in call order.
    @ivar gone: the callback given to L{on_client_gone}.
    @ivar on_write: called after each L{write}, to act as a client would.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.started = False
        self.gone: Callable[[], object] | None = None
        self.on_write: Callable[[bytes], object] | None = None

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.calls.append(("start", status, tuple(headers)))

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))
        if self.on_write is not None:
            self.on_write(data)

    def finish(self) -> None:
        self.calls.append(("finish",))

    def register_producer(self, producer: object) -> None:
        self.calls.append(("register", producer))

    def unregister_producer(self) -> None:
        self.calls.append(("unregister",))

    def on_client_gone(self, callback: Callable[[], object]) -> None:
        self.gone = callback

    def body(self) -> bytes:
        """All bytes written so far."""
        return b"".join(c[1] for c in self.calls if c[0] == "write")  # type: ignore[misc]


class ProtocolTestCase(SynchronousTestCase):
    """Common set-up: a connected protocol, its transport and a member codec."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.proto = AJPClientProtocol(self.clock)
        self.transport = FakeTransport(self.clock)
        self.transport.protocol = self.proto
        self.proto.makeConnection(self.transport)
        self.member = AJPConnection(Role.CONTAINER)
        self.sink = FakeSink()

    def received(self) -> list[object]:
        """The events the member decodes from what the protocol wrote."""
        data = self.transport.value()
        if data:  # b"" would mean end of file
            self.member.receive_data(data)
        self.transport.clear()
        return drain(self.member)

    def answer(self, *events: object) -> bytes:
        """Encode C{events} as the member and deliver them at once."""
        data = b"".join(self.member.send(e) for e in events)  # type: ignore[arg-type]
        self.proto.dataReceived(data)
        return data

    def encode(self, *events: object) -> bytes:
        """Encode C{events} as the member without delivering them."""
        return b"".join(self.member.send(e) for e in events)  # type: ignore[arg-type]

    def get(self, sink: FakeSink | None = None, forward: ForwardRequest = GET):
        """Start a bodiless request and let the member read it."""
        d = self.proto.request(forward, None, 0, sink or self.sink, TIMEOUT)
        assert self.received() == [forward]
        return d

    def post(self, body: bytes, sink: FakeSink | None = None):
        """Start a request with C{body} and a Content-Length."""
        forward = ForwardRequest(
            b"POST", b"/app/upload", headers=((b"content-length", b"%d" % len(body)),)
        )
        d = self.proto.request(forward, BytesIO(body), len(body), sink or self.sink, TIMEOUT)
        return forward, d

    def ok(self) -> None:
        """The member answers 200 with an 11-byte body in two chunks."""
        self.answer(
            SendHeaders(200, b"200", OK_HEADERS),
            SendBodyChunk(b"hello "),
            SendBodyChunk(b"world"),
            EndResponse(True),
        )


class ExchangeTests(ProtocolTestCase):
    """Whole request/response exchanges."""

    def test_get(self) -> None:
        """A GET writes exactly its FORWARD_REQUEST and streams the answer into the sink."""
        d = self.proto.request(GET, None, 0, self.sink, TIMEOUT)
        assert self.transport.value() == AJPConnection(Role.PROXY).send(GET)
        assert self.received() == [GET]
        self.assertNoResult(d)
        self.ok()
        assert self.sink.calls == [
            ("start", 200, OK_HEADERS),
            ("register", self.proto),
            ("write", b"hello world"),
            ("unregister",),
            ("finish",),
        ]
        assert self.successResultOf(d) is True
        assert self.proto.reusable
        assert not self.transport.aborted

    def test_next_cycle(self) -> None:
        """After a reusable exchange the same connection carries a second one."""
        d1 = self.get()
        self.ok()
        self.member.start_next_cycle()
        sink = FakeSink()
        d2 = self.get(sink)
        self.ok()
        assert self.successResultOf(d1) is True
        assert self.successResultOf(d2) is True
        assert sink.body() == b"hello world"

    def test_cping_between_exchanges(self) -> None:
        """A CPING after a reusable exchange is answered and leaves the connection reusable."""
        self.get()
        self.ok()
        self.member.start_next_cycle()
        d = self.proto.cping(2)
        assert self.received() == [CPing()]
        self.answer(CPong())
        assert self.successResultOf(d) is None
        assert self.proto.reusable

    def test_reuse_0(self) -> None:
        """An END_RESPONSE with reuse=0 fires the Deferred with False; the connection is spent."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS), SendBodyChunk(b"hello world"))
        self.answer(EndResponse(False))
        assert self.successResultOf(d) is False
        assert not self.proto.reusable
        assert self.sink.calls[-1] == ("finish",)

    def test_one_byte_at_a_time(self) -> None:
        """A response that arrives one byte at a time reaches the sink as a whole one does."""
        d = self.get()
        data = self.encode(
            SendHeaders(200, b"200", OK_HEADERS),
            SendBodyChunk(b"hello "),
            SendBodyChunk(b"world"),
            EndResponse(True),
        )
        for i in range(len(data)):
            self.assertNoResult(d)
            self.proto.dataReceived(data[i : i + 1])
        assert self.successResultOf(d) is True
        assert self.sink.calls[0] == ("start", 200, OK_HEADERS)
        assert self.sink.body() == b"hello world"
        assert self.sink.calls[-1] == ("finish",)

    def test_empty_chunk_ignored(self) -> None:
        """An empty SEND_BODY_CHUNK (a flush) writes nothing to the sink."""
        d = self.get()
        self.answer(
            SendHeaders(200, b"200", ()),
            SendBodyChunk(b""),
            SendBodyChunk(b"x"),
            SendBodyChunk(b""),
            EndResponse(True),
        )
        assert [c for c in self.sink.calls if c[0] == "write"] == [("write", b"x")]
        assert self.successResultOf(d) is True

    def test_flush_after_end_ignored(self) -> None:
        """An empty SEND_BODY_CHUNK trailing END_RESPONSE does not break the connection."""
        d = self.get()
        self.ok()
        flush = spare_member(SendHeaders(200, b"200", ())).send(SendBodyChunk(b""))
        self.proto.dataReceived(flush)
        assert self.successResultOf(d) is True
        assert not self.transport.aborted
        self.member.start_next_cycle()
        d2 = self.get(FakeSink())
        self.ok()
        assert self.successResultOf(d2) is True

    def test_head_without_body(self) -> None:
        """A response declaring a Content-Length but carrying no body (HEAD) completes."""
        d = self.get(forward=ForwardRequest(b"HEAD", b"/app/"))
        self.answer(SendHeaders(200, b"200", OK_HEADERS), EndResponse(True))
        assert self.successResultOf(d) is True
        assert self.sink.body() == b""

    def test_request_too_large(self) -> None:
        """A FORWARD_REQUEST too big for a packet raises before anything is written."""
        big = ForwardRequest(b"GET", b"/", headers=((b"x-big", b"a" * 9000),))
        with self.assertRaises(RequestTooLarge):
            self.proto.request(big, None, 0, self.sink, TIMEOUT)
        assert self.transport.value() == b""
        d = self.get()
        self.ok()
        assert self.successResultOf(d) is True


class RequestBodyTests(ProtocolTestCase):
    """Request bodies go out one packet per grant."""

    def test_first_packet_unasked(self) -> None:
        """The first body packet follows the FORWARD_REQUEST at once; the rest wait for asks."""
        body = bytes(range(256)) * 80  # 20480 bytes: three packets and a bit
        forward, d = self.post(body)
        events = self.received()
        assert events == [forward, RequestBody(body[:8186])]
        self.answer(GetBodyChunk(100))
        assert self.received() == [RequestBody(body[8186:8286])]
        self.answer(GetBodyChunk(0xFFFF))
        assert self.received() == [RequestBody(body[8286:16472])]
        assert self.transport.value() == b""
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(body[16472:])]
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(b"")]
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(b"")]
        self.ok()
        assert self.successResultOf(d) is True

    def test_body_closed_mid_upload(self) -> None:
        """A body file closed by a departed client ends the exchange as aborted, not as a member fault."""
        body = bytes(range(256)) * 80
        forward = ForwardRequest(
            b"POST", b"/app/upload", headers=((b"content-length", b"%d" % len(body)),)
        )
        stream = BytesIO(body)
        d = self.proto.request(forward, stream, len(body), self.sink, TIMEOUT)
        self.received()
        stream.close()
        self.answer(GetBodyChunk(8186))
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted

    def test_small_body(self) -> None:
        """A body smaller than a packet travels whole right after the FORWARD_REQUEST."""
        forward, d = self.post(b"a=1&b=2")
        assert self.received() == [forward, RequestBody(b"a=1&b=2")]
        self.ok()
        assert self.successResultOf(d) is True

    def test_body_ends_early(self) -> None:
        """A body stream shorter than its length fails the exchange when the member asks."""
        forward = ForwardRequest(b"POST", b"/", headers=((b"content-length", b"9000"),))
        d = self.proto.request(forward, BytesIO(b"x" * 8186), 9000, self.sink, TIMEOUT)
        self.received()
        self.answer(GetBodyChunk(8186))
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted

    def test_timeout_after_get_body_chunk(self) -> None:
        """A member silent after reading the body times out as a slow request (504), not mid-response."""
        forward, d = self.post(b"x" * 9000)
        self.received()
        self.answer(GetBodyChunk(8186))
        self.clock.advance(TIMEOUT)
        failure = self.failureResultOf(d, BackendTimeout)
        assert failure.value.status == 504
        assert self.sink.calls == []

    def test_lost_after_get_body_chunk(self) -> None:
        """A connection lost after a GET_BODY_CHUNK but before the headers never got a response."""
        forward, d = self.post(b"x" * 9000)
        self.received()
        self.answer(GetBodyChunk(8186))
        self.proto.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ResponseNeverReceived)


class CPingTests(ProtocolTestCase):
    """CPING/CPONG."""

    def test_cping(self) -> None:
        """CPING writes the five CPING bytes and the Deferred fires on CPONG."""
        d = self.proto.cping(2)
        assert self.transport.value() == b"\x12\x34\x00\x01\x0a"
        assert not self.proto.reusable
        assert self.received() == [CPing()]
        self.assertNoResult(d)
        self.answer(CPong())
        assert self.successResultOf(d) is None
        assert self.proto.reusable
        self.clock.advance(10)
        assert not self.transport.aborted

    def test_cping_timeout(self) -> None:
        """Without CPONG in time the ping fails with BackendTimeout and the connection is aborted."""
        d = self.proto.cping(2)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, BackendTimeout)
        assert self.transport.aborted
        assert not self.proto.reusable

    def test_cping_garbage(self) -> None:
        """A malformed answer to CPING fails it with BackendProtocolError and aborts."""
        d = self.proto.cping(2)
        self.received()
        self.proto.dataReceived(b"\x12\x34" + self.encode(CPong())[2:])
        self.failureResultOf(d, BackendProtocolError)
        assert self.transport.aborted

    def test_cping_connection_lost(self) -> None:
        """A connection closed while waiting for CPONG fails the ping."""
        d = self.proto.cping(2)
        self.proto.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ResponseNeverReceived)


class ReadSizeTests(SynchronousTestCase):
    """Reads from a member are larger than Twisted's default."""

    def test_read_size_raised_on_tcp_transports(self) -> None:
        transport = FakeTransport(Clock())
        transport.bufferSize = 65536  # as twisted.internet.tcp.Connection has
        proto = AJPClientProtocol(Clock())
        transport.protocol = proto
        proto.makeConnection(transport)
        assert transport.bufferSize == READ_SIZE > 65536


class TimeoutTests(ProtocolTestCase):
    """The member's silence is timed."""

    def test_timeout_before_headers(self) -> None:
        """A member silent for the whole timeout fails the exchange with BackendTimeout (504)."""
        d = self.get()
        self.clock.advance(TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        failure = self.failureResultOf(d, BackendTimeout)
        assert failure.value.status == 504
        assert self.transport.aborted
        assert self.sink.calls == []

    def test_each_packet_rearms(self) -> None:
        """Each packet from the member restarts the timeout."""
        d = self.get()
        self.clock.advance(TIMEOUT - 1)
        self.answer(SendHeaders(200, b"200", ()))
        self.clock.advance(TIMEOUT - 1)
        self.answer(SendBodyChunk(b"a"))
        self.clock.advance(TIMEOUT - 1)
        self.answer(EndResponse(True))
        assert self.successResultOf(d) is True
        self.clock.advance(TIMEOUT * 2)
        assert not self.transport.aborted

    def test_timeout_counts_from_last_packet(self) -> None:
        """After a packet, the timeout fires a full timeout after that packet, not before."""
        d = self.get()
        self.clock.advance(TIMEOUT - 1)
        self.answer(SendHeaders(200, b"200", OK_HEADERS))
        self.clock.advance(TIMEOUT - 0.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.failureResultOf(d, ResponseAborted)

    def test_stall_mid_body(self) -> None:
        """A member that stalls after the response started fails it with ResponseAborted."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS), SendBodyChunk(b"hello"))
        self.clock.advance(TIMEOUT)
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted
        assert self.sink.body() == b"hello"
        assert ("finish",) not in self.sink.calls

    def next_exchange(self, timeout: float, after: float = 0.0):
        """After one answered exchange and C{after} seconds, start the next one with C{timeout}."""
        d = self.get()
        self.ok()
        assert self.successResultOf(d) is True
        self.clock.advance(after)
        self.member.start_next_cycle()
        self.sink = FakeSink()
        d = self.proto.request(GET, None, 0, self.sink, timeout)
        assert self.received() == [GET]
        return d

    def test_one_timer_across_exchanges(self) -> None:
        """The timer outlives an exchange instead of being cancelled and set again."""
        d = self.get()
        self.ok()
        assert self.successResultOf(d) is True
        assert len([c for c in self.clock.getDelayedCalls() if c.active()]) == 1
        self.clock.advance(TIMEOUT * 3)
        assert not self.transport.aborted
        assert self.clock.getDelayedCalls() == []

    def test_next_exchange_timed_from_its_start(self) -> None:
        """A request sent just before the old timer fires still gets its whole timeout."""
        d = self.next_exchange(TIMEOUT, after=TIMEOUT - 1)
        self.clock.advance(TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, BackendTimeout)

    def test_shorter_timeout_brings_the_timer_forward(self) -> None:
        """A route's shorter timeout is kept even though a longer timer is pending."""
        d = self.next_exchange(1.0)
        self.clock.advance(1.0)
        self.failureResultOf(d, BackendTimeout)


class MalformedTests(ProtocolTestCase):
    """A member that breaks the protocol."""

    def headers_packet(self) -> bytes:
        """A valid SEND_HEADERS packet to mangle."""
        return spare_member().send(SendHeaders(200, b"200", OK_HEADERS))

    def test_wrong_magic(self) -> None:
        """A packet with the proxy's magic fails the exchange with BackendProtocolError."""
        d = self.get()
        self.proto.dataReceived(b"\x12\x34" + self.headers_packet()[2:])
        self.failureResultOf(d, BackendProtocolError)
        assert self.transport.aborted
        assert self.sink.calls == []

    def test_unknown_type(self) -> None:
        """A packet of an unknown message type fails the exchange with BackendProtocolError."""
        d = self.get()
        packet = self.headers_packet()
        self.proto.dataReceived(packet[:4] + b"\x63" + packet[5:])
        self.failureResultOf(d, BackendProtocolError)
        assert self.transport.aborted

    def test_bad_header_code(self) -> None:
        """A SEND_HEADERS with an unknown header code fails with BackendProtocolError."""
        d = self.get()
        packet = self.headers_packet()
        code = RESPONSE_HEADER_CODES[b"Content-Type"]
        assert packet.count(code) == 1
        self.proto.dataReceived(packet.replace(code, b"\xa0\x7f"))
        self.failureResultOf(d, BackendProtocolError)
        assert self.transport.aborted
        assert self.sink.calls == []

    def test_malformed_after_headers(self) -> None:
        """A malformed packet after the response started fails it with ResponseAborted."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS))
        chunk = spare_member(SendHeaders(200, b"200", ())).send(SendBodyChunk(b"data"))
        self.proto.dataReceived(chunk[:4] + b"\x63" + chunk[5:])
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted

    def test_out_of_order(self) -> None:
        """A second SEND_HEADERS is a protocol error that cuts the started response."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", ()))
        self.proto.dataReceived(self.headers_packet())
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted

    def test_too_many_bytes(self) -> None:
        """Body bytes beyond the Content-Length fail the exchange; the excess is not written."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS), SendBodyChunk(b"hello world"))
        self.answer(SendBodyChunk(b"!"))
        self.failureResultOf(d, BackendProtocolError)
        assert self.transport.aborted
        assert self.sink.body() == b"hello world"

    def test_too_few_bytes(self) -> None:
        """A response ending short of its Content-Length fails with ResponseAborted."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS), SendBodyChunk(b"hello"))
        self.answer(EndResponse(True))
        self.failureResultOf(d, ResponseAborted)
        assert ("finish",) not in self.sink.calls
        assert self.transport.aborted

    def test_bad_content_length(self) -> None:
        """A non-numeric Content-Length from the member is a BackendProtocolError."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", ((b"Content-Length", b"eleven"),)))
        self.failureResultOf(d, BackendProtocolError)
        assert self.sink.calls == []


class ConnectionLostTests(ProtocolTestCase):
    """The member closes the connection mid-exchange."""

    def test_lost_before_response(self) -> None:
        """A connection lost before any response byte fails with ResponseNeverReceived."""
        d = self.get()
        self.proto.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ResponseNeverReceived)
        assert not self.proto.connected
        assert not self.proto.reusable

    def test_lost_mid_response(self) -> None:
        """A connection lost after the headers fails with ResponseAborted."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS))
        self.proto.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ResponseAborted)
        assert ("finish",) not in self.sink.calls

    def test_on_lost_called_once(self) -> None:
        """The on_lost callback runs once with the protocol."""
        lost: list[AJPClientProtocol] = []
        self.proto.on_lost = lost.append
        self.proto.connectionLost(Failure(ConnectionLost()))
        assert lost == [self.proto]


class RejectedTests(ProtocolTestCase):
    """Tomcat's answer to a wrong or missing secret."""

    def test_403_reuse_0(self) -> None:
        """A 403 ended with reuse=0 fails with BackendRejected and nothing reaches the sink."""
        d = self.get()
        self.answer(SendHeaders(403, b"403", ((b"Content-Length", b"0"),)))
        self.answer(EndResponse(False))
        failure = self.failureResultOf(d, BackendRejected)
        assert not failure.value.reached_application
        assert self.sink.calls == []
        assert self.transport.aborted

    def test_403_with_body_reuse_0(self) -> None:
        """A 403 with a small body and reuse=0 is held back entirely."""
        d = self.get()
        self.answer(
            SendHeaders(403, b"403", ((b"Content-Type", b"text/html"),)),
            SendBodyChunk(b"<h1>Forbidden</h1>"),
            EndResponse(False),
        )
        self.failureResultOf(d, BackendRejected)
        assert self.sink.calls == []

    def test_403_reuse_1(self) -> None:
        """A 403 with reuse=1 is the application's answer and passes through whole."""
        d = self.get()
        headers = ((b"Content-Type", b"text/plain"),)
        self.answer(SendHeaders(403, b"403", headers), SendBodyChunk(b"no"))
        assert self.sink.calls == []
        self.answer(SendBodyChunk(b"pe"), EndResponse(True))
        assert self.sink.calls == [
            ("start", 403, headers),
            ("register", self.proto),
            ("write", b"no"),
            ("write", b"pe"),
            ("unregister",),
            ("finish",),
        ]
        assert self.successResultOf(d) is True

    def test_large_403_streams(self) -> None:
        """A 403 whose body outgrows the hold limit starts streaming before END_RESPONSE."""
        d = self.get()
        self.answer(SendHeaders(403, b"403", ()))
        for _ in range(9):
            self.answer(SendBodyChunk(b"x" * 8000))
        assert self.sink.started
        assert len(self.sink.body()) == 72000
        self.answer(EndResponse(False))
        assert self.successResultOf(d) is False


class ClientGoneTests(ProtocolTestCase):
    """The client disconnects while the member answers."""

    def test_client_gone(self) -> None:
        """A client gone early with much of the response left aborts the connection."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", ((b"Content-Length", b"10000000"),)))
        assert self.sink.gone is not None
        self.sink.gone()
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted
        assert not self.proto.reusable

    def test_client_gone_near_the_end_keeps_connection(self) -> None:
        """A client gone with little left of the response costs no connection: the rest is read."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS))
        self.sink.gone()
        self.answer(SendBodyChunk(b"hello world"), EndResponse(True))
        assert self.successResultOf(d) is True
        assert not self.transport.aborted
        assert self.proto.reusable
        assert self.sink.body() == b""

    def test_client_gone_before_response_keeps_connection(self) -> None:
        """A client gone before any answer lets the exchange end, then the connection is reused."""
        d = self.get()
        self.sink.gone()
        self.answer(SendHeaders(200, b"200", OK_HEADERS), SendBodyChunk(b"hello world"))
        self.answer(EndResponse(True))
        assert self.successResultOf(d) is True
        assert self.proto.reusable

    def test_stop_producing(self) -> None:
        """stopProducing from the client side aborts the connection like a gone client."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", ((b"Content-Length", b"10000000"),)))
        self.proto.stopProducing()
        self.failureResultOf(d, ResponseAborted)
        assert self.transport.aborted

    def test_client_gone_during_write(self) -> None:
        """A client that goes away inside write() stops the packets received after it."""
        d = self.get()
        self.sink.on_write = lambda data: self.sink.gone()  # type: ignore[misc]
        self.answer(
            SendHeaders(200, b"200", ((b"Content-Length", b"10000000"),)),
            SendBodyChunk(b"hello "),
        )
        self.answer(SendBodyChunk(b"world"), EndResponse(True))
        self.failureResultOf(d, ResponseAborted)
        assert self.sink.body() == b"hello "
        assert ("finish",) not in self.sink.calls
        assert self.transport.aborted


class BackpressureTests(ProtocolTestCase):
    """The client side slows the member down."""

    def test_pause_suspends_timeout(self) -> None:
        """pauseProducing pauses the transport and the timeout; resumeProducing re-arms both."""
        d = self.get()
        self.answer(SendHeaders(200, b"200", OK_HEADERS))
        self.proto.pauseProducing()
        assert self.transport.producerState == "paused"
        self.clock.advance(TIMEOUT * 5)
        self.assertNoResult(d)
        self.proto.resumeProducing()
        assert self.transport.producerState == "producing"
        self.clock.advance(TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, ResponseAborted)

    def test_paused_during_last_packets(self) -> None:
        """A connection paused when its response ends is resumed before it is reused."""
        d = self.get()
        self.sink.on_write = lambda data: self.proto.pauseProducing()
        self.ok()
        assert self.successResultOf(d) is True
        assert self.transport.producerState == "producing"
        self.member.start_next_cycle()
        d2 = self.get(FakeSink())
        self.clock.advance(TIMEOUT)
        self.failureResultOf(d2, BackendTimeout)


class StreamedBodyTests(ProtocolTestCase):
    """A body streamed from the client (L{StreamedBody}) goes out as the member asks and it arrives."""

    def stream(self, length: int | None):
        body = StreamedBody(length, prefetch=1, high_water=1 << 20)
        headers = ((b"content-length", b"%d" % length),) if length is not None else ()
        forward = ForwardRequest(b"POST", b"/app/upload", headers=headers)
        d = self.proto.request(
            forward, None, -1 if length is None else length, self.sink, TIMEOUT, body
        )
        return body, forward, d

    def test_length_first_packet_waits_for_the_client(self) -> None:
        """With a Content-Length the first packet goes unasked, once the client's bytes are here."""
        body, forward, d = self.stream(10)
        assert self.received() == [forward]
        body.feed(b"01234")
        assert self.received() == [RequestBody(b"01234")]
        self.answer(GetBodyChunk(8186))
        assert self.received() == []
        body.feed(b"56789")
        body.end()
        assert self.received() == [RequestBody(b"56789")]
        self.ok()
        assert self.successResultOf(d) is True
        assert body.sent == 10

    def test_chunked_is_an_unknown_length(self) -> None:
        """No Content-Length: no unasked packet; each ask answered; the empty packet ends it."""
        body, forward, d = self.stream(None)
        body.feed(b"abc")
        assert self.received() == [forward]
        assert self.member.body_packets_allowed == 0
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(b"abc")]
        self.answer(GetBodyChunk(2))
        body.feed(b"defg")
        assert self.received() == [RequestBody(b"de")]
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(b"fg")]
        self.answer(GetBodyChunk(8186))
        body.end()
        assert self.received() == [RequestBody(b"")]
        self.ok()
        assert self.successResultOf(d) is True

    def test_member_timeout_does_not_run_while_waiting_for_the_client(self) -> None:
        """The client's body has its own deadline: a member waiting for it is not slow."""
        body, forward, d = self.stream(None)
        self.received()
        self.answer(GetBodyChunk(8186))
        self.clock.advance(TIMEOUT * 3)
        self.assertNoResult(d)
        body.feed(b"late")
        body.end()
        assert self.received() == [RequestBody(b"late")]
        self.answer(GetBodyChunk(8186))
        assert self.received() == [RequestBody(b"")]
        self.clock.advance(TIMEOUT + 1)
        self.failureResultOf(d, BackendTimeout)

    def test_client_body_failure_aborts_the_attempt(self) -> None:
        body, forward, d = self.stream(None)
        self.received()
        self.answer(GetBodyChunk(8186))
        body.fail("the client went away during the upload")
        failure = self.failureResultOf(d, ResponseAborted)
        assert "the client went away" in str(failure.value)
        assert self.transport.aborted
