"""
AJP/1.3 events: one immutable value per message.

Events carry raw C{bytes}; AJP declares no charset.  They are plain values:
the codec checks them when they are sent (L{AJPConnection.send}), not when
they are built, so decoding stays cheap.  Events are not meant to be
subclassed.
"""

from __future__ import annotations

import attrs

__all__ = [
    "CPing",
    "CPong",
    "ConnectionClosed",
    "EndResponse",
    "Event",
    "ForwardRequest",
    "GetBodyChunk",
    "Ping",
    "RequestBody",
    "SendBodyChunk",
    "SendHeaders",
    "Shutdown",
]

#: Header or attribute pairs, in order, repeats allowed.
Pairs = tuple[tuple[bytes, bytes], ...]


@attrs.frozen(slots=True)
class ForwardRequest:
    """
    FORWARD_REQUEST (type 2, proxy to container): the request line, the
    headers and the attributes of one request.

    @ivar method: the method name, e.g. C{b"GET"} or C{b"PATCH"}; methods
        outside AJP's table travel as attribute 0x0D.
    @ivar req_uri: the path, still %-encoded, without the query.
    @ivar protocol: e.g. C{b"HTTP/1.1"}.
    @ivar remote_addr: the client's IP address.
    @ivar remote_host: the client's host name, or C{None} (null string).
    @ivar server_name: used by Tomcat only when there is no Host header.
    @ivar server_port: used by Tomcat only when there is no Host header.
    @ivar is_ssl: whether the client connection is HTTPS.
    @ivar headers: C{(name, value)} pairs.  Decoded coded names are lower
        case (C{b"content-length"}); string names are as sent.
    @ivar query_string: attribute 0x05, without the C{?}.
    @ivar route: attribute 0x06 (the sticky route; ignored by Tomcat).
    @ivar secret: attribute 0x0C, the connector's shared secret.
    @ivar remote_user: attribute 0x03.
    @ivar auth_type: attribute 0x04.
    @ivar ssl_cert: attribute 0x07, PEM text.
    @ivar ssl_cipher: attribute 0x08.
    @ivar ssl_session: attribute 0x09.
    @ivar ssl_key_size: attribute 0x0B, an integer.
    @ivar request_attributes: attribute 0x0A C{(name, value)} pairs, e.g.
        C{(b"AJP_REMOTE_PORT", b"51514")}.  Never put client-controlled names
        here (Ghostcat, CVE-2020-1938).
    """

    method: bytes
    req_uri: bytes
    protocol: bytes = b"HTTP/1.1"
    remote_addr: bytes = b""
    remote_host: bytes | None = None
    server_name: bytes = b""
    server_port: int = 80
    is_ssl: bool = False
    headers: Pairs = ()
    query_string: bytes | None = None
    route: bytes | None = None
    secret: bytes | None = None
    remote_user: bytes | None = None
    auth_type: bytes | None = None
    ssl_cert: bytes | None = None
    ssl_cipher: bytes | None = None
    ssl_session: bytes | None = None
    ssl_key_size: int | None = None
    request_attributes: Pairs = ()

    def header(self, name: bytes) -> bytes | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        lower = name.lower()
        for n, v in self.headers:
            if n.lower() == lower:
                return v
        return None


@attrs.frozen(slots=True)
class RequestBody:
    """
    A request body packet (proxy to container): it has no type byte.  The
    empty one (C{12 34 00 00}) ends the body.

    @ivar data: at most C{packet_size - 6} bytes.
    """

    data: bytes


@attrs.frozen(slots=True)
class SendHeaders:
    """
    SEND_HEADERS (type 4, container to proxy): the response status line and
    headers.

    @ivar status: the HTTP status code.
    @ivar reason: the reason as sent; Tomcat sends the number (C{b"200"}),
        see L{twisted_lb.ajp.reason_phrase}.
    @ivar headers: C{(name, value)} pairs in order, repeats kept.  Decoded
        coded names use Tomcat's spelling (C{b"Content-Type"}).
    """

    status: int
    reason: bytes
    headers: Pairs


@attrs.frozen(slots=True)
class SendBodyChunk:
    """
    SEND_BODY_CHUNK (type 3, container to proxy): response body bytes.

    @ivar data: the bytes; empty means "flush to the client now". A
        received chunk's data may be a C{memoryview} of the received bytes
        (read-only; C{bytes(data)} copies it).
    """

    data: bytes | memoryview


@attrs.frozen(slots=True)
class GetBodyChunk:
    """
    GET_BODY_CHUNK (type 6, container to proxy): the container asks for the
    next request body packet.

    @ivar length: the requested length, as sent (not clamped).
    """

    length: int


@attrs.frozen(slots=True)
class EndResponse:
    """
    END_RESPONSE (type 5, container to proxy): the exchange is over.

    @ivar reuse: whether the container keeps the connection open.
    """

    reuse: bool


@attrs.frozen(slots=True)
class CPing:
    """
    CPING (type 10, proxy to container): a liveness probe.
    """


@attrs.frozen(slots=True)
class CPong:
    """
    CPONG_REPLY (type 9, container to proxy): the answer to L{CPing}.
    """


@attrs.frozen(slots=True)
class Shutdown:
    """
    SHUTDOWN (type 7, proxy to container): defined by the protocol, unused by
    Tomcat; the connection cannot be reused afterwards.
    """


@attrs.frozen(slots=True)
class Ping:
    """
    PING (type 8, proxy to container): defined by the protocol, unused by
    Tomcat (which closes the connection); not reusable afterwards.
    """


@attrs.frozen(slots=True)
class ConnectionClosed:
    """
    The peer closed the connection at a message boundary outside an exchange.
    """


#: Any event L{twisted_lb.ajp.AJPConnection} can send or return.
Event = (
    ForwardRequest
    | RequestBody
    | SendHeaders
    | SendBodyChunk
    | GetBodyChunk
    | EndResponse
    | CPing
    | CPong
    | Shutdown
    | Ping
    | ConnectionClosed
)
