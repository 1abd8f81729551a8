"""
Test helpers for twisted_lb and for the tests of its users.

L{FaultyAJPMember} is an AJP/1.3 member on C{127.0.0.1} that answers like a
small Tomcat and breaks the protocol on demand, one request at a time, so
that a proxy's reaction to a broken member can be tested on real sockets::

    member = FaultyAJPMember(Fault.NONE).start()
    member.schedule(Fault.RESET_MID_BODY)     # the next request only
    ...                                       # proxy in front of member.url
    assert member.connections_made == 1
    yield member.stop()

It speaks through the container role of the codec (L{twisted_lb.ajp}) and
corrupts the bytes the codec produced, so every fault is one precise
deviation from a well-formed exchange.
"""

from __future__ import annotations

import enum
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort, IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    AJPProtocolError,
    ConnectionClosed,
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

__all__ = [
    "LEAKED_RESPONSE",
    "Fault",
    "FaultyAJPMember",
    "FaultyHTTPMember",
    "HTTPFault",
    "ReceivedHTTPRequest",
    "ReceivedRequest",
    "body_pattern",
]


class Fault(enum.Enum):
    """
    How a L{FaultyAJPMember} answers a request.  Unless said otherwise the
    member leaves its side of the connection open after the fault, so that a
    test can see that the proxy closes it.
    """

    #: A well-formed answer: SEND_HEADERS, the body, END_RESPONSE reuse=1.
    NONE = "none"
    #: The first response packet starts with C{XY} instead of C{AB}.
    WRONG_MAGIC = "wrong-magic"
    #: A packet header declaring more than the packet size (65520 bytes).
    OVERSIZED_PACKET = "oversized-packet"
    #: SEND_HEADERS whose reason string claims to run past the packet's end.
    LENGTH_BEYOND_PACKET = "length-beyond-packet"
    #: Half of the SEND_HEADERS packet, then the member closes.
    TRUNCATED_PACKET = "truncated-packet"
    #: A packet of message type 0x42, which AJP does not define.
    UNKNOWN_MESSAGE_TYPE = "unknown-message-type"
    #: SEND_HEADERS with the header code 0xA07F (outside Tomcat's table).
    BAD_HEADER_CODE = "bad-header-code"
    #: After the whole request body, one more GET_BODY_CHUNK; then a normal
    #: answer.  Legal for the proxy to answer with the empty body packet.
    GET_BODY_CHUNK_AFTER_BODY_ENDED = "get-body-chunk-after-body-ended"
    #: SEND_HEADERS twice.
    SEND_HEADERS_TWICE = "send-headers-twice"
    #: Headers and the whole body, then the member closes: no END_RESPONSE.
    NO_END_RESPONSE = "no-end-response"
    #: A normal answer, then a SEND_BODY_CHUNK with data in the same write.
    DATA_AFTER_END_RESPONSE = "data-after-end-response"
    #: END_RESPONSE reuse=1 after fewer body bytes than the Content-Length.
    SHORT_BODY = "short-body"
    #: Nothing at all: a slow application.
    STALL_BEFORE_HEADERS = "stall-before-headers"
    #: Headers and half the body, then silence.
    STALL_MID_BODY = "stall-mid-body"
    #: Headers and half the body, then a TCP reset.
    RESET_MID_BODY = "reset-mid-body"
    #: A normal answer ending with END_RESPONSE reuse=0 (and the connection
    #: left open, which Tomcat would not do).
    REUSE_ZERO = "reuse-zero"
    #: A HEAD request is answered with a C{head_body_size} body (20 MB).
    HEAD_WITH_BODY = "head-with-body"
    #: CPING and requests go unanswered: a hung JVM whose kernel still
    #: accepts connections.
    NO_CPONG = "no-cpong"
    #: Tomcat's answer to a missing or wrong secret: 403, an HTML page,
    #: END_RESPONSE reuse=0, close.
    SECRET_REJECTED = "secret-rejected"
    #: A normal answer with the status 65000 (outside 100-599).
    INVALID_STATUS = "invalid-status"
    #: A normal answer with CR LF inside a header name (a second header
    #: smuggled into the client's response, if passed on).
    CRLF_IN_HEADER_NAME = "crlf-in-header-name"
    #: A normal answer with NUL inside a header value.
    NUL_IN_HEADER_VALUE = "nul-in-header-value"
    #: A normal answer with a bare LF inside a header value.
    LF_IN_HEADER_VALUE = "lf-in-header-value"


_MID_BODY = frozenset({Fault.STALL_MID_BODY, Fault.RESET_MID_BODY})
#: The header each bad-head fault adds to a normal answer.
_BAD_HEADS = {
    Fault.CRLF_IN_HEADER_NAME: ((b"X-Split\r\nSet-Cookie: smuggled=1", b"x"),),
    Fault.NUL_IN_HEADER_VALUE: ((b"X-Nul", b"a\x00b"),),
    Fault.LF_IN_HEADER_VALUE: ((b"X-Split", b"a\nSet-Cookie: smuggled=1"),),
}
_TOMCAT_403 = (
    b'<!doctype html><html lang="en"><head><title>HTTP Status 403 \xe2\x80\x93 Forbidden'
    b"</title></head><body><h1>HTTP Status 403 \xe2\x80\x93 Forbidden</h1></body></html>"
)


def body_pattern(size: int, offset: int = 0) -> bytes:
    """
    The response body of a L{FaultyAJPMember}: byte C{i} is C{i % 251}.

    @param size: how many bytes.
    @param offset: the position of the first byte.
    """
    block = bytes(range(251))
    start = offset % 251
    reps = (start + size) // 251 + 1
    return (block * reps)[start : start + size]


@attrs.frozen
class ReceivedRequest:
    """
    A request as a L{FaultyAJPMember} received it.

    @ivar forward: the FORWARD_REQUEST.
    @ivar body: the request body it read.
    @ivar connection: the serial number (from 1) of the connection it came on.
    @ivar fault: how it was answered.
    """

    forward: ForwardRequest
    body: bytes
    connection: int
    fault: Fault

    def header(self, name: bytes) -> bytes | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        return self.forward.header(name)


def _packet(payload: bytes) -> bytes:
    """A container-to-proxy packet around C{payload}, built by hand."""
    return b"AB" + struct.pack(">H", len(payload)) + payload


class _MemberConnection(Protocol):
    """One connection of a L{_LoopbackMember}: its counts and how it closes."""

    def __init__(self, member: Any, serial: int) -> None:
        self._member = member
        self.serial = serial
        self.closed_by_member = False

    def connectionMade(self) -> None:
        self._member._open.add(self)
        if self._member.no_delay:
            self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._member._open.discard(self)
        self._member.connections_lost += 1
        if not self.closed_by_member:
            self._member.closed_by_proxy += 1

    def _write(self, data: bytes) -> None:
        self._member.bytes_sent += len(data)
        self.transport.write(data)  # type: ignore[union-attr]

    def _close(self) -> None:
        self.closed_by_member = True
        self.transport.loseConnection()  # type: ignore[union-attr]


_M = TypeVar("_M", bound="_LoopbackMember")


class _LoopbackMember(Factory):
    """
    A member on an ephemeral port of C{127.0.0.1}, counting its connections.

    @cvar scheme: the scheme of L{url}.
    @cvar connection: the protocol of one connection.
    """

    scheme = ""
    connection: type[_MemberConnection]
    #: Set TCP_NODELAY on each connection (as Tomcat's connectors do by
    #: default); off, an answer written in pieces may wait for delayed ACKs.
    no_delay = False

    def __init__(self, reactor: Any) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.connections_made = 0
        self.connections_lost = 0
        self.closed_by_proxy = 0
        self.bytes_sent = 0
        self._reactor = reactor
        self._open: set[Any] = set()
        self._port: IListeningPort | None = None

    def start(self: _M, backlog: int = 50) -> _M:
        """Listen on an ephemeral port of 127.0.0.1; returns C{self}."""
        self._port = self._reactor.listenTCP(0, self, backlog=backlog, interface="127.0.0.1")
        return self

    def stop(self) -> defer.Deferred[None]:
        """Stop listening and drop every open connection."""
        for proto in list(self._open):
            proto.closed_by_member = True
            if proto.transport is not None:
                proto.transport.abortConnection()
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        stopped = port.stopListening()
        return stopped if stopped is not None else defer.succeed(None)

    @property
    def port(self) -> int:
        """The listening port."""
        assert self._port is not None, "start() the member first"
        return self._port.getHost().port  # type: ignore[no-any-return, attr-defined]

    @property
    def url(self) -> str:
        """The member URL for the proxy's configuration: C{scheme://127.0.0.1:port}."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._open)

    def buildProtocol(self, addr: object) -> Any:
        self.connections_made += 1
        proto = self.connection(self, self.connections_made)
        proto.factory = self
        return proto


@implementer(IPullProducer)
class _FaultyProtocol(_MemberConnection):
    """One connection of a L{FaultyAJPMember}."""

    def __init__(self, member: FaultyAJPMember, serial: int) -> None:
        super().__init__(member, serial)
        self._codec = AJPConnection(Role.CONTAINER, member.packet_size)
        self._body_max = member.packet_size - 6
        self._forward: ForwardRequest | None = None
        self._fault = Fault.NONE
        self._body: list[bytes] = []
        #: Body bytes still expected; C{None} for a body of unknown length.
        self._body_left: int | None = 0
        self._extra_ask = False
        self._chunks: Iterator[bytes] | None = None
        self._then: Callable[[], None] | None = None
        self._hung = False
        self._pinged = False
        self._cpong_later: Any = None
        self.stalled = False

    # -- connection ------------------------------------------------------

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        super().connectionLost(reason)
        self._chunks = None
        if self._cpong_later is not None and self._cpong_later.active():
            self._cpong_later.cancel()

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0)."""
        self.closed_by_member = True
        try:
            handle = self.transport.getHandle()  # type: ignore[union-attr]
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (AttributeError, OSError):
            pass
        self.transport.abortConnection()  # type: ignore[union-attr]

    # -- receiving -------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        try:
            self._codec.receive_data(data)
            while (event := self._codec.next_event()) is not NEED_DATA:
                self._handle(event)
        except AJPProtocolError as e:
            self._member.proxy_errors.append(str(e))
            self.closed_by_member = True
            self.transport.abortConnection()  # type: ignore[union-attr]

    def _handle(self, event: object) -> None:
        kind = type(event)
        member = self._member
        if kind is CPing:
            member.cpings += 1
            first, self._pinged = not self._pinged, True
            if self._hung or member._take_fault(cping=True) is Fault.NO_CPONG:
                self._hung = True
            elif first and member.first_cpong_delay > 0:
                self._cpong_later = member._reactor.callLater(
                    member.first_cpong_delay, self._late_cpong
                )
            else:
                self._write(self._codec.send(CPong()))
        elif kind is ForwardRequest:
            self._forward = event  # type: ignore[assignment]
            self._fault = member._take_fault(cping=False)
            self._body = []
            self._extra_ask = False
            length = None
            for name, value in event.headers:  # type: ignore[attr-defined]
                if name.lower() == b"content-length":
                    length = int(value)
            if length is None and event.method in (b"POST", b"PUT", b"PATCH"):  # type: ignore[attr-defined]
                # No length (a chunked upload): ask until the empty packet, as Tomcat does.
                self._body_left = None
                self._write(self._codec.send(GetBodyChunk(self._body_max)))
                return
            self._body_left = length or 0
            if not self._body_left:
                self._body_complete()
        elif kind is RequestBody:
            data = event.data  # type: ignore[attr-defined]
            if self._extra_ask:
                member.extra_body_bytes += len(data)
                self._extra_ask = False
                self._respond(Fault.NONE)
                return
            self._body.append(data)
            if self._body_left is not None:
                self._body_left -= len(data)
            if not data or (self._body_left is not None and self._body_left <= 0):
                self._body_complete()
            else:
                left = self._body_left
                ask = self._body_max if left is None else min(left, self._body_max)
                self._write(self._codec.send(GetBodyChunk(ask)))
        elif kind is ConnectionClosed:
            self._close()

    def _body_complete(self) -> None:
        forward = self._forward
        assert forward is not None
        fault = self._fault
        member = self._member
        member.requests.append(ReceivedRequest(forward, b"".join(self._body), self.serial, fault))
        if member.secret is not None and forward.secret != member.secret.encode("utf-8"):
            fault = Fault.SECRET_REJECTED
        if fault is Fault.GET_BODY_CHUNK_AFTER_BODY_ENDED:
            self._extra_ask = True
            self._write(self._codec.send(GetBodyChunk(self._body_max)))
            return
        self._respond(fault)

    def _late_cpong(self) -> None:
        self._cpong_later = None
        self._write(self._codec.send(CPong()))

    # -- answering -------------------------------------------------------

    def _respond(self, fault: Fault) -> None:
        forward = self._forward
        assert forward is not None
        member = self._member
        send = self._codec.send
        if self._hung or fault is Fault.NO_CPONG:
            return
        if fault is Fault.STALL_BEFORE_HEADERS:
            self.stalled = True
            return
        if fault is Fault.SECRET_REJECTED:
            rejected = (
                (b"Content-Type", b"text/html;charset=utf-8"),
                (b"Content-Language", b"en"),
                (b"Content-Length", b"%d" % len(_TOMCAT_403)),
            )
            self._write(
                send(SendHeaders(403, b"403", rejected))
                + send(SendBodyChunk(_TOMCAT_403))
                + send(EndResponse(False))
            )
            self._close()
            return
        if fault is Fault.UNKNOWN_MESSAGE_TYPE:
            self._write(_packet(b"\x42\x00\x00"))
            return
        if fault is Fault.OVERSIZED_PACKET:
            self._write(b"AB\xff\xf0\x04\x00\xc8")
            return
        if fault is Fault.LENGTH_BEYOND_PACKET:
            # type, status 200, reason string claiming 0x0F00 bytes: "200\0".
            self._write(_packet(b"\x04\x00\xc8\x0f\x00200\x00\x00\x00"))
            return
        if fault is Fault.HEAD_WITH_BODY:
            size = member.head_body_size
        else:
            size = member.path_sizes.get(forward.req_uri, member.body_size)
        headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", b"application/octet-stream"),)
        if member.content_length:
            headers += ((b"Content-Length", b"%d" % size),)
        headers += _BAD_HEADS.get(fault, ())
        status = 65000 if fault is Fault.INVALID_STATUS else member.status
        data = send(SendHeaders(status, b"%d" % status, headers))
        if fault is Fault.WRONG_MAGIC:
            self._write(b"XY" + data[2:])
            return
        if fault is Fault.BAD_HEADER_CODE:
            self._write(data.replace(b"\xa0\x01", b"\xa0\x7f", 1))
            return
        if fault is Fault.TRUNCATED_PACKET:
            self._write(data[: len(data) // 2])
            self._close()
            return
        if fault is Fault.SEND_HEADERS_TWICE:
            self._write(data + data)
            return
        self._write(data)
        if forward.method == b"HEAD" and fault is not Fault.HEAD_WITH_BODY:
            size = 0
        elif fault in _MID_BODY:
            size //= 2
        elif fault is Fault.SHORT_BODY:
            size //= 2
        self._stream(size, lambda: self._finish(fault))

    def _stream(self, size: int, then: Callable[[], None]) -> None:
        """Send C{size} body bytes as the proxy reads them, then call C{then}."""
        step = self._member.packet_size - 8
        send = self._codec.send

        def packets() -> Iterator[bytes]:
            for start in range(0, size, 65536):
                block = body_pattern(min(65536, size - start), start)
                yield b"".join(
                    send(SendBodyChunk(block[i : i + step])) for i in range(0, len(block), step)
                )

        self._chunks = packets()
        self._then = then
        self.transport.registerProducer(self, False)  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self._chunks is None:
            return
        try:
            data = next(self._chunks)
        except StopIteration:
            self._chunks = None
            self.transport.unregisterProducer()  # type: ignore[union-attr]
            then, self._then = self._then, None
            if then is not None:
                then()
            return
        self._write(data)

    def stopProducing(self) -> None:
        self._chunks = None

    def _finish(self, fault: Fault) -> None:
        send = self._codec.send
        if fault is Fault.STALL_MID_BODY:
            return
        if fault is Fault.RESET_MID_BODY:
            self._reset()
            return
        if fault is Fault.NO_END_RESPONSE:
            self._close()
            return
        if fault is Fault.REUSE_ZERO:
            self._write(send(EndResponse(False)))
            return
        end = send(EndResponse(True))
        if fault is Fault.DATA_AFTER_END_RESPONSE:
            self._write(end + _packet(b"\x03\x00\x05extra\x00"))
            return
        self._write(end)
        self._codec.start_next_cycle()


class FaultyAJPMember(_LoopbackMember):
    """
    An AJP/1.3 member on C{127.0.0.1} that misbehaves on demand.

    Every request is answered with C{status}, a C{Content-Type} and (when
    C{content_length}) a C{Content-Length} header and a body of
    C{body_size} bytes from L{body_pattern}, streamed as the proxy reads it
    (backpressure works as with Tomcat) -- unless a fault says otherwise.

    @ivar fault: the standing fault, used for every request when none is
        scheduled.
    @ivar secret: when set, a request without this AJP secret gets
        L{Fault.SECRET_REJECTED}, as Tomcat does.
    @ivar requests: every request received, in order.
    @ivar connections_made: connections accepted in all.
    @ivar connections_lost: connections closed in all (either side).
    @ivar closed_by_proxy: connections the other side closed (the member did
        not close them itself).
    @ivar cpings: CPINGs received (answered or not).
    @ivar extra_body_bytes: body bytes received in answer to a
        L{Fault.GET_BODY_CHUNK_AFTER_BODY_ENDED} ask (should stay 0).
    @ivar bytes_sent: bytes written to the proxy in all.
    @ivar proxy_errors: protocol errors the member saw in what the proxy
        sent (should stay empty).
    @ivar path_sizes: body sizes by request path, instead of C{body_size}.
    @ivar first_cpong_delay: seconds the first CPING of each new connection
        waits for its CPONG (a busy container slow to take new connections
        while it answers on its others); 0 answers at once.
    """

    scheme = "ajp"
    connection = _FaultyProtocol

    def __init__(
        self,
        fault: Fault = Fault.NONE,
        *,
        reactor: Any = None,
        status: int = 200,
        body_size: int = 20_000,
        content_length: bool = True,
        head_body_size: int = 20 * 1024 * 1024,
        secret: str | None = None,
        packet_size: int = 8192,
    ) -> None:
        super().__init__(reactor)
        self.fault = fault
        self.status = status
        self.body_size = body_size
        self.content_length = content_length
        self.head_body_size = head_body_size
        self.secret = secret
        self.packet_size = packet_size
        self.requests: list[ReceivedRequest] = []
        self.cpings = 0
        self.extra_body_bytes = 0
        self.proxy_errors: list[str] = []
        self.first_cpong_delay = 0.0
        self.path_sizes: dict[bytes, int] = {}
        self._scheduled: deque[Fault] = deque()

    # -- life --------------------------------------------------------------

    def answer_stalled(self) -> int:
        """
        Answer every request held by L{Fault.STALL_BEFORE_HEADERS} now, well
        (a slow application that finally answers).

        @return: how many were answered.
        """
        stalled = [proto for proto in self._open if proto.stalled]
        for proto in stalled:
            proto.stalled = False
            proto._respond(Fault.NONE)
        return len(stalled)

    # -- faults ------------------------------------------------------------

    def schedule(self, *faults: Fault) -> None:
        """
        Answer the next requests with C{faults}, one each, in order; then go
        back to L{fault}.  A scheduled L{Fault.NO_CPONG} is used up by the
        next CPING (and that connection's request, if any, is not answered).
        """
        self._scheduled.extend(faults)

    def _take_fault(self, cping: bool) -> Fault:
        if self._scheduled:
            head = self._scheduled[0]
            if (head is Fault.NO_CPONG) == cping:
                return self._scheduled.popleft()
        if cping:
            return Fault.NO_CPONG if self.fault is Fault.NO_CPONG else Fault.NONE
        return self.fault


# -- HTTP/1.1 ------------------------------------------------------------------------------------


class HTTPFault(enum.Enum):
    """
    How a L{FaultyHTTPMember} answers a request.  Unless said otherwise the
    member leaves its side of the connection open after the fault, so that a
    test can see that the proxy closes it.
    """

    #: A well-formed keep-alive answer with a C{Content-Length}.
    NONE = "none"
    #: A status line that is not HTTP at all.
    GARBAGE_STATUS_LINE = "garbage-status-line"
    #: Half the declared C{Content-Length}, then the member closes.
    SHORT_BODY = "short-body"
    #: The declared body followed, in the same write, by a whole second
    #: response (C{leaked!}) that nobody asked for.
    LONG_BODY = "long-body"
    #: One response header line of C{huge_header_size} bytes (100 KiB).
    HUGE_HEADER = "huge-header"
    #: C{many_headers} (10 000) response header lines.
    MANY_HEADERS = "many-headers"
    #: C{Transfer-Encoding: chunked} with a chunk size that is not hex.
    BAD_CHUNKED = "bad-chunked"
    #: C{100 Continue} and C{103 Early Hints} before the real answer.
    INFORMATIONAL_FIRST = "informational-first"
    #: A HEAD answered with C{head_body_size} body bytes (1 MiB).
    HEAD_WITH_BODY = "head-with-body"
    #: The answer goes out as soon as the request head is in; the request
    #: body is read (and dropped) afterwards.
    ANSWER_BEFORE_BODY = "answer-before-body"
    #: C{413} with C{Connection: close} as soon as the request head is in,
    #: then the member closes without reading the body.
    REJECT_BEFORE_BODY = "reject-before-body"
    #: A normal keep-alive answer; the member closes the idle connection
    #: C{idle_close} seconds later (a keep-alive timeout).
    CLOSE_AFTER_RESPONSE = "close-after-response"
    #: A normal keep-alive answer; the next request on that connection is
    #: read and the connection closed without a byte of answer (the
    #: keep-alive race: the member timed the connection out just as the
    #: proxy reused it).
    CLOSE_ON_NEXT_REQUEST = "close-on-next-request"
    #: Nothing at all: a slow application.
    STALL_BEFORE_HEADERS = "stall-before-headers"
    #: The head and half the body, then silence.
    STALL_MID_BODY = "stall-mid-body"
    #: A normal answer with the status C{65000 Unknown} (outside 100-599).
    INVALID_STATUS = "invalid-status"
    #: A normal answer with NUL inside a header value.
    NUL_IN_HEADER_VALUE = "nul-in-header-value"
    #: A normal answer with a bare CR inside a header value.
    BARE_CR_IN_HEADER_VALUE = "bare-cr-in-header-value"


#: The unsolicited response L{HTTPFault.LONG_BODY} appends.
LEAKED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nleaked!"


@attrs.frozen
class ReceivedHTTPRequest:
    """
    A request as a L{FaultyHTTPMember} received it.

    @ivar method: the method.
    @ivar target: the request target.
    @ivar headers: the header fields, names lower-cased, in order.
    @ivar connection: the serial number (from 1) of the connection it came on.
    @ivar fault: how it was answered.
    """

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    connection: int
    fault: HTTPFault


class _FaultyHTTPProtocol(_MemberConnection):
    """One connection of a L{FaultyHTTPMember}: HTTP/1.1, parsed by hand."""

    def __init__(self, member: FaultyHTTPMember, serial: int) -> None:
        super().__init__(member, serial)
        self._buffer = b""
        self._discard = 0  # request body bytes still to drop
        self._doomed = False  # HTTPFault.CLOSE_ON_NEXT_REQUEST armed
        self._idle_close: Any = None
        self._fault: HTTPFault | None = None  # taken for the request being read

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        super().connectionLost(reason)
        if self._idle_close is not None and self._idle_close.active():
            self._idle_close.cancel()

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while not self.closed_by_member:
            if self._discard:
                dropped = min(self._discard, len(self._buffer))
                self._discard -= dropped
                self._buffer = self._buffer[dropped:]
                if self._discard:
                    return
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self._buffer[:end], self._buffer[end + 4 :]
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = tuple(
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(b":") for line in lines[1:])
            )
            length = int(dict(headers).get(b"content-length", b"0"))
            if self._fault is None:
                self._fault = self._member._take_http_fault()
            fault = self._fault
            early = fault in (HTTPFault.ANSWER_BEFORE_BODY, HTTPFault.REJECT_BEFORE_BODY)
            if not early and len(rest) < length:
                return  # wait for the whole body
            self._member.requests.append(
                ReceivedHTTPRequest(method, target, headers, self.serial, fault)
            )
            self._fault = None
            self._buffer = rest
            self._discard = length
            if self._doomed:
                self._close()
                return
            self._respond(method, fault)

    def _head(
        self, extra: bytes = b"", length: int | None = None, status: bytes = b"200 OK"
    ) -> bytes:
        size = self._member.body_size if length is None else length
        return (
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n" % size + extra + b"\r\n"
        )

    def _respond(self, method: bytes, fault: HTTPFault) -> None:
        member = self._member
        size = member.body_size
        body = b"" if method == b"HEAD" else body_pattern(size)
        if fault is HTTPFault.STALL_BEFORE_HEADERS:
            return
        if fault is HTTPFault.GARBAGE_STATUS_LINE:
            self._write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        elif fault is HTTPFault.SHORT_BODY:
            self._write(self._head() + body[: size // 2])
            self._close()
        elif fault is HTTPFault.STALL_MID_BODY:
            self._write(self._head() + body[: size // 2])
        elif fault is HTTPFault.LONG_BODY:
            self._write(self._head() + body + LEAKED_RESPONSE)
        elif fault is HTTPFault.HUGE_HEADER:
            self._write(self._head(b"X-Huge: " + b"h" * member.huge_header_size + b"\r\n") + body)
        elif fault is HTTPFault.MANY_HEADERS:
            lines = b"".join(b"X-Filler-%d: v\r\n" % i for i in range(member.many_headers))
            self._write(self._head(lines) + body)
        elif fault is HTTPFault.BAD_CHUNKED:
            self._write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\n" + body[:100] + b"\r\n0\r\n\r\n"
            )
        elif fault is HTTPFault.INFORMATIONAL_FIRST:
            self._write(
                b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                + self._head()
                + body
            )
        elif fault is HTTPFault.HEAD_WITH_BODY:
            self._write(
                self._head(length=member.head_body_size) + body_pattern(member.head_body_size)
            )
        elif fault is HTTPFault.REJECT_BEFORE_BODY:
            self._write(self._head(b"Connection: close\r\n", 0, b"413 Payload Too Large"))
            self._close()
        elif fault is HTTPFault.INVALID_STATUS:
            self._write(self._head(status=b"65000 Unknown") + body)
        elif fault is HTTPFault.NUL_IN_HEADER_VALUE:
            self._write(self._head(b"X-Nul: a\x00b\r\n") + body)
        elif fault is HTTPFault.BARE_CR_IN_HEADER_VALUE:
            self._write(self._head(b"X-Split: a\rSet-Cookie: smuggled=1\r\n") + body)
        else:
            self._write(self._head() + body)
            if fault is HTTPFault.CLOSE_ON_NEXT_REQUEST:
                self._doomed = True
            elif fault is HTTPFault.CLOSE_AFTER_RESPONSE:
                self._idle_close = member._reactor.callLater(member.idle_close, self._close)


class FaultyHTTPMember(_LoopbackMember):
    """
    An HTTP/1.1 member on C{127.0.0.1} that misbehaves on demand, written on
    a bare L{Protocol} so that it can send what no HTTP library would.

    Every request is answered C{200} with a C{Content-Length} and a body of
    C{body_size} bytes from L{body_pattern}, on a keep-alive connection --
    unless a fault (L{HTTPFault}) says otherwise.  Request bodies are read by
    C{Content-Length} only (what the proxy sends)::

        member = FaultyHTTPMember().start()
        member.schedule(HTTPFault.LONG_BODY)      # the next request only
        ...                                       # proxy in front of member.url
        yield member.stop()

    @ivar requests: every request received, in order (L{ReceivedHTTPRequest}).
    @ivar connections_made: connections accepted in all.
    @ivar connections_lost: connections closed in all (either side).
    @ivar closed_by_proxy: connections the other side closed.
    @ivar bytes_sent: bytes written to the proxy in all.
    """

    scheme = "http"
    connection = _FaultyHTTPProtocol

    def __init__(
        self,
        fault: HTTPFault = HTTPFault.NONE,
        *,
        reactor: Any = None,
        body_size: int = 20_000,
        head_body_size: int = 1024 * 1024,
        huge_header_size: int = 100 * 1024,
        many_headers: int = 10_000,
        idle_close: float = 0.05,
    ) -> None:
        super().__init__(reactor)
        self.fault = fault
        self.body_size = body_size
        self.head_body_size = head_body_size
        self.huge_header_size = huge_header_size
        self.many_headers = many_headers
        self.idle_close = idle_close
        self.requests: list[ReceivedHTTPRequest] = []
        self._scheduled_http: deque[HTTPFault] = deque()

    def schedule(self, *faults: HTTPFault) -> None:
        """Answer the next requests with C{faults}, one each; then go back to C{fault}."""
        self._scheduled_http.extend(faults)

    def _take_http_fault(self) -> HTTPFault:
        return self._scheduled_http.popleft() if self._scheduled_http else self.fault
