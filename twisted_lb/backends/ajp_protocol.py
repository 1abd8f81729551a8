"""
The Twisted side of an AJP/1.3 connection to a member: a thin layer that feeds
received bytes to the sans-IO L{AJPConnection}, writes what it returns, and
turns its events into calls on a L{ResponseSink}.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import IO, Any, cast

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    AJPProtocolError,
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
from twisted_lb.errors import (
    AttemptFailed,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    ResponseAborted,
    ResponseNeverReceived,
)
from twisted_lb.exchange import ResponseSink, response_head_problem
from twisted_lb.request_body import BodyError, StreamedBody
from twisted_lb.sendnow import send_now

__all__ = ["AJPClientProtocol"]

_log = Logger()

#: Bytes asked of the socket per read (Twisted's default is 64 KiB). A large
#: answer then costs a quarter of the reads, events and client writes; the
#: benchmark's 1 MiB responses take ~15 % less CPU (docs/performance.md).
READ_SIZE = 256 * 1024

#: A 403 followed by END_RESPONSE reuse=0 is how Tomcat refuses a request
#: whose secret is wrong or missing; such small answers are held back until
#: END_RESPONSE tells which it is.
_HOLD_LIMIT = 64 * 1024

#: A client that leaves before the end of a response whose rest is at most
#: this long does not cost the AJP connection: the rest is read and dropped.
_DRAIN_LIMIT = 64 * 1024


@implementer(IPushProducer)
class AJPClientProtocol(Protocol):
    """
    One AJP connection, one exchange at a time.

    @ivar reusable: whether the connection may carry another request.
    @ivar last_used: the clock time the last exchange ended (or the
        connection was made).
    @ivar on_lost: called once when the connection closes.
    @ivar last_received: the clock time bytes last came from the member.
    """

    def __init__(self, clock: IReactorTime, packet_size: int = 8192) -> None:
        self._clock = clock
        self._packet_size = packet_size
        self._body_max = packet_size - 6
        self._codec = AJPConnection(Role.PROXY, packet_size)
        self.reusable = False
        self.connected = False
        self.last_used = clock.seconds()
        self.on_lost: Callable[[AJPClientProtocol], None] | None = None
        #: the clock time bytes last came from the member (a sign of life)
        self.last_received = -math.inf
        self._waiting: defer.Deferred[bool] | None = None
        self._ping: defer.Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._activity = 0.0
        self._out: list[bytes | memoryview] = []
        self._timeout = 0.0
        self._sink: ResponseSink | None = None
        self._body: IO[bytes] | None = None
        self._body_left = 0
        #: A body streamed from the client, and the sizes of the body packets
        #: the member asked for that wait for the client's bytes.
        self._stream: StreamedBody | None = None
        self._stream_wants: deque[int] = deque()
        self._stream_waiting = False
        self._response_bytes = False
        self._held: list[SendHeaders | bytes | memoryview] | None = None
        self._held_size = 0
        self._declared_length: int | None = None
        self._received_length = 0
        self._bodiless = False
        self._paused = False
        self._aborted = False
        self._draining = False

    # -- connection life -------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        self.reusable = True
        self.last_used = self._clock.seconds()
        transport: Any = self.transport
        if hasattr(transport, "bufferSize"):
            # Fewer, larger reads of a streaming answer (see READ_SIZE).
            transport.bufferSize = READ_SIZE
        if hasattr(transport, "setTcpNoDelay"):
            # As Apache's mod_proxy does for its backend connections: a
            # small packet (a CPING, a request that follows a body) never
            # waits for the member's delayed ACK.
            transport.setTcpNoDelay(True)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connected = False
        self.reusable = False
        self._cancel_timer()
        if self._ping is not None:
            d, self._ping = self._ping, None
            d.errback(ResponseNeverReceived("connection closed while waiting for CPONG"))
        if self._waiting is not None:
            if self._response_bytes:
                error: AttemptFailed = ResponseAborted("member closed the connection mid-response")
            else:
                error = ResponseNeverReceived("member closed the connection before answering")
            self._fail(error, abort=False)
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost(self)

    def abort(self) -> None:
        """Drop the connection at once; it is never reused."""
        self.reusable = False
        self._aborted = True
        if self.transport is not None and self.connected:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- timers ----------------------------------------------------------

    def _arm(self, seconds: float, on_timeout: Callable[[], None]) -> None:
        self._cancel_timer()
        self._activity = self._clock.seconds()
        if seconds > 0:
            self._timer = self._clock.callLater(seconds, on_timeout)

    def _watch(self, seconds: float) -> None:
        """
        Watch the exchange in flight for C{seconds} of silence.

        The timer outlives exchanges: rather than a new timer per request and
        a cancel at its end, the pending one is kept (brought forward only when
        this timeout is shorter) and L{_timed_out} checks, when it fires,
        whether an exchange is in flight and how long it has been silent.
        """
        now = self._clock.seconds()
        self._activity = now
        if seconds <= 0:
            return
        timer = self._timer
        if timer is not None and timer.active():
            if timer.getTime() > now + seconds:
                timer.reset(seconds)
        else:
            self._timer = self._clock.callLater(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    # -- CPING -----------------------------------------------------------

    def cping(self, timeout: float) -> defer.Deferred[None]:
        """
        Send CPING and wait for CPONG.

        @return: a Deferred that fires when CPONG arrives, or fails with
            L{BackendTimeout} (after C{timeout} seconds) or another
            L{AttemptFailed}.
        """
        d: defer.Deferred[None] = defer.Deferred()
        self._ping = d
        self.reusable = False
        self.transport.write(self._codec.send(CPing()))  # type: ignore[union-attr]
        self._arm(timeout, self._ping_timed_out)
        return d

    def _ping_timed_out(self) -> None:
        self._timer = None
        if self._ping is not None:
            d, self._ping = self._ping, None
            self.abort()
            d.errback(BackendTimeout("no CPONG in time"))

    # -- one exchange ----------------------------------------------------

    def request(
        self,
        forward: ForwardRequest,
        body: IO[bytes] | None,
        body_length: int,
        sink: ResponseSink,
        timeout: float,
        stream: StreamedBody | None = None,
    ) -> defer.Deferred[bool]:
        """
        Send one request and stream its response into C{sink}.

        @param forward: the FORWARD_REQUEST; it must fit one packet (the caller
            has encoded it once already, see L{AJPConnection.send}).
        @param body: the request body, read in packet-sized pieces as the
            container asks for them.
        @param body_length: the body's length (of C{stream}: its
            C{Content-Length}, or -1 when unknown).
        @param timeout: seconds the member may stay silent.
        @param stream: instead of C{body}, a body streamed from the client:
            each body packet the member asks for (and the first, unasked,
            with a C{Content-Length}) goes out as soon as the client's bytes
            are here. A chunked body has no C{Content-Length}: an unknown
            length to the member, which asks until it gets the empty packet.
        @return: a Deferred firing with whether the connection may be reused,
            or failing with an L{AttemptFailed}.
        @raise twisted_lb.ajp.RequestTooLarge: before anything is written, when
            the request head does not fit in a packet.
        """
        data = self._codec.send(forward)
        self.reusable = False
        d: defer.Deferred[bool] = defer.Deferred()
        self._waiting = d
        self._sink = sink
        self._body = body
        self._body_left = body_length
        self._response_bytes = False
        self._draining = False
        self._held = None
        self._declared_length = None
        self._received_length = 0
        self._bodiless = forward.method == b"HEAD"
        self._timeout = timeout
        self._stream = stream
        self._stream_wants.clear()
        self._stream_waiting = False
        if stream is not None:
            if body_length > 0:
                # The first body packet follows unasked: with the head if
                # the client's bytes are here already.
                self._stream_wants.append(self._body_max)
                chunk = self._stream_read()
                if chunk is not None:
                    data += chunk
        elif body_length > 0:
            data += self._codec.send(RequestBody(self._read_body(self._body_max)))
        send_now(self.transport, data)
        self._watch(timeout)
        sink.on_client_gone(self._client_gone)
        if self._stream_wants:
            self._wait_for_stream()
        return d

    def _stream_read(self) -> bytes | None:
        """
        The next body packet the member asked for, encoded, from the
        streamed body; C{None} when the client's bytes are not here yet.

        @raise ResponseAborted: the client's body will never be complete.
        """
        stream = self._stream
        assert stream is not None
        try:
            data = stream.read(self._stream_wants[0])
        except BodyError as e:
            raise ResponseAborted(f"the client's request body failed: {e}") from None
        if data is None:
            return None
        self._stream_wants.popleft()
        return self._codec.send(RequestBody(data))

    def _send_stream(self) -> None:
        """Send the body packets the member asked for, as far as the client's bytes go."""
        while self._stream_wants:
            packet = self._stream_read()
            if packet is None:
                self._wait_for_stream()
                return
            send_now(self.transport, packet)
            self._activity = self._clock.seconds()

    def _wait_for_stream(self) -> None:
        stream = self._stream
        if stream is None or self._stream_waiting:
            return
        self._stream_waiting = True
        stream.when_readable(lambda: self._stream_readable(stream))

    def _stream_readable(self, stream: StreamedBody) -> None:
        """The client's body has bytes (or ended, or failed) for the packets asked."""
        if stream is not self._stream or self._waiting is None:
            return
        self._stream_waiting = False
        try:
            self._send_stream()
        except AttemptFailed as e:
            self._fail(e)

    def _drop_body(self) -> None:
        """The exchange is over: forget its request body, stored or streamed."""
        self._body = None
        self._stream = None
        self._stream_wants.clear()

    def _read_body(self, limit: int) -> bytes:
        size = min(limit, self._body_left)
        if size <= 0 or self._body is None:
            return b""
        try:
            chunk = self._body.read(size)
        except (ValueError, OSError):
            # twisted.web closes the request body when the client disconnects.
            raise ResponseAborted("the client went away during the upload") from None
        if len(chunk) != size:
            raise ResponseAborted("request body ended early")
        self._body_left -= size
        return chunk

    def _timed_out(self) -> None:
        self._timer = None
        if self._waiting is None or self._paused or self._timeout <= 0:
            # Between exchanges (the timer outlives them, see _watch), or
            # paused by the client, or no timeout for this one.
            return
        if self._stream_waiting:
            # The member waits for the client's body, which has deadlines
            # of its own (the frontend's body timeout): watch again later.
            self._timer = self._clock.callLater(self._timeout, self._timed_out)
            return
        left = self._activity + self._timeout - self._clock.seconds()
        if left > 0:
            # Packets came in since the timer was set: wait the rest.
            self._timer = self._clock.callLater(left, self._timed_out)
            return
        if self._response_bytes:
            self._fail(ResponseAborted("member stalled mid-response"))
        else:
            self._fail(BackendTimeout("member did not answer in time"))

    def _client_gone(self) -> None:
        if self._waiting is None or self._draining:
            return
        if self._worth_draining():
            # The client has what it needs (or will never read it); reading
            # the little that is left keeps the connection for the next
            # request instead of making a new one.
            self._draining = True
            return
        self._fail(ResponseAborted("client went away"))

    def _worth_draining(self) -> bool:
        if self._paused:
            return False
        if not self._response_bytes:
            return True
        if self._declared_length is None:
            return False
        return self._declared_length - self._received_length <= _DRAIN_LIMIT

    def _fail(self, error: AttemptFailed, abort: bool = True) -> None:
        self._cancel_timer()
        self._out = []
        d, self._waiting = self._waiting, None
        self._sink = None
        self._drop_body()
        if abort:
            self.abort()
        if d is not None:
            d.errback(error)

    # -- receiving -------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._aborted:
            # Bytes already read when the connection was dropped (perhaps by
            # a sink callback below) belong to nobody.
            return
        self.last_received = self._clock.seconds()
        try:
            self._codec.receive_data(data)
            while not self._aborted:
                event = self._codec.next_event()
                if event is NEED_DATA:
                    break
                self._handle(event)
            if self._out:
                self._flush_out()
        except AJPProtocolError as e:
            _log.warn("AJP protocol error from {peer}: {error}", peer=self._peer(), error=e)
            if self._ping is not None:
                d, self._ping = self._ping, None
                self.abort()
                d.errback(BackendProtocolError(str(e)))
            elif self._waiting is not None:
                started = self._sink is not None and self._sink.started
                cls = ResponseAborted if started else BackendProtocolError
                self._fail(cls(f"member broke the AJP protocol: {e}"))
            else:
                self.abort()
        except AttemptFailed as e:
            self._fail(e)
        except Exception:
            # A fault of ours must not look like a dead member: log it, end
            # this exchange and drop this connection only.
            _log.failure("unexpected error handling AJP data from {peer}", peer=self._peer())
            if self._waiting is not None:
                self._fail(ResponseAborted("internal error in the AJP client"))
            else:
                self.abort()

    def _flush_out(self) -> None:
        """Write the body bytes of this read to the client in one call."""
        out, self._out = self._out, []
        sink = self._sink
        if sink is not None:
            # The chunks may be memoryviews of the received segments: a sink
            # that can send them as they are does (write_parts, no copy);
            # otherwise they are copied once here.
            write_parts = getattr(sink, "write_parts", None)
            if write_parts is not None:
                write_parts(out)
            else:
                sink.write(bytes(out[0]) if len(out) == 1 else b"".join(out))

    def _peer(self) -> str:
        peer: Any = self.transport.getPeer() if self.transport is not None else None
        return f"{peer.host}:{peer.port}" if peer is not None else "?"

    def _handle(self, event: object) -> None:
        if type(event) is SendBodyChunk:
            self._on_body_chunk(event)
        elif type(event) is GetBodyChunk:
            self._on_get_body_chunk(event)
        elif type(event) is SendHeaders:
            self._on_headers(event)
        elif type(event) is EndResponse:
            self._on_end(event)
        elif type(event) is CPong:
            self._cancel_timer()
            d, self._ping = self._ping, None
            self.reusable = True
            self.last_used = self._clock.seconds()
            if d is not None:
                d.callback(None)
        else:
            raise BackendProtocolError(f"unexpected AJP message {event!r}")

    def _on_get_body_chunk(self, event: GetBodyChunk) -> None:
        # Not a response byte: a member that reads the body and then stays
        # silent is slow (BackendTimeout), and its response never started.
        self._rearm()
        if self._stream is not None:
            self._stream_wants.append(self._codec.requested_body_length)
            if not self._stream_waiting:
                self._send_stream()
            return
        data = self._read_body(self._codec.requested_body_length)
        send_now(self.transport, self._codec.send(RequestBody(data)))

    def _rearm(self) -> None:
        # Called per packet: note the time instead of replacing the timer,
        # which checks the time when it fires (see _timed_out).
        if self._paused:
            return
        if self._timer is not None and self._timer.active():
            self._activity = self._clock.seconds()
        else:
            self._watch(self._timeout)

    def _on_headers(self, event: SendHeaders) -> None:
        problem = response_head_problem(event.status, event.headers)
        if problem is not None:
            # Nothing of it reaches the client: a 502, this connection dropped.
            raise BackendProtocolError(
                f"member {self._peer()} sent a response head that cannot be passed on: {problem}"
            )
        self._response_bytes = True
        self._rearm()
        if event.status in (204, 304):
            self._bodiless = True
        for name, value in event.headers:
            if name.lower() == b"content-length":
                try:
                    self._declared_length = int(value)
                except ValueError:
                    raise BackendProtocolError(f"bad Content-Length {value!r}") from None
        if self._draining and not self._worth_draining():
            # The client left before the answer started; it is too long to drain.
            raise ResponseAborted("client went away")
        if event.status == 403:
            self._held = [event]
            self._held_size = 0
            return
        self._start(event)

    def _start(self, event: SendHeaders) -> None:
        sink = self._sink
        assert sink is not None
        sink.start(event.status, event.headers)
        sink.register_producer(self)

    def _on_body_chunk(self, event: SendBodyChunk) -> None:
        self._rearm()
        self._body_chunk(event.data)
        # The chunks right behind this one, read in one call (no event each).
        more = self._codec.next_body_data()
        if not more:
            return
        if self._held is not None or self._bodiless or self._draining:
            for data in more:
                if self._sink is None:
                    return
                self._body_chunk(data)
            return
        self._count_received(sum(len(data) for data in more))
        self._out += more

    def _count_received(self, size: int) -> None:
        self._received_length += size
        if self._declared_length is not None and self._received_length > self._declared_length:
            raise BackendProtocolError("member sent more bytes than its Content-Length")

    def _body_chunk(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self._count_received(len(data))
        if self._held is not None:
            self._held.append(data)
            self._held_size += len(data)
            if self._held_size > _HOLD_LIMIT:
                self._release_held()
            return
        if self._bodiless:
            self._finish_without_body()
            return
        if not self._draining:
            self._out.append(data)

    def _finish_without_body(self) -> None:
        # No body belongs to this answer (HEAD, 204, 304) and the client's
        # response is whole with its headers: finish it and drop the
        # connection instead of reading whatever the member still sends.
        _log.warn("member {peer} sent a body where none belongs; connection dropped",
                  peer=self._peer())
        self._cancel_timer()
        sink, self._sink = self._sink, None
        d, self._waiting = self._waiting, None
        self._drop_body()
        assert sink is not None
        sink.unregister_producer()
        self.abort()
        sink.finish()
        if d is not None:
            d.callback(False)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        assert held is not None
        self._start(cast(SendHeaders, held[0]))
        sink = self._sink
        assert sink is not None
        for data in cast("list[bytes | memoryview]", held[1:]):
            sink.write(bytes(data))

    def _on_end(self, event: EndResponse) -> None:
        # The timer stays for the next exchange (see _watch).
        if self._held is not None:
            if not event.reuse:
                self._fail(
                    BackendRejected(
                        "member answered 403 and closed the connection: the AJP secret "
                        "is missing or wrong, or a request attribute is not allowed"
                    )
                )
                return
            self._release_held()
        sink = self._sink
        if sink is None:
            return
        if not sink.started:
            raise BackendProtocolError("END_RESPONSE before SEND_HEADERS")
        if self._declared_length is not None and self._received_length < self._declared_length:
            # HEAD, 204 and 304 may declare a length without a body.
            if self._received_length or not self._bodiless:
                raise ResponseAborted("member sent fewer bytes than its Content-Length")
        if self._out:
            self._flush_out()
        sink.unregister_producer()
        if self._paused:
            # The client paused us and will never resume a producer it no
            # longer holds; a connection going back to the pool must read.
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        d, self._waiting = self._waiting, None
        self._sink = None
        self._drop_body()
        self.reusable = bool(self._codec.reusable and self.connected)
        if self.reusable:
            self._codec.start_next_cycle()
        self.last_used = self._clock.seconds()
        sink.finish()
        if d is not None:
            d.callback(self.reusable)

    # -- IPushProducer: the client side slows the member down -----------

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self._paused = False
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]
        if self._waiting is not None:
            self._watch(self._timeout)

    def stopProducing(self) -> None:
        self._client_gone()
