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
    client has not gone.
"""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.exceptions
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.compat import H2Connection
from twisted_lb.config.model import LimitsConfig

__all__ = ["CLOSE_GRACE", "FrameScanner", "LimitedH2Connection"]

_log = Logger()

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


class LimitedH2Connection(H2Connection):
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
        self._head_call: IDelayedCall | None = None
        self._head_started = 0.0
        self._head_received = 0

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
        """Hand C{data} to Twisted's connection; close after a connection error."""
        super().dataReceived(data)
        conn: h2.connection.H2Connection = self.conn
        if not self._closing and conn.state_machine.state is ConnectionState.CLOSED:
            self._close("HTTP/2 connection error", None)

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

    # -- closing -----------------------------------------------------------

    def _peer(self) -> str:
        transport = self.transport
        return str(transport.getPeer()) if transport is not None else "?"

    def _close(self, why: str | None, error_code: ErrorCodes | None) -> None:
        """
        End the connection after a connection error: send the GOAWAY
        (C{error_code}, or the one h2 queued), stop reading, drop what still
        arrives, close, and abort after L{CLOSE_GRACE} seconds.

        @param why: what went wrong, for the log (C{None}: nothing did, the
            client sent GOAWAY).
        """
        if self._closing:
            return
        self._closing = True
        transport: Any = self.transport
        if why is not None:
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
        super().connectionLost(Failure(ConnectionLost(why or "the client sent GOAWAY")))

    def _cancel_timers(self) -> None:
        call = self._head_call
        if call is not None and call.active():
            call.cancel()
        self._head_call = None

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
