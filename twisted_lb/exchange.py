"""
The request as a member sees it, and the sink a member's answer is written to.

L{Exchange} is built once per client request by the proxy resource; backends
(AJP, HTTP) read it and write the response to a L{ResponseSink}. Nothing here
knows about sockets or members.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
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
    "field_problem",
    "member_path",
    "response_head_problem",
    "request_protocol",
    "wants_websocket",
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


#: What no field name or value of a member's response may hold: NUL, CR and
#: LF (RFC 9110 5.5, RFC 9112 2.2). Passed on, CR and LF would split the
#: client's response head (response splitting).
_BAD_FIELD_BYTE = re.compile(rb"[\x00\r\n]")
_BYTE_NAMES = {0: "NUL", 13: "CR", 10: "LF"}


def response_head_problem(status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """
    What makes a member's response head unfit to pass on, in words, or
    C{None} when it is fit.

    The one rule every backend applies before a response starts: the status
    must be a three-digit code from 100 to 599 (RFC 9110 15), and no field
    name or value may hold NUL, CR or LF. A head that breaks it is the
    member's protocol error (a 502, its connection closed), never sent to a
    client, whichever lane the client came on.

    @param status: the member's status code.
    @param headers: the member's fields, C{(name, value)} as received.
    """
    if not 100 <= status <= 599:
        return f"status {status} is outside 100-599"
    # One scan of every name and value together; the culprit only when found.
    if _BAD_FIELD_BYTE.search(b"".join(chain.from_iterable(headers))) is None:
        return None
    for name, value in headers:
        problem = field_problem(name, value)
        if problem is not None:
            return problem
    return None  # unreachable: the joined scan found a byte in one of them


def field_problem(name: bytes, value: bytes) -> str | None:
    """
    What makes one field of a member's response unfit to pass on (NUL, CR
    or LF in its name or value), in words, or C{None}: the field part of
    L{response_head_problem}, for a backend that sees fields one by one.
    """
    for part, what in ((name, "name"), (value, "value")):
        found = _BAD_FIELD_BYTE.search(part)
        if found is not None:
            byte = _BYTE_NAMES[found.group()[0]]
            return f"header {what} {name[:64]!r} holds {byte}"
    return None


def wants_websocket(method: bytes, upgrade: Sequence[bytes] | None) -> bool:
    """
    Whether a request asks for a WebSocket: a C{GET} whose C{Upgrade} field
    values list C{websocket} (RFC 6455 4.1). A route that cannot carry one
    serves the request as a plain one instead (RFC 9110 7.8 lets a server
    ignore C{Upgrade}).

    @param upgrade: the request's C{Upgrade} field values, or C{None}.
    """
    return method == b"GET" and upgrade is not None and any(
        token.strip().lower() == b"websocket" for value in upgrade for token in value.split(b",")
    )


#: The client's protocol as a member is told it (AJP's C{protocol} field):
#: twisted.web calls HTTP/2 C{HTTP/2}, Apache (and so Tomcat's apps behind
#: mod_proxy_ajp) C{HTTP/2.0}.
_PROTOCOLS = {b"HTTP/1.0": b"HTTP/1.0", b"HTTP/1.1": b"HTTP/1.1", b"HTTP/2": b"HTTP/2.0"}


def request_protocol(clientproto: bytes) -> bytes:
    """
    The protocol a member is told the client spoke (AJP's C{protocol}
    field, Tomcat's C{getProtocol()}), as C{mod_proxy_ajp} sends Apache's
    C{r->protocol}: C{HTTP/1.0}, C{HTTP/1.1} or C{HTTP/2.0}.

    @param clientproto: the request's version as twisted.web read it.
    """
    return _PROTOCOLS.get(clientproto, b"HTTP/1.1")


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
    @ivar host: the client's Host header; for a request without one
        (HTTP/1.0), the listener's C{server_name} or address
        (L{twisted_lb.routing.fallback_host}), never empty.
    @ivar protocol: the client's protocol (see L{request_protocol}).
    @ivar client_address: the client's IP address.
    @ivar client_port: the client's port.
    @ivar local_address: the address the client connected to.
    @ivar local_port: the port the client connected to.
    @ivar is_ssl: whether the client came over TLS.
    @ivar ssl_protocol: the TLS version of the client connection, if any.
    @ivar ssl_cipher: the cipher of the client connection, if any.
    @ivar ssl_key_size: the cipher's secret bits, if known.
    @ivar ssl_session: the TLS session id (upper-case hex), if there is one.
    @ivar ssl_cert: the client's certificate chain (PEM, its own first), if
        it presented one.
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
    ssl_key_size: int | None = None
    ssl_session: bytes | None = None
    ssl_cert: bytes | None = None
    session_routes: Sequence[str] = ()
    public_prefix: bytes = b""
    target_path: bytes | None = None
    preserve_host: bool = False
    rewriting: RouteRewriting | None = None
    timeout: float | None = None
    protocol: bytes = b"HTTP/1.1"

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

    @property
    def gone(self) -> bool:
        """Whether the client disconnected (nobody is left to answer)."""

    @property
    def bytes_written(self) -> int:
        """The body bytes written so far."""

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

    __slots__ = (
        "started", "started_at", "bytes_written", "_gone", "_on_gone", "_producer", "header_edit"
    )

    def __init__(self) -> None:
        #: Edits the response head before it is written: called with the
        #: headers and whether this is the proxy's own error response; set
        #: per request by the resource when the route has header edits.
        self.header_edit: (
            Callable[[Sequence[tuple[bytes, bytes]], bool], list[tuple[bytes, bytes]]] | None
        ) = None
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
