"""
The client side of the proxy: an HTTP/1.1 channel that enforces
L{LimitsConfig} before any request reaches a member, and the C{Site} that
builds it.

Twisted's own channel answers 400 past 500 header lines, closes silently
past 16 KiB of headers and waits without limit for a client that drips its
head or body a byte at a time, and takes request bodies of any size.
L{LimitedHTTPChannel} answers 431 for heads that are too big, 413 for bodies
larger than C{max_body_bytes} (before any C{100 Continue}), 408 for heads or
bodies that come too slowly (the rule of Apache's C{mod_reqtimeout}: a first
deadline extended by every C{min_rate} bytes received, up to a hard limit for
heads), aborts a connection whose client has not read any of its response
for C{send_timeout} seconds, and L{FrontendSite} answers 503 to connections
past C{max_connections}.

Each connection holds at most one timer for the head or body deadline; it is
moved lazily (when it fires early) rather than on every read.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, cast

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import _GenericHTTPChannelProtocol
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from twisted_lb.compat import (
    channel_between_requests,
    channel_expects_request_line,
    channel_hold,
    channel_hold_bytes,
    channel_release,
    channel_resume_reading,
    switch_to_http2,
    tls_session_id,
)
from twisted_lb.config.model import LimitsConfig
from twisted_lb.drain import ClientConnections, TrackedChannel
from twisted_lb.exchange import connection_options
from twisted_lb.fastpath import RawResponse, parse_head, parse_simple_head
from twisted_lb.http_rules import refusal
from twisted_lb.request_body import BodyError, ChunkedDecoder, LengthDecoder, StreamedBody
from twisted_lb.tls import h2_available

__all__ = [
    "ConnectionInfo",
    "FrontendSite",
    "LimitedHTTPChannel",
    "TLSDetails",
    "refusal",
    "tls_details",
]

_log = Logger()

#: How long the rest of a request body is read and dropped after its answer
#: went out early, before the connection closes.
LINGER_SECONDS = 2.0


def _asks_close(values: Sequence[bytes] | None) -> bool:
    """
    Whether C{Connection} field values list the C{close} option (RFC 9112
    9.6), in any field, in any case, anywhere in a comma-separated list.

    @param values: the request's C{Connection} field values, or C{None}.
    """
    return b"close" in connection_options(values or ())


@attrs.frozen
class ConnectionInfo:
    """
    What a request needs to know of its connection, read once per connection.

    @ivar client: the client's address (an C{IAddress}).
    @ivar ssl_protocol: the TLS version, when over TLS and known.
    @ivar ssl_cipher: the TLS cipher, when over TLS and known.
    @ivar ssl_key_size: the cipher's secret bits, when over TLS and known.
    @ivar ssl_session: the TLS session id (upper-case hex), when there is one.
    @ivar ssl_cert: the client's certificate chain as PEM (its own
        certificate first), when it presented one.
    """

    client: Any
    client_host: str
    client_port: int
    local_host: str
    local_port: int
    secure: bool
    ssl_protocol: bytes | None = None
    ssl_cipher: bytes | None = None
    ssl_key_size: int | None = None
    ssl_session: bytes | None = None
    ssl_cert: bytes | None = None

    @classmethod
    def of(cls, channel: Any) -> ConnectionInfo:
        """The info of C{channel}'s connection (after the TLS handshake, if any)."""
        transport = channel.transport
        return cls.of_parts(
            transport.getPeer(), transport.getHost(), bool(channel.isSecure()), transport
        )

    @classmethod
    def of_parts(cls, client: Any, local: Any, secure: bool, transport: Any) -> ConnectionInfo:
        """The info from the two addresses, and the transport's TLS details if C{secure}."""
        tls = tls_details(transport) if secure else _NO_TLS
        return cls(
            client=client,
            client_host=getattr(client, "host", "") or "",
            client_port=getattr(client, "port", 0) or 0,
            local_host=getattr(local, "host", "") or "",
            local_port=getattr(local, "port", 0) or 0,
            secure=secure,
            ssl_protocol=tls.protocol,
            ssl_cipher=tls.cipher,
            ssl_key_size=tls.key_size,
            ssl_session=tls.session,
            ssl_cert=tls.client_chain,
        )


@attrs.frozen
class TLSDetails:
    """
    What a TLS connection tells a member (AJP's SSL attributes, as Apache's
    C{mod_proxy_ajp} sends C{SSL_PROTOCOL}, C{SSL_CIPHER},
    C{SSL_CIPHER_USEKEYSIZE}, C{SSL_SESSION_ID} and C{SSL_CLIENT_CERT}).
    """

    protocol: bytes | None = None
    cipher: bytes | None = None
    key_size: int | None = None
    session: bytes | None = None
    client_chain: bytes | None = None


_NO_TLS = TLSDetails()


def tls_details(transport: Any) -> TLSDetails:
    """The TLS details of a client's connection, as far as they are known."""
    try:
        handle = transport.getHandle()
        protocol = handle.get_protocol_version_name()
        cipher = handle.get_cipher_name()
        bits = handle.get_cipher_bits()
    except Exception:
        return _NO_TLS
    try:
        session = tls_session_id(handle)
    except Exception:
        session = None
    return TLSDetails(
        protocol=protocol.encode("ascii") if protocol else None,
        cipher=cipher.encode("ascii") if cipher else None,
        key_size=bits if isinstance(bits, int) and bits > 0 else None,
        session=session,
        client_chain=_client_chain(handle),
    )


def _client_chain(handle: Any) -> bytes | None:
    """The certificates the client presented, as PEM, its own first; C{None} for none."""
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        leaf = handle.get_peer_certificate()
        if leaf is None:
            return None
        chain = [c.to_cryptography() for c in handle.get_peer_cert_chain() or ()]
        first = leaf.to_cryptography()
    except Exception:
        return None
    # A server's view of the chain may or may not hold the client's own certificate.
    certificates = [first, *(c for c in chain if c != first)]
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def _drop(data: bytes) -> None:
    """Swallow what a refused request's body decoder still delivers."""


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
        #: The fast-lane response in flight (see L{twisted_lb.fastpath}).
        self._fast: RawResponse | None = None
        #: The fast-lane request body being received: its decoder and stream.
        self._body_in: tuple[LengthDecoder | ChunkedDecoder, StreamedBody] | None = None
        #: When the body's reading was paused for a slow member (the body
        #: deadline does not run meanwhile), or C{None}.
        self._paused_at: float | None = None
        #: The end of the wait for the rest of an answered request's body.
        self._linger_call: IDelayedCall | None = None
        self._connection_info: ConnectionInfo | None = None

    # -- reading -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._body_in is not None:
            self._received += len(data)
            self._body_received(data)
            return
        if self._phase is _Phase.IDLE and data:
            if self._fast_lane(data):
                return
            self._start(_Phase.HEAD, self.limits.header_timeout)
        if self._phase is not _Phase.HANDLING:
            self._received += len(data)
        super().dataReceived(data)

    def _fast_lane(self, data: bytes) -> bool:
        """
        Serve C{data} in the fast lane if it is one whole simple request head
        on a connection with nothing else pending, and the site's resource
        takes it (see L{twisted_lb.fastpath}).
        """
        serve = getattr(getattr(self, "site", None), "fast_lane", None)
        if serve is None or not channel_between_requests(self):
            return False
        head = None
        if len(data) <= self.limits.max_header_bytes:
            head = parse_simple_head(data, self.limits.max_headers)
        if head is None:
            return self._stream_lane(data, serve)
        self.resetTimeout()
        return bool(serve(self, head))

    def _stream_lane(self, data: bytes, fast: Callable[..., Any]) -> bool:
        """
        Serve C{data} in the fast lane if it starts with one whole request
        head with a body (a C{Content-Length} within C{max_body_bytes}, or
        chunked) and the site's resource takes it: the body is then decoded
        here as it arrives and streamed to the member (see
        L{twisted_lb.request_body}); nothing of it is spooled. A head of
        another method without a body, alone in C{data}, is served as a GET,
        by C{fast} (the site's fast lane).
        """
        serve = getattr(getattr(self, "site", None), "stream_lane", None)
        end = data.find(b"\r\n\r\n")
        if serve is None or end < 0 or end + 4 > self.limits.max_header_bytes:
            return False
        head = parse_head(data[: end + 4], self.limits.max_headers)
        if head is None:
            return False
        if not head.has_body:
            # Any other method without a body (DELETE, OPTIONS, a POST with
            # no body...): answered as a GET is, when it is alone in its read.
            if end + 4 != len(data):
                return False
            self.resetTimeout()
            return bool(fast(self, head))
        limit = self.limits.max_body_bytes
        if limit and head.length is not None and head.length > limit:
            # twisted.web's path answers the 413, before any 100 Continue.
            return False
        decoder: LengthDecoder | ChunkedDecoder = (
            ChunkedDecoder() if head.chunked else LengthDecoder(head.length or 0)
        )
        body = StreamedBody(head.length)
        body.pause_client = self._pause_body
        body.resume_client = self._resume_body
        self.resetTimeout()
        if not serve(self, head, body):
            return False
        rest = data[end + 4 :]
        if head.expect_continue and not rest and not decoder.done:
            # Admitted (a route, a length within the limit): the client may send.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        self._body_in = (decoder, body)
        self._start(_Phase.BODY, self.limits.body_timeout)
        self._received = len(rest)
        self._body_received(rest)
        return True

    def _body_received(self, data: bytes) -> None:
        """Bytes of the fast-lane request body (and maybe what follows it)."""
        assert self._body_in is not None
        decoder, body = self._body_in
        try:
            pieces, rest = decoder.feed(data)
        except BodyError as e:
            self._body_failed(400, "Bad Request", f"the chunked body is malformed: {e}")
            return
        limit = self.limits.max_body_bytes
        for piece in pieces:
            if limit and body.length is None and body.received + len(piece) > limit:
                self._body_failed(413, "Content Too Large", "")
                return
            body.feed(piece)
        if not decoder.done:
            return
        if self._linger_call is not None:
            # The answer went out already: close now the client sent it all.
            self._end_linger()
            return
        self._body_in = None
        self._paused_at = None
        self._cancel_deadline()
        if self._fast is not None:
            self._phase = _Phase.HANDLING
        body.end()
        if rest:
            # The next request waits for the end of this one's answer.
            channel_hold_bytes(self, rest)

    def _body_failed(self, status: int, reason: str, message: str) -> None:
        """
        The fast-lane body cannot be completed: answer C{status} if nothing
        of the answer went out yet, else cut the connection.
        """
        if self._linger_call is not None:
            # Answered already: only the dropped rest was wrong.
            self._end_linger()
            return
        decoder_body, self._body_in = self._body_in, None
        fast = self._fast
        if status == 413:
            transport = self.transport
            limit = self.limits.max_body_bytes
            _log.info(
                "413 for {peer}: the chunked body is larger than {limit} bytes",
                peer=str(transport.getPeer()) if transport is not None else "?",
                limit=limit,
            )
            message = f"the request body is larger than {limit} bytes"
        if decoder_body is not None:
            decoder_body[1].fail(message)
        if fast is not None and fast.started:
            fast.abort()
            return
        if fast is not None:
            # Nothing of this request reaches the client but the refusal.
            self._fast = None
            fast.client_lost()
        self._refuse(status, reason, message)

    def _pause_body(self) -> None:
        """The member reads slower than the client sends: stop reading the client."""
        self._paused_at = self._clock.seconds()
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def _resume_body(self) -> None:
        if self._paused_at is not None:
            # The body deadline does not count the time the member took.
            self._started += self._clock.seconds() - self._paused_at
            self._paused_at = None
        if self.transport is not None and self._body_in is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def fast_request_started(self, response: RawResponse) -> None:
        """A fast-lane request is being answered: hold what comes next, as twisted.web does."""
        self._fast = response
        self._phase = _Phase.HANDLING
        self.persistent = response.keep_alive
        # The idle timer keeps running (no cancel and re-arm per request):
        # timeoutConnection puts it off while an answer is in flight.
        channel_hold(self)
        self.setRawMode()

    def fast_request_done(self, response: RawResponse) -> None:
        """The fast-lane response is complete: read on, or close."""
        if response is not self._fast:
            return
        self._fast = None
        lingering = self._body_in is not None
        if lingering:
            # Answered before the whole body came (the member did not read
            # it): nobody reads the rest (what comes is decoded and dropped),
            # and the connection ends after it.
            self._paused_at = None
            self._cancel_deadline()
            self._body_in[1].discard()  # type: ignore[index]
            response.keep_alive = False
        self._phase = _Phase.IDLE
        if self.transport is None:
            return
        channel_resume_reading(self)
        if response.keep_alive and self.persistent:
            data = channel_release(self)
            self.resetTimeout()
            self.setLineMode(data)
        elif lingering:
            # Closing now would answer the body still coming with a reset,
            # which may cost the client the answer it has not read yet: drop
            # the rest of the body for a while first (Apache's lingering
            # close), then close.
            self._linger_call = self._clock.callLater(LINGER_SECONDS, self._end_linger)
        else:
            self.loseConnection()

    def _end_linger(self) -> None:
        """The rest of an answered request's body came, or it took too long: close."""
        call, self._linger_call = self._linger_call, None
        if call is not None and call.active():
            call.cancel()
        self._body_in = None
        if self.transport is not None:
            self.loseConnection()

    def timeoutConnection(self) -> None:
        if self._fast is not None:
            # Answering a fast-lane request: the connection is not idle; the
            # idle time counts from the end of the answer (fast_request_done).
            # The timer that fired is spent: set a new one.
            self.setTimeout(self.timeOut)
            return
        super().timeoutConnection()

    @property
    def body_pending(self) -> bool:
        """Whether a fast-lane request body is still arriving."""
        return self._body_in is not None

    @property
    def busy(self) -> bool:
        return self.transport is not None and (bool(self.requests) or self._fast is not None)

    def close_when_idle(self) -> None:
        fast = self._fast
        if fast is None or self.transport is None:
            super().close_when_idle()
            return
        self.persistent = False
        if not fast.started:
            fast.keep_alive = False

    def connection_info(self) -> ConnectionInfo:
        """The client's and our address and the TLS details, read once per connection."""
        info = self._connection_info
        if info is None:
            info = self._connection_info = ConnectionInfo.of(self)
        return info

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

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        """
        Whether the connection stays open after C{request}'s response:
        not when any C{Connection} field value lists C{close} (Twisted reads
        only the first token of the first field); otherwise as Twisted
        decides (HTTP/1.0 and older close, C{Connection: keep-alive} or not)
        and a stopping proxy decides. A response after which the connection
        closes says C{Connection: close} (RFC 9112 9.6), for HTTP/1.0 too,
        where Twisted says nothing and a keep-alive client would wait.
        """
        if _asks_close(request.requestHeaders.getRawHeaders(b"connection")):
            persistent = False
        else:
            persistent = bool(super().checkPersistence(request, version))
        if not persistent:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        return persistent

    def allHeadersReceived(self) -> None:
        """
        The head is complete: refuse a C{Content-Length} over
        C{max_body_bytes} before twisted.web sees the head (it would make a
        spool file and answer C{Expect: 100-continue}); otherwise let it, and
        start the body deadline and, for a chunked body, the body count.
        """
        limit = self.limits.max_body_bytes
        length = self.length
        if limit and length is not None and length > limit:
            self._refuse_body(f"Content-Length {length}")
            return
        super().allHeadersReceived()
        if self.length != 0 and not self.transport.disconnecting:  # type: ignore[union-attr]
            if self.length is None and limit:
                self._count_chunked(limit)
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
        if self._paused_at is not None:
            # Paused for a slow member: the client is not the slow side.
            self._deadline_call = self._clock.callLater(
                self.limits.body_timeout, self._check_deadline
            )
            return
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
        if self._body_in is not None:
            self._body_failed(408, "Request Timeout", f"the {what} did not arrive in time")
            return
        self._refuse(408, "Request Timeout", f"the {what} did not arrive in time")

    def _cancel_deadline(self) -> None:
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    # -- body size -----------------------------------------------------------

    def _count_chunked(self, limit: int) -> None:
        """
        Count the decoded bytes of the chunked body now arriving, and refuse
        the request as soon as they pass C{limit}.

        The count sits between twisted.web's chunked decoder and the request
        (the decoder's C{dataCallback}); only requests with a chunked body pay
        for it.

        @param limit: C{max_body_bytes}, not 0.
        """
        decoder = self._transferDecoder
        if decoder is None:
            return
        deliver = decoder.dataCallback
        received = 0

        def counted(data: bytes) -> None:
            nonlocal received
            received += len(data)
            if received > limit:
                # The decoder may go on with the rest of this read: nothing
                # more of it reaches the request, and the request never ends.
                decoder.dataCallback = decoder.finishCallback = _drop
                self._refuse_body("the chunked body")
                return
            deliver(data)

        decoder.dataCallback = counted

    def _refuse_body(self, what: str) -> None:
        """
        Answer 413 to a request whose body is larger than C{max_body_bytes},
        and close; the request is never dispatched.

        @param what: what was too large, for the log.
        """
        transport = self.transport
        if transport is None or transport.disconnecting:  # type: ignore[attr-defined]
            return
        limit = self.limits.max_body_bytes
        _log.info(
            "413 for {peer}: {what} is larger than {limit} bytes",
            peer=str(transport.getPeer()),
            what=what,
            limit=limit,
        )
        self._refuse(413, "Content Too Large", f"the request body is larger than {limit} bytes")

    # -- refusing ------------------------------------------------------------

    def _refuse_too_large(self) -> None:
        if channel_expects_request_line(self):
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
        cast(ITCPTransport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        body_in, self._body_in = self._body_in, None
        if body_in is not None:
            body_in[1].fail("the client went away during the upload")
        if self._linger_call is not None:
            if self._linger_call.active():
                self._linger_call.cancel()
            self._linger_call = None
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.client_lost()
        self._cancel_deadline()
        if self._send_call is not None and self._send_call.active():
            self._send_call.cancel()
        self._send_call = None
        super().connectionLost(reason)


class _CountedChannelProtocol(_GenericHTTPChannelProtocol):
    """Twisted's HTTP/1.1-or-HTTP/2 switch, counted in its site while open."""

    _site: Any

    def makeConnection(self, transport: Any) -> None:
        self._site.open_connections += 1
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        # The first bytes settle HTTP/1.1 or HTTP/2: a TLS connection that
        # negotiated h2 is served by a LimitedH2Connection (with the limits
        # its HTTP/1.1 channel was accepted with), and made known to the
        # graceful stop. Later reads go straight to the channel that serves
        # the connection.
        channel = self._channel
        if (
            self._negotiatedProtocol is None
            and getattr(channel.transport, "negotiatedProtocol", None) == b"h2"
        ):
            # Imported here: h2 is there (the site offered h2 only then).
            from twisted_lb.http2 import LimitedH2Connection

            switch_to_http2(self, LimitedH2Connection(channel.limits, self._site.reactor))
        super().dataReceived(data)
        channel = self._channel
        if self._negotiatedProtocol == b"h2":
            connections = self._site.connections
            if connections is not None:
                connections.add_h2(channel)
        setattr(self, "dataReceived", channel.dataReceived)  # noqa: B010 (an instance attribute)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._site.open_connections -= 1
        if self._negotiatedProtocol == b"h2":
            connections = self._site.connections
            if connections is not None:
                connections.discard_h2(self._channel)
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
    The C{Site} of a listener: L{LimitedHTTPChannel}s (and, for TLS
    connections that negotiated C{h2} over ALPN,
    L{twisted_lb.http2.LimitedH2Connection}s), no tracebacks in error pages, request logging left to
    twisted_lb's access log, and at most C{limits.max_connections} open
    connections.

    @ivar limits: the limits of the connections accepted from now on (see
        L{set_limits}).
    @ivar http2: offer HTTP/2 over ALPN (on a TLS listener), when
        twisted.web can serve it.
    @ivar open_connections: client connections open now.
    """

    displayTracebacks = False
    #: No "Starting factory"/"Stopping factory" lines: the proxy logs what it listens on.
    noisy = False

    def __init__(
        self,
        resource: IResource,
        limits: LimitsConfig,
        reactor: Any = None,
        connections: ClientConnections | None = None,
        http2: bool = False,
        server_name: str | None = None,
    ) -> None:
        """
        @param server_name: the listener's C{server_name}, the host of
            requests without a C{Host} (see L{twisted_lb.routing.fallback_host}).
        """
        super().__init__(resource, timeout=limits.idle_timeout, reactor=reactor)
        self.limits = limits
        self.http2 = http2
        self.server_name: bytes | None = None
        self.set_server_name(server_name)
        self.open_connections = 0
        #: The proxy's client connections (for a graceful stop), if it tracks them.
        self.connections = connections
        #: Serves simple requests without twisted.web's Request, when the
        #: resource can (see L{twisted_lb.fastpath}); called with the channel
        #: and the L{SimpleHead}, returns whether it took the request.
        self.fast_lane = getattr(resource, "serve_fast", None)
        #: Serves requests with a body the same way, the body streamed (see
        #: L{LimitedHTTPChannel._stream_lane}); called with the channel, the
        #: L{RequestHead} and the L{StreamedBody}, returns whether it took
        #: the request (and then dispatches it when the body is prefetched).
        self.stream_lane = getattr(resource, "serve_stream", None)

    def set_server_name(self, server_name: str | None) -> None:
        """Use C{server_name} for the requests without C{Host} from now on (a reload)."""
        self.server_name = server_name.encode("idna") if server_name else None

    def set_limits(self, limits: LimitsConfig) -> None:
        """
        Use C{limits} for the connections accepted from now on (a reload).

        Connections already open keep the limits they were accepted with
        (deadlines, header sizes, idle and send timeouts); they still count
        in L{open_connections}, which the new C{max_connections} is checked
        against.
        """
        self.limits = limits
        # Twisted's HTTPFactory gives each new channel the site's timeOut.
        self.timeOut = limits.idle_timeout

    def acceptableProtocols(self) -> list[bytes]:
        """
        What a TLS listener offers over ALPN (Twisted asks the site it
        wraps): C{h2} first when L{http2} is on and twisted.web can serve it.
        """
        if self.http2 and h2_available():
            return [b"h2", b"http/1.1"]
        return [b"http/1.1"]

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
