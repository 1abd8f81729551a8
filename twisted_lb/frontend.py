"""
The client side of the proxy: an HTTP/1.1 channel that enforces
L{LimitsConfig} before any request reaches a member, and the C{Site} that
builds it.

Twisted's own channel answers 400 past 500 header lines, closes silently
past 16 KiB of headers and waits without limit for a client that drips its
head or body a byte at a time. L{LimitedHTTPChannel} answers 431 for heads
that are too big, 408 for heads or bodies that come too slowly (the rule of
Apache's C{mod_reqtimeout}: a first deadline extended by every C{min_rate}
bytes received, up to a hard limit for heads), aborts a connection whose
client has not read any of its response for C{send_timeout} seconds, and
L{FrontendSite} answers 503 to connections past C{max_connections}.

Each connection holds at most one timer for the head or body deadline; it is
moved lazily (when it fires early) rather than on every read.
"""

from __future__ import annotations

import enum
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import _GenericHTTPChannelProtocol
from twisted.web.resource import IResource
from twisted.web.server import Site

from twisted_lb.config.model import LimitsConfig
from twisted_lb.drain import ClientConnections, TrackedChannel

__all__ = ["FrontendSite", "LimitedHTTPChannel", "refusal"]

_log = Logger()


def refusal(status: int, reason: str, message: str) -> bytes:
    """
    A complete C{Connection: close} response for a request refused before
    it was parsed.

    @param status: the status code.
    @param reason: its reason phrase.
    @param message: a one-line explanation for the body.
    """
    body = message.encode("ascii") + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s"
    ) % (status, reason.encode("ascii"), len(body), body)


class _Phase(enum.Enum):
    #: Between requests: the idle timeout of Twisted's channel applies.
    IDLE = "idle"
    #: Part of a request head has arrived.
    HEAD = "head"
    #: The head is complete, part of the body has arrived.
    BODY = "body"
    #: The request is complete and being answered.
    HANDLING = "handling"


class LimitedHTTPChannel(TrackedChannel):
    """
    An L{HTTPChannel} that enforces a L{LimitsConfig}.

    @ivar limits: the limits.
    @ivar _clock: where deadlines are read and scheduled.
    """

    def __init__(self, limits: LimitsConfig, clock: IReactorTime) -> None:
        super().__init__()
        self.limits = limits
        self._clock = clock
        # Twisted's own checks stay as a backstop beyond ours.
        self.maxHeaders = limits.max_headers + 1
        self.totalHeadersSize = limits.max_header_bytes + 1
        self.MAX_LENGTH = limits.max_header_bytes
        self._phase = _Phase.IDLE
        self._started = 0.0
        self._received = 0
        self._deadline_call: IDelayedCall | None = None
        self._send_call: IDelayedCall | None = None

    # -- reading -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._phase is _Phase.IDLE and data:
            self._start(_Phase.HEAD, self.limits.header_timeout)
        if self._phase is not _Phase.HANDLING:
            self._received += len(data)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.limits.max_header_bytes:
            self._refuse_too_large()
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse_too_large()

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.limits.max_headers:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"more than {self.limits.max_headers} header fields",
            )
            return False
        return bool(super().headerReceived(line))

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        if self.length != 0 and not self.transport.disconnecting:  # type: ignore[union-attr]
            self._start(_Phase.BODY, self.limits.body_timeout)

    def allContentReceived(self) -> None:
        self._phase = _Phase.HANDLING
        self._cancel_deadline()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self._phase = _Phase.IDLE
        super().requestDone(request)

    # -- head and body deadlines -------------------------------------------

    def _start(self, phase: _Phase, seconds: float) -> None:
        self._phase = phase
        self._started = self._clock.seconds()
        self._received = 0
        self._cancel_deadline()
        self._deadline_call = self._clock.callLater(seconds, self._check_deadline)

    def _deadline(self) -> float:
        limits = self.limits
        earned = self._received / limits.min_rate
        if self._phase is _Phase.HEAD:
            return self._started + min(limits.header_timeout + earned, limits.header_timeout_max)
        return self._started + limits.body_timeout + earned

    def _check_deadline(self) -> None:
        self._deadline_call = None
        if self._phase not in (_Phase.HEAD, _Phase.BODY) or self.transport is None:
            return
        now = self._clock.seconds()
        left = self._deadline() - now
        if left > 0:
            self._deadline_call = self._clock.callLater(left, self._check_deadline)
            return
        what = "request head" if self._phase is _Phase.HEAD else "request body"
        _log.info(
            "408 for {peer}: {what} too slow ({received} bytes in {seconds:.1f} s)",
            peer=str(self.transport.getPeer()),
            what=what,
            received=self._received,
            seconds=now - self._started,
        )
        self._refuse(408, "Request Timeout", f"the {what} did not arrive in time")

    def _cancel_deadline(self) -> None:
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    # -- refusing ------------------------------------------------------------

    def _refuse_too_large(self) -> None:
        if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
            self._refuse(414, "URI Too Long", "the request line is too long")
        else:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"the request head is larger than {self.limits.max_header_bytes} bytes",
            )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer C{status} to a request nobody has seen, and close."""
        self._phase = _Phase.HANDLING
        self._cancel_deadline()
        self.setRawMode()
        self.rawDataReceived = lambda data: None  # type: ignore[method-assign]
        self.transport.write(refusal(status, reason, message))  # type: ignore[union-attr]
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    # -- writing -------------------------------------------------------------

    def pauseProducing(self) -> None:
        super().pauseProducing()
        if self._send_call is None:
            self._send_call = self._clock.callLater(self.limits.send_timeout, self._send_stalled)

    def resumeProducing(self) -> None:
        if self._send_call is not None:
            if self._send_call.active():
                self._send_call.cancel()
            self._send_call = None
        super().resumeProducing()

    def _send_stalled(self) -> None:
        self._send_call = None
        if self.transport is None:  # taken over (WebSocket)
            return
        _log.info(
            "aborting {peer}: it read nothing of its response for {seconds} s",
            peer=str(self.transport.getPeer()),
            seconds=self.limits.send_timeout,
        )
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._cancel_deadline()
        if self._send_call is not None and self._send_call.active():
            self._send_call.cancel()
        self._send_call = None
        super().connectionLost(reason)


class _CountedChannelProtocol(_GenericHTTPChannelProtocol):
    """Twisted's HTTP/1.1-or-HTTP/2 switch, counted in its site while open."""

    def makeConnection(self, transport: Any) -> None:
        self._site.open_connections += 1
        super().makeConnection(transport)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._site.open_connections -= 1
        super().connectionLost(reason)


class _Refused(Protocol):
    """A connection past the limit: a 503, then close."""

    def connectionMade(self) -> None:
        self.transport.write(  # type: ignore[union-attr]
            refusal(503, "Service Unavailable", "too many connections")
        )
        self.transport.loseConnection()  # type: ignore[union-attr]


class FrontendSite(Site):
    """
    The C{Site} of a listener: L{LimitedHTTPChannel}s (HTTP/2 still offered
    over ALPN), no tracebacks in error pages, request logging left to
    twisted_lb's access log, and at most C{limits.max_connections} open
    connections.

    @ivar open_connections: client connections open now.
    """

    displayTracebacks = False

    def __init__(
        self,
        resource: IResource,
        limits: LimitsConfig,
        reactor: Any = None,
        connections: ClientConnections | None = None,
    ) -> None:
        super().__init__(resource, timeout=limits.idle_timeout, reactor=reactor)
        self.limits = limits
        self.open_connections = 0
        #: The proxy's client connections (for a graceful stop), if it tracks them.
        self.connections = connections

    def protocol(self) -> _GenericHTTPChannelProtocol:  # type: ignore[override]
        return _CountedChannelProtocol(LimitedHTTPChannel(self.limits, self.reactor))

    def buildProtocol(self, addr: Any) -> Any:
        limit = self.limits.max_connections
        if limit is not None and self.open_connections >= limit:
            _log.warn("refusing {addr}: {limit} connections are open", addr=addr, limit=limit)
            return _Refused()
        return super().buildProtocol(addr)

    def log(self, request: object) -> None:
        pass
