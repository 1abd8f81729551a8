"""
HTTP/2 for the proxy's clients: Twisted's C{H2Connection} inside the
L{LimitsConfig} that HTTP/1.1 connections get, and closed for good after a
connection error.

Twisted's own connection buffers a header block (HEADERS and CONTINUATION
frames until END_HEADERS) up to h2's 64 frames, and after a connection error
sends GOAWAY but keeps the connection open and reading (its producer stays
registered, so TLS never closes): a client that goes on sending CONTINUATION
frames grows the process without bound. It applies none of the head and body
timeouts, nor the body size limit, and it hands a request to the site while
it reads, so a stream the client resets in the same read still reaches a
member.

L{LimitedH2Connection}:

  - scans the frame headers of what arrives (L{FrameScanner}, sans-IO) and
    ends the connection as soon as a header block is larger than
    C{max_header_bytes}, before h2 buffers it; a header block that does not
    complete in time (C{header_timeout}, extended by C{min_rate}, up to
    C{header_timeout_max}) ends it too;
  - after any connection error sends its GOAWAY, stops reading, drops what
    still arrives, closes, and aborts after L{CLOSE_GRACE} seconds if the
    client has not gone;
  - advertises and enforces L{MAX_STREAMS} concurrent streams per connection
    (a stream beyond is refused with REFUSED_STREAM);
  - answers 431 to a request with more than C{max_headers} fields, 413 to a
    body larger than C{max_body_bytes} (by its C{content-length} or as it
    arrives), 408 to a body slower than C{body_timeout} + C{min_rate}, each on
    its stream, and resets the stream (NO_ERROR) so the client stops sending;
  - hands a complete request to the site only after the read that brought it
    has been processed, skipping streams the client reset meanwhile (rapid
    reset, CVE-2023-44487), and ends with GOAWAY (ENHANCE_YOUR_CALM) a
    connection that resets streams faster than L{RESET_BURST} at once and
    L{RESET_RATE} per second.
"""

from __future__ import annotations

from typing import Any

import h2.events
import h2.exceptions
import priority
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.compat import H2ConnectionBase
from twisted_lb.config.model import LimitsConfig

__all__ = [
    "CLOSE_GRACE",
    "FrameScanner",
    "LimitedH2Connection",
    "MAX_STREAMS",
    "RESET_BURST",
    "RESET_RATE",
]

_log = Logger()

#: Concurrent streams a client may open on one connection (advertised in
#: SETTINGS_MAX_CONCURRENT_STREAMS; more are refused with REFUSED_STREAM).
MAX_STREAMS = 100
#: h2's own check, a backstop behind ours (a connection error past it).
_H2_MAX_STREAMS = 2 * MAX_STREAMS
#: Stream resets (by the client, or refusals of streams over MAX_STREAMS) a
#: connection may make at once ...
RESET_BURST = 2 * MAX_STREAMS
#: ... and per second after that; beyond: GOAWAY (ENHANCE_YOUR_CALM).
RESET_RATE = 50.0
#: Seconds a client has to go away after a connection error before the
#: connection is aborted.
CLOSE_GRACE = 1.0

_PREFACE_LENGTH = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME_HEADER = 9
_HEADERS = 0x1
_PUSH_PROMISE = 0x5
_CONTINUATION = 0x9
_END_HEADERS = 0x4


class FrameScanner:
    """
    Follows the frames of what an HTTP/2 client sends (the connection
    preface first), reading only their 9-byte headers, to know the size of
    the header block being received and whether one is open.

    @ivar max_block: the largest header block accepted, in bytes.
    @ivar block_bytes: the bytes of the last header block so far.
    @ivar in_block: a header block has started and not ended (its END_HEADERS
        frame has not fully arrived).
    """

    __slots__ = ("max_block", "block_bytes", "in_block", "_preface", "_head", "_left", "_ends")

    def __init__(self, max_block: int) -> None:
        self.max_block = max_block
        self.block_bytes = 0
        self.in_block = False
        self._preface = _PREFACE_LENGTH
        #: The start of a frame header split across reads.
        self._head = b""
        #: Payload bytes of the current frame still to come.
        self._left = 0
        #: The current frame ends a header block.
        self._ends = False

    def feed(self, data: bytes) -> int:
        """
        Follow C{data}, the next bytes from the client.

        @return: C{len(data)} when every header block stays within
            L{max_block}; otherwise the offset in C{data} of the frame that
            takes a header block past it (what comes before may be used).
        """
        pos = 0
        end = len(data)
        if self._preface:
            skipped = min(self._preface, end)
            self._preface -= skipped
            pos = skipped
        while pos < end:
            left = self._left
            if left:
                taken = min(left, end - pos)
                pos += taken
                self._left = left - taken
                if self._left == 0 and self._ends:
                    self.in_block = self._ends = False
                continue
            start = pos - len(self._head)
            if self._head:
                needed = _FRAME_HEADER - len(self._head)
                header = self._head + data[pos : pos + needed]
            else:
                header = data[pos : pos + _FRAME_HEADER]
            if len(header) < _FRAME_HEADER:
                self._head = header
                break
            pos += _FRAME_HEADER - len(self._head)
            self._head = b""
            length = int.from_bytes(header[:3], "big")
            kind = header[3]
            if kind == _HEADERS or kind == _PUSH_PROMISE:
                self.block_bytes = length
            elif kind == _CONTINUATION:
                self.block_bytes += length
            else:
                self._left = length
                continue
            if self.block_bytes > self.max_block:
                return max(start, 0)
            self.in_block = True
            self._ends = bool(header[4] & _END_HEADERS)
            self._left = length
            if length == 0 and self._ends:
                self.in_block = self._ends = False
        return end


class _Body:
    """A request body being received on a stream."""

    __slots__ = ("started", "received")

    def __init__(self, started: float) -> None:
        self.started = started
        self.received = 0


def _settings(max_streams: int, header_list: int) -> Settings:
    return Settings(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
        },
    )


class LimitedH2Connection(H2ConnectionBase):
    """
    An HTTP/2 connection from a client that keeps to a L{LimitsConfig} (see
    the module's description).

    @ivar limits: the limits.
    """

    def __init__(self, limits: LimitsConfig, reactor: IReactorTime) -> None:
        super().__init__(reactor)
        self.limits = limits
        self._clock = reactor
        self._scanner = FrameScanner(limits.max_header_bytes)
        self._closing = False
        self._abort_call: IDelayedCall | None = None
        self._send_call: IDelayedCall | None = None
        self._head_call: IDelayedCall | None = None
        self._head_started = 0.0
        self._head_received = 0
        self._bodies: dict[int, _Body] = {}
        self._body_call: IDelayedCall | None = None
        self._ended: list[h2.events.StreamEnded] = []
        self._ended_call: IDelayedCall | None = None
        self._reset_tokens = float(RESET_BURST)
        self._reset_at = reactor.seconds()
        # The decoded header list: the head limit plus HPACK's 32 bytes per field.
        header_list = limits.max_header_bytes + 32 * limits.max_headers
        self.conn.decoder.max_header_list_size = header_list
        # SETTINGS tell the client MAX_STREAMS; h2 itself enforces a higher
        # limit (connectionMade), so that a stream beyond ours is decoded and
        # refused as a stream error rather than ending the connection.
        self.conn.local_settings = _settings(MAX_STREAMS, header_list)
        self._h2_settings = _settings(_H2_MAX_STREAMS, header_list)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.conn.local_settings = self._h2_settings

    # -- reading -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        allowed = self._scanner.feed(data)
        if allowed < len(data):
            if allowed:
                self._receive(data[:allowed])
            self._close(
                f"a request head (header block) larger than {self.limits.max_header_bytes} bytes",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )
            return
        self._receive(data)
        if not self._closing:
            self._track_head(len(data))

    def _receive(self, data: bytes) -> None:
        """Hand C{data} to h2 and act on the events it makes."""
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            # h2 has queued its GOAWAY.
            self._close(f"HTTP/2 protocol error: {e}", None)
            return
        self.resetTimeout()
        try:
            for event in events:
                if self._closing:
                    return
                self._event(event)
        except priority.TooManyStreamsError as e:
            # Twisted's priority tree holds at most 1 000 streams, PRIORITY
            # frames for streams never opened included.
            self._close(f"its stream priorities: {e}", ErrorCodes.ENHANCE_YOUR_CALM)
            return
        except Exception:
            _log.failure("HTTP/2 connection of {peer}", peer=self._peer())
            self._close("an internal error", ErrorCodes.INTERNAL_ERROR)
            return
        if not self._closing:
            self.flush_control()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._on_ended(event)
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updated(event)
        elif isinstance(event, h2.events.PriorityUpdated):
            self.priority_updated(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The client's GOAWAY: it goes away; so do its streams.
            self._close("the client sent GOAWAY", None, quiet=True)

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        assert event.stream_id is not None and event.headers is not None
        if len(self.streams) >= MAX_STREAMS:
            self._refuse_stream(stream_id)
            return
        limits = self.limits
        fields = 0
        length = None
        for name, value in event.headers:
            if name[:1] != b":":
                fields += 1
                if name == b"content-length":
                    length = value
        if fields > limits.max_headers:
            self._answer(stream_id, 431, f"more than {limits.max_headers} header fields")
            return
        if length is not None and limits.max_body_bytes:
            declared = int(length)  # h2 has checked it is a number
            if declared > limits.max_body_bytes:
                self._refuse_body(stream_id, f"Content-Length {declared}")
                return
        self.open_stream(event)
        if event.stream_ended is None:
            self._bodies[stream_id] = _Body(self._clock.seconds())
            if self._body_call is None:
                self._body_call = self._clock.callLater(limits.body_timeout, self._check_bodies)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.data is not None
        if stream_id not in self.streams:
            # A stream refused or answered already: its bytes still count
            # against the connection's window, which is given back.
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            return
        body = self._bodies.get(stream_id)
        if body is not None:
            body.received += len(event.data)
            limit = self.limits.max_body_bytes
            if limit and body.received > limit:
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
                self._refuse_body(stream_id, "the body")
                return
        self.stream_data(event)

    def _on_ended(self, event: h2.events.StreamEnded) -> None:
        stream_id = event.stream_id
        self._bodies.pop(stream_id, None)  # type: ignore[arg-type]
        if stream_id in self.streams:
            # Processed once this read is: a reset in it cancels the request.
            self._ended.append(event)
            if self._ended_call is None:
                self._ended_call = self._clock.callLater(0, self._process_ended)

    def _process_ended(self) -> None:
        self._ended_call = None
        ended, self._ended = self._ended, []
        for event in ended:
            if self._closing:
                return
            if event.stream_id in self.streams:
                self.stream_ended(event)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream_id = event.stream_id
        self._bodies.pop(stream_id, None)  # type: ignore[arg-type]
        if not self._spend_reset("resets streams too fast"):
            return
        if stream_id in self.streams:
            self.stream_reset(event)

    def _spend_reset(self, why: str) -> bool:
        """
        Count a stream reset (by the client, or a refused stream) against the
        connection's allowance; close the connection when it is spent.

        @return: whether the connection stays open.
        """
        now = self._clock.seconds()
        tokens = min(
            float(RESET_BURST),
            self._reset_tokens + max(0.0, now - self._reset_at) * RESET_RATE,
        )
        self._reset_at = now
        if tokens < 1:
            self._close(
                f"it {why} (over {RESET_BURST} at once, {RESET_RATE:g} per second)",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )
            return False
        self._reset_tokens = tokens - 1
        return True

    # -- refusing streams ----------------------------------------------------

    def _refuse_stream(self, stream_id: int) -> None:
        """Refuse a stream beyond L{MAX_STREAMS} (REFUSED_STREAM: the client may retry it)."""
        if not self._spend_reset(f"opens streams beyond the {MAX_STREAMS} allowed"):
            return
        try:
            self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
        except h2.exceptions.ProtocolError:
            pass  # the client reset it already

    def _refuse_body(self, stream_id: int, what: str) -> None:
        limit = self.limits.max_body_bytes
        _log.info(
            "413 for {peer}: {what} of HTTP/2 stream {stream} is larger than {limit} bytes",
            peer=self._peer(),
            what=what,
            stream=stream_id,
            limit=limit,
        )
        self._answer(stream_id, 413, f"the request body is larger than {limit} bytes")

    def _answer(self, stream_id: int, status: int, message: str) -> None:
        """
        Answer C{status} on a stream no member has seen, end it, and ask the
        client to stop sending on it (RST_STREAM NO_ERROR, RFC 9113 8.1).
        """
        self._bodies.pop(stream_id, None)
        body = message.encode("utf-8") + b"\n"
        conn = self.conn
        try:
            fits = conn.local_flow_control_window(stream_id) >= len(body)
            headers = [(b":status", b"%d" % status)]
            if fits:
                headers += [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ]
            conn.send_headers(stream_id, headers, end_stream=not fits)
            if fits:
                conn.send_data(stream_id, body, end_stream=True)
            conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            pass  # closed meanwhile (by the client, or both ends)
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.connectionLost(Failure(ConnectionLost(f"answered {status}: {message}")))
            self.forget_stream(stream_id)

    # -- head and body deadlines -------------------------------------------

    def _track_head(self, size: int) -> None:
        """Start, extend or stop the deadline of a header block being received."""
        if self._scanner.in_block:
            if self._head_call is None:
                self._head_started = self._clock.seconds()
                self._head_received = 0
                self._head_call = self._clock.callLater(
                    self.limits.header_timeout, self._check_head
                )
            self._head_received += size
        elif self._head_call is not None:
            if self._head_call.active():
                self._head_call.cancel()
            self._head_call = None

    def _check_head(self) -> None:
        self._head_call = None
        if self._closing or not self._scanner.in_block:
            return
        limits = self.limits
        now = self._clock.seconds()
        earned = self._head_received / limits.min_rate
        deadline = self._head_started + min(
            limits.header_timeout + earned, limits.header_timeout_max
        )
        if deadline > now:
            self._head_call = self._clock.callLater(deadline - now, self._check_head)
            return
        self._close(
            f"a request head did not arrive in time ({self._head_received} bytes "
            f"in {now - self._head_started:.1f} s)",
            ErrorCodes.ENHANCE_YOUR_CALM,
        )

    def _check_bodies(self) -> None:
        """Answer 408 on the streams whose body is late; look again at the next deadline."""
        self._body_call = None
        if self._closing:
            return
        limits = self.limits
        now = self._clock.seconds()
        late = []
        next_deadline = None
        for stream_id, body in self._bodies.items():
            deadline = body.started + limits.body_timeout + body.received / limits.min_rate
            if deadline <= now:
                late.append(stream_id)
            elif next_deadline is None or deadline < next_deadline:
                next_deadline = deadline
        if late:
            _log.info(
                "408 for {peer}: {count} HTTP/2 request bodies too slow "
                "(over {timeout:g} s, less than {rate} bytes/s)",
                peer=self._peer(),
                count=len(late),
                timeout=limits.body_timeout,
                rate=limits.min_rate,
            )
            for stream_id in late:
                self._answer(stream_id, 408, "the request body did not arrive in time")
            self.flush_control()
        if next_deadline is not None and not self._closing:
            self._body_call = self._clock.callLater(next_deadline - now, self._check_bodies)

    # -- closing -----------------------------------------------------------

    def _peer(self) -> str:
        transport = self.transport
        return str(transport.getPeer()) if transport is not None else "?"

    def timeoutConnection(self) -> None:
        """
        Nothing received nor sent for C{idle_timeout}: close with GOAWAY
        (NO_ERROR), unless every request in flight is waiting for its member
        (a member may take longer than that to answer). A response held back
        because the client gives no flow-control window is the client's
        doing: the connection is closed then.
        """
        if self.streams:
            held = [s for s in self.streams if self.remainingOutboundWindow(s) <= 0]
            if not held:
                # The timer that fired is spent: set a new one.
                self.setTimeout(self.timeOut)
                return
            self._close(
                f"it opened no flow-control window for {len(held)} responses in {self.timeOut} s",
                ErrorCodes.ENHANCE_YOUR_CALM,
            )
            return
        self._close(f"idle for {self.timeOut} s", ErrorCodes.NO_ERROR, quiet=True)

    def pauseProducing(self) -> None:
        """The client reads too slowly: abort if it still has not read in C{send_timeout}."""
        super().pauseProducing()
        if self._send_call is None and not self._closing:
            self._send_call = self._clock.callLater(self.limits.send_timeout, self._send_stalled)

    def resumeProducing(self) -> None:
        if self._send_call is not None:
            if self._send_call.active():
                self._send_call.cancel()
            self._send_call = None
        super().resumeProducing()

    def _send_stalled(self) -> None:
        self._send_call = None
        transport: Any = self.transport
        if transport is None or self._closing:
            return
        _log.info(
            "aborting the HTTP/2 connection of {peer}: it read nothing for {seconds} s",
            peer=self._peer(),
            seconds=self.limits.send_timeout,
        )
        transport.abortConnection()

    def _close(self, why: str, error_code: ErrorCodes | None, quiet: bool = False) -> None:
        """
        End the connection after a connection error: send the GOAWAY
        (C{error_code}, or the one h2 queued), stop reading, drop what still
        arrives, close, and abort after L{CLOSE_GRACE} seconds.

        @param why: what went wrong, for the log.
        @param quiet: nothing went wrong (the client went away, or was idle):
            log nothing.
        """
        if self._closing:
            return
        self._closing = True
        transport: Any = self.transport
        if not quiet:
            _log.info("closing the HTTP/2 connection of {peer}: {why}", peer=self._peer(), why=why)
        if error_code is not None:
            try:
                self.conn.close_connection(error_code=error_code)
            except h2.exceptions.ProtocolError:
                pass  # closed already
        data = self.conn.data_to_send()
        self._cancel_timers()
        if transport is not None:
            if data:
                transport.write(data)
            # Under TLS, the TCP connection below stops reading.
            lower = getattr(transport, "transport", transport)
            pause = getattr(lower, "pauseProducing", None)
            if pause is not None:
                pause()
            # TLS closes only once no producer is registered.
            transport.unregisterProducer()
            transport.loseConnection()
            self._abort_call = self._clock.callLater(CLOSE_GRACE, transport.abortConnection)
        # The streams' requests lose their client now.
        super().connectionLost(Failure(ConnectionLost(why)))

    def _cancel_timers(self) -> None:
        for name in ("_head_call", "_body_call", "_ended_call", "_send_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        self._ended = []
        self._bodies.clear()

    def connectionLost(self, reason: Failure, _cancelTimeouts: bool = True) -> None:  # type: ignore[override]
        if not _cancelTimeouts and not self._closing:
            # Twisted's own teardown after an error (it leaves the
            # connection open and reading): close as after ours.
            self._close(reason.getErrorMessage(), None)
            return
        self._closing = True
        self._cancel_timers()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        super().connectionLost(reason)
