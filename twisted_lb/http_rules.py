"""
HTTP rules every client lane applies, as pure functions: the fast lane
(L{twisted_lb.fastpath}, with its streamed bodies), twisted.web's C{Request}
(L{twisted_lb.resource}) and the frontend's refusals before a request is
parsed (L{twisted_lb.frontend}); and the forwarding fields every kind of
member gets (L{forwarding_headers}: HTTP requests and WebSocket upgrades).

The other rule homes: L{twisted_lb.routing} (paths, queries, Host syntax),
L{twisted_lb.exchange} (hop-by-hop fields, C{Connection} options),
L{twisted_lb.errors} (the status of a failed attempt).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from http import HTTPStatus

from twisted_lb.exchange import HOP_BY_HOP, Exchange, connection_options
from twisted_lb.routing import valid_host

__all__ = [
    "CONTROL_BYTES",
    "FORWARDING_FIELDS",
    "control_in_head",
    "control_in_value",
    "error_body",
    "forwarding_headers",
    "host_problem",
    "refusal",
    "response_fields",
]

#: The control characters no request head may hold (RFC 9110 5.5): all but
#: HTAB; CR and LF only as the line ends of a head.
CONTROL_BYTES = frozenset(range(0x20)) - {0x09} | {0x7F}


def _class(codes: Iterable[int]) -> re.Pattern[bytes]:
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(codes)) + b"]")


_IN_VALUE = _class(CONTROL_BYTES)
_IN_HEAD = _class(CONTROL_BYTES - {0x0D, 0x0A})
_CONNECTION = b"connection"


def control_in_value(value: bytes) -> bool:
    """Whether a field value holds a control character (CR and LF included)."""
    return _IN_VALUE.search(value) is not None


def control_in_head(head: bytes) -> bool:
    """
    Whether a whole request head holds a control character other than the
    CR and LF of its line ends (a bare CR or LF is left to the parser, which
    refuses it).
    """
    return _IN_HEAD.search(head) is not None


def host_problem(hosts: Sequence[bytes], http11: bool) -> str | None:
    """
    Why the C{Host} fields of a request are not acceptable, or C{None}: an
    HTTP/1.1 request needs exactly one (RFC 9112 3.2), and it must be a host
    name or address with an optional port (L{valid_host}).

    @param hosts: the request's C{Host} field values, as sent.
    @param http11: whether the request is HTTP/1.1 (HTTP/1.0 may have none).
    """
    if len(hosts) > 1 or (not hosts and http11):
        return "an HTTP/1.1 request needs exactly one Host header"
    if hosts and not valid_host(hosts[0].strip(b" \t")):
        return "the Host header is not a host name or address with an optional port"
    return None


def response_fields(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """
    A member's response fields as a client gets them: without the hop-by-hop
    fields and without those its C{Connection} fields name (RFC 9110 7.6.1).
    """
    connection = [value for name, value in headers if name.lower() == _CONNECTION]
    dropped = HOP_BY_HOP | connection_options(connection) if connection else HOP_BY_HOP
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def error_body(status: int, message: str) -> bytes:
    """The body of the proxy's own plain-text error page for C{status}."""
    return f"{status} {HTTPStatus(status).phrase}\n{message}\n".encode()


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


_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"
_XFH = b"x-forwarded-host"
_HTTPS, _HTTP = b"https", b"http"

#: The request fields the proxy builds itself when it adds forwarding
#: fields (L{forwarding_headers}): a client's own are not passed on
#: (its C{X-Forwarded-For} values are carried into the proxy's).
FORWARDING_FIELDS = frozenset({_XFF, _XFP, _XFH})


def forwarding_headers(
    exchange: Exchange, forwarded_for: Sequence[bytes] = ()
) -> list[tuple[bytes, bytes]]:
    """
    The forwarding fields a member gets with C{exchange}, for every kind of
    member (HTTP requests and WebSocket upgrades alike): C{X-Forwarded-For},
    the chain the client came through followed by the client's address (as
    Apache's C{ProxyAddHeaders On} appends it); C{X-Forwarded-Proto}, the
    scheme the client used; C{X-Forwarded-Host}, the client's Host. The
    caller leaves the client's own fields of these names
    (L{FORWARDING_FIELDS}) out.

    @param forwarded_for: the client's own C{X-Forwarded-For} values, in
        order.
    @return: C{(name, value)} pairs, names in lower case.
    """
    fields: list[tuple[bytes, bytes]] = []
    chain = list(forwarded_for)
    if exchange.client_address:
        chain.append(exchange.client_address.encode("ascii"))
    if chain:
        fields.append((_XFF, b", ".join(chain)))
    fields.append((_XFP, _HTTPS if exchange.is_ssl else _HTTP))
    if exchange.host:
        fields.append((_XFH, exchange.host))
    return fields
