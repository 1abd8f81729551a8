"""
The request as a member sees it, and the sink a member's answer is written to.

L{Exchange} is built once per client request by the proxy resource; backends
(AJP, HTTP) read it and write the response to a L{ResponseSink}. Nothing here
knows about sockets or members.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, Protocol

import attrs

from twisted_lb.request_body import StreamedBody
from twisted_lb.rewrite import RouteRewriting

__all__ = [
    "HOP_BY_HOP",
    "ClientSink",
    "Exchange",
    "ResponseSink",
    "IDEMPOTENT_METHODS",
    "connection_options",
    "member_path",
]

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1):
#: never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)


def connection_options(values: Iterable[bytes]) -> frozenset[bytes]:
    """
    The header names a message's C{Connection} field values list (in lower
    case): fields for this hop only, which a proxy removes (RFC 9110 7.6.1).
    """
    return frozenset(
        token for value in values for token in (t.strip().lower() for t in value.split(b",")) if token
    )

#: Methods that may be sent again when no response byte came back (RFC 9110).
IDEMPOTENT_METHODS = frozenset(
    {b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE", b"PROPFIND"}
)


def member_path(prefix: bytes, path: bytes) -> bytes:
    """
    The path a member is sent: its own path, then the exchange's.

    The router lets a path parameter follow a route's prefix (C{/app;x=1}
    matches C{/app}), so an exchange's path may start with C{;}; with a
    member URL without a path, that would end up right after the member's
    host and port. A C{/} is put in front of whatever does not start with one.

    @param prefix: the member URL's path, C{b""} or starting with C{/}.
    @param path: the exchange's path (L{Exchange.path}).
    """
    joined = prefix + path
    return joined if joined.startswith(b"/") else b"/" + joined


@attrs.frozen
class Exchange:
    """
    One client request, ready to be sent to a member.

    @ivar method: the request method, e.g. C{b"GET"}.
    @ivar path: the path below the member's own path, still %-encoded, with
        path parameters, without the query.
    @ivar query: the query string without C{?}, or C{None}.
    @ivar headers: end-to-end request headers (hop-by-hop ones removed),
        names in lower case, in the client's order.
    @ivar host: the client's Host header.
    @ivar client_address: the client's IP address.
    @ivar client_port: the client's port.
    @ivar local_address: the address the client connected to.
    @ivar local_port: the port the client connected to.
    @ivar is_ssl: whether the client came over TLS.
    @ivar ssl_protocol: the TLS version of the client connection, if any.
    @ivar ssl_cipher: the cipher of the client connection, if any.
    @ivar body: the request body (seekable), or C{None} for none.
    @ivar body_length: the body's length in bytes; -1 for a streamed body of
        unknown length (chunked).
    @ivar body_stream: the request body when it is streamed from the client
        as it arrives (then L{body} is C{None}): read once, never replayed.
    @ivar session_routes: candidate sticky routes found in the request.
    @ivar preserve_host: send the client's Host to HTTP members.
    @ivar public_prefix: the route's public path prefix (for rewriting answers).
    @ivar target_path: the route's target path, the start of C{path}; C{None}
        when unknown (the route default is assumed).
    @ivar rewriting: the route's part in rewriting the answer's headers
        (built once per route), or C{None} for the route defaults.
    @ivar timeout: the route's answer timeout, instead of the member's; for
        a WebSocket also its idle timeout.
    """

    method: bytes
    path: bytes
    query: bytes | None
    headers: Sequence[tuple[bytes, bytes]]
    host: bytes
    client_address: str
    client_port: int
    local_address: str
    local_port: int
    is_ssl: bool
    body: IO[bytes] | None = None
    body_length: int = 0
    body_stream: StreamedBody | None = None
    ssl_protocol: bytes | None = None
    ssl_cipher: bytes | None = None
    session_routes: Sequence[str] = ()
    public_prefix: bytes = b""
    target_path: bytes | None = None
    preserve_host: bool = False
    rewriting: RouteRewriting | None = None
    timeout: float | None = None

    @property
    def retryable(self) -> bool:
        """Whether the request may be replayed after it may have reached a member."""
        return self.method in IDEMPOTENT_METHODS and self.body_length == 0

    @property
    def body_sent(self) -> bool:
        """Whether bytes of a streamed body went to a member (it cannot be sent again)."""
        stream = self.body_stream
        return stream is not None and stream.sent > 0

    @property
    def body_bytes(self) -> int:
        """The body bytes sent to the member (for a streamed body: so far)."""
        stream = self.body_stream
        return self.body_length if stream is None else stream.sent


class ResponseSink(Protocol):
    """Where a backend writes the member's response."""

    @property
    def started(self) -> bool:
        """Whether the status line was written."""

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """Begin the response with a status and headers (names as sent)."""

    def write(self, data: bytes) -> None:
        """Write body bytes."""

    def finish(self) -> None:
        """The response is complete."""

    def register_producer(self, producer: object) -> None:
        """Let the client side pause C{producer} (an C{IPushProducer}) when it is slow."""

    def unregister_producer(self) -> None:
        """Stop pausing the producer given to L{register_producer}."""

    def on_client_gone(self, callback: Callable[[], object]) -> None:
        """Call C{callback()} once if the client disconnects before L{finish}."""


class ClientSink:
    """
    The bookkeeping every L{ResponseSink} towards a client shares: whether
    the response started and when, the bytes written, the client leaving,
    and the member connection registered as the client side's producer.

    Subclasses write the response and implement L{_register},
    L{_unregister} and L{_abort_transport}.
    """

    __slots__ = ("started", "started_at", "bytes_written", "_gone", "_on_gone", "_producer")

    def __init__(self) -> None:
        self.started = False
        #: C{time.monotonic()} when the member's response began, or C{None}.
        self.started_at: float | None = None
        self.bytes_written = 0
        self._gone = False
        self._on_gone: Callable[[], object] | None = None
        self._producer: object | None = None

    def _started(self) -> None:
        self.started = True
        self.started_at = time.monotonic()

    @property
    def gone(self) -> bool:
        """Whether the client disconnected."""
        return self._gone

    def client_lost(self, reason: Any = None) -> None:
        """The client's connection closed before the end of the response."""
        if self._gone:
            return
        self._gone = True
        self._producer = None
        callback, self._on_gone = self._on_gone, None
        if callback is not None:
            callback()

    def on_client_gone(self, callback: Callable[[], object]) -> None:
        if self._gone:
            callback()
        else:
            self._on_gone = callback

    def register_producer(self, producer: object) -> None:
        if not self._gone and self._producer is None:
            self._producer = producer
            self._register(producer)

    def unregister_producer(self) -> None:
        if self._producer is not None:
            self._producer = None
            if not self._gone:
                self._unregister()

    def abort(self) -> None:
        """Cut the client connection: the response cannot be completed."""
        self.unregister_producer()
        self._on_gone = None
        if not self._gone:
            self._abort_transport()

    def _register(self, producer: object) -> None:
        raise NotImplementedError

    def _unregister(self) -> None:
        raise NotImplementedError

    def _abort_transport(self) -> None:
        raise NotImplementedError
