"""
The frontend's fast lane: plain requests answered without twisted.web's
C{Request}.

Most requests a proxy sees are keep-alive GETs whose whole head arrives in
one read. For those, L{parse_simple_head} parses the head with httptools
(llhttp, strict) and L{RawResponse} writes the member's answer as raw
HTTP/1.1 to the connection, so a request costs one parse, one C{Exchange}
and one write instead of twisted.web's line-by-line parsing, C{Request},
C{Headers} and C{Site} traversal.

Only what is simple takes this lane (see L{parse_simple_head}); everything
else (bodies, upgrades, HTTP/1.0, heads that come in pieces, anything odd)
returns C{None} and takes twisted.web's path, which keeps every limit and
check it has. The lane is chosen per request, on the same connection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Protocol

import attrs
import httptools
from twisted.web.http_headers import Headers

from twisted_lb.errors import ErrorPage, plain_error_page
from twisted_lb.exchange import HOP_BY_HOP, ClientSink, connection_options
from twisted_lb.http_rules import control_in_head, host_problem
from twisted_lb.sendnow import send_now, send_parts_now


class FastLaneChannel(Protocol):
    """
    What a fast-lane answer uses of the connection it is written to (the
    frontend's channel, L{twisted_lb.frontend.LimitedHTTPChannel}): stated
    here so that this module does not import the frontend back.
    """

    #: The client's transport.
    transport: Any

    @property
    def closing(self) -> bool:
        """Whether the proxy is stopping (every answer closes its connection)."""

    @property
    def body_pending(self) -> bool:
        """Whether a request body is still arriving from the client."""

    def fast_request_done(self, response: RawResponse) -> None:
        """The answer is complete: read on, or close."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        """Stream a member's answer with backpressure."""

    def unregisterProducer(self) -> None:  # noqa: N802
        """The member's answer is over."""

__all__ = [
    "FastLaneChannel",
    "RequestHead",
    "SimpleHead",
    "parse_head",
    "parse_simple_head",
    "RawResponse",
    "FastRequest",
]

#: Methods the fast lane serves: no request body, safe to retry.
FAST_METHODS = frozenset({b"GET", b"HEAD"})
#: Request headers that frame a body or change how the head is answered.
_FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
_TRANSFER_ENCODING = b"transfer-encoding"
_EXPECT = b"expect"
_HOST = b"host"
_CONNECTION = b"connection"

_NO_BODY_CODES = frozenset({204, 304})
_CONTENT_LENGTH = b"content-length"
_DATE = b"date"


def _status_line(code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        phrase = b"Unknown Status"
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


#: Status lines, built once.
_STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


class _DateHeader:
    """A C{Date:} header line, formatted at most once a second."""

    __slots__ = ("_second", "_line")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)
            ).encode("ascii") + b"\r\n"
        return self._line


date_header = _DateHeader()


@attrs.frozen
class RequestHead:
    """
    A request head the fast lane serves.

    @ivar method: the request method.
    @ivar uri: the request target as sent (origin form is checked later).
    @ivar headers: C{(lower-case name, value)} pairs in the client's order.
    @ivar keep_alive: whether the client lets the connection stay open.
    @ivar length: the body's C{Content-Length}, or C{None} (no body, or a
        chunked one).
    @ivar chunked: whether the body comes with C{Transfer-Encoding: chunked}.
    @ivar expect_continue: whether the client waits for C{100 Continue}.
    """

    method: bytes
    uri: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    length: int | None = None
    chunked: bool = False
    expect_continue: bool = False

    @property
    def has_body(self) -> bool:
        """Whether a body follows the head (framed by a length or chunks)."""
        return self.chunked or self.length is not None


#: The name the fast lane's GET/HEAD heads had first.
SimpleHead = RequestHead


class _Collector:
    """httptools callbacks: collect the URL and the headers."""

    __slots__ = ("url", "headers", "complete", "head_done")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.head_done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_message_complete(self) -> None:
        self.complete = True


def parse_simple_head(data: bytes, max_headers: int) -> RequestHead | None:
    """
    Parse C{data} when it is exactly one simple request head.

    Simple means: the whole head and nothing else (it ends with the empty
    line), HTTP/1.1, C{GET} or C{HEAD}, exactly one valid C{Host}, no
    C{Content-Length}, C{Transfer-Encoding}, C{Upgrade} or C{Expect}, no
    control characters, at most C{max_headers} fields, and valid for llhttp.

    @return: the head, or C{None} when twisted.web's path must serve it
        (which answers whatever is wrong with it).
    """
    if data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    head = parse_head(data, max_headers)
    if head is None or head.method not in FAST_METHODS or head.has_body or head.expect_continue:
        return None
    return head


def parse_head(data: bytes, max_headers: int) -> RequestHead | None:
    """
    Parse C{data}, one whole request head (up to and with its empty line),
    for the fast lane: HTTP/1.1, exactly one valid C{Host}, no C{Upgrade},
    no control characters, at most C{max_headers} fields, valid for llhttp,
    a body framed by one C{Content-Length} or by C{Transfer-Encoding:
    chunked} alone, C{Expect} only C{100-continue}, not C{CONNECT}.

    @return: the head, or C{None} when twisted.web's path must serve it
        (which answers whatever is wrong with it).
    """
    if control_in_head(data):
        return None
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(data)
    except Exception:  # HttpParserError, HttpParserUpgrade, HttpParserInvalidMethodError ...
        return None
    if not collector.head_done or parser.get_http_version() != "1.1":
        return None
    method = parser.get_method()
    if method == b"CONNECT":
        return None
    headers = collector.headers
    if len(headers) > max_headers:
        return None
    hosts: list[bytes] = []
    keep_alive = True
    length: int | None = None
    chunked = expect = False
    for name, value in headers:
        if name in _FRAMING_HEADERS:
            if name == _CONTENT_LENGTH:
                if length is not None or not value.isdigit() or len(value) > 18:
                    return None
                length = int(value)
            elif name == _TRANSFER_ENCODING:
                if chunked or value.strip(b" \t").lower() != b"chunked":
                    return None
                chunked = True
            elif name == _EXPECT:
                if expect or value.strip(b" \t").lower() != b"100-continue":
                    return None
                expect = True
            else:  # upgrade
                return None
        elif name == _HOST:
            hosts.append(value)
        elif name == _CONNECTION and b"close" in connection_options((value,)):
            keep_alive = False
    if host_problem(hosts, True) is not None or (chunked and length is not None):
        return None
    if not chunked and length is None and collector.complete is False:
        return None
    return RequestHead(method, collector.url, headers, keep_alive, length, chunked, expect)


class FastRequest:
    """
    What the access log and the request hooks read of a fast-lane request
    (the attributes of twisted.web's C{Request} they use).
    """

    __slots__ = ("method", "uri", "clientproto", "code", "_headers", "_raw", "_client")

    def __init__(self, head: SimpleHead, client: Any) -> None:
        self.method = head.method
        self.uri = head.uri
        self.clientproto = b"HTTP/1.1"
        self.code = 200
        self._raw = head.headers
        self._headers: Headers | None = None
        self._client = client

    def getClientAddress(self) -> Any:  # noqa: N802 (twisted.web's name)
        return self._client

    @property
    def requestHeaders(self) -> Headers:  # noqa: N802 (twisted.web's name)
        if self._headers is None:
            headers = Headers()
            for name, value in self._raw:
                headers.addRawHeader(name, value)
            self._headers = headers
        return self._headers


_KEEP, _DROP, _LENGTH, _DATE_KIND, _CONNECTION_KIND = "keep", "drop", "length", "date", "connection"
#: What to do with each response header name seen (as sent): built as names
#: come, bounded so that a member inventing names cannot grow it forever.
_NAME_KINDS: dict[bytes, str] = {}
#: Connection options that need no second pass: hop-by-hop fields dropped
#: anyway, and C{close} (not a field).
_DROPPED_ANYWAY = HOP_BY_HOP | {b"close"}
_NAME_KINDS_MAX = 512


def _classify(name: bytes) -> str:
    lower = name.lower()
    if lower == _CONNECTION:
        kind = _CONNECTION_KIND
    elif lower in HOP_BY_HOP:
        kind = _DROP
    elif lower == _CONTENT_LENGTH:
        kind = _LENGTH
    elif lower == _DATE:
        kind = _DATE_KIND
    else:
        kind = _KEEP
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[name] = kind
    return kind


def _one_line(text: bytes) -> bytes:
    """C{text} with CR, LF and CRLF replaced by spaces (as twisted.web sanitizes headers)."""
    return text.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")


class RawResponse(ClientSink):
    """
    A L{twisted_lb.exchange.ResponseSink} writing HTTP/1.1 straight to a
    L{FastLaneChannel}'s transport: the member's headers less hop-by-hop
    ones, C{Date} when the member sent none, chunked framing when it sent no
    C{Content-Length}, C{Connection: close} when the connection ends after.

    The head is held until the first body bytes or the end, so a small answer
    is one write.
    """

    __slots__ = (
        "_channel", "_head_only", "request", "keep_alive", "_pending", "_chunked", "_bodiless",
        "finished",
    )

    def __init__(
        self, channel: FastLaneChannel, request: FastRequest, keep_alive: bool
    ) -> None:
        super().__init__()
        self._channel = channel
        self.request = request
        self._head_only = request.method == b"HEAD"
        #: Whether the connection stays open after this response.
        self.keep_alive = keep_alive
        self.finished = False
        self._pending: bytes | None = None
        self._chunked = False
        self._bodiless = False

    def client_lost(self, reason: Any = None) -> None:
        if not self.finished:
            super().client_lost(reason)

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        if self.header_edit is not None:
            headers = self.header_edit(headers, False)
        self._start(status, headers)

    def _start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self._started()
        self.request.code = status
        head, lines = self._head(status, headers)
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            # A line break inside a name or value (rare; found by two scans
            # in C instead of two per header). As twisted.web does: it never
            # reaches the client.
            head, _ = self._head(status, [(_one_line(n), _one_line(v)) for n, v in headers])
        self._pending = head

    def _head(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, int]:
        """
        The response head (member headers less hop-by-hop, and our own) and
        how many lines it has when no name or value holds a line break.
        """
        line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown Status\r\n" % status
        parts = [line]
        has_length = has_date = False
        kept = 0
        kinds = _NAME_KINDS
        connection: list[bytes] | None = None
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _classify(name)
            if kind is not _KEEP:
                if kind is _DROP:
                    continue
                if kind is _CONNECTION_KIND:
                    connection = [*(connection or ()), value]
                    continue
                if kind is _LENGTH:
                    has_length = True
                else:
                    has_date = True
            parts += (name, b": ", value, b"\r\n")
            kept += 1
        if not has_date:
            parts.append(date_header())
        self._bodiless = self._head_only or status in _NO_BODY_CODES or status < 200
        if not has_length and not self._bodiless:
            self._chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if not self.keep_alive or self._channel.closing or self._channel.body_pending:
            # A request body still arriving is never read to its end: the
            # connection ends with this answer.
            self.keep_alive = False
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if connection is not None:
            listed = connection_options(connection) - _DROPPED_ANYWAY
            if listed:
                # Fields the member's Connection names are for its hop only
                # (rare): the head again without them (and without Connection).
                return self._head(
                    status,
                    [(n, v) for n, v in headers if (low := n.lower()) not in listed and low != _CONNECTION],
                )
        # Each kept member header is four parts making one line; every other
        # part is one line.
        return b"".join(parts), len(parts) - 3 * kept

    def write(self, data: bytes) -> None:
        if data:
            self.write_parts([data])

    def write_parts(self, parts: list[bytes | memoryview]) -> None:
        """
        Write the concatenation of C{parts} (e.g. views of a member's read)
        in one C{sendmsg}, without joining them first; the held head goes
        with the first body bytes.
        """
        if self._gone or self._bodiless:
            return
        size = sum(len(p) for p in parts)
        if not size:
            return
        self.bytes_written += size
        out: list[bytes | memoryview] = []
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None
        if self._chunked:
            out.append(b"%x\r\n" % size)
            out += parts
            out.append(b"\r\n")
        else:
            out += parts
        send_parts_now(self._channel.transport, out)

    def finish(self) -> None:
        self._on_gone = None
        if self._gone or self.finished:
            return
        self.finished = True
        out = []
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None
        if self._chunked:
            out.append(b"0\r\n\r\n")
        if out:
            send_now(self._channel.transport, b"".join(out))
        self._channel.fast_request_done(self)

    def error(self, status: int, message: str, page: ErrorPage | None = None) -> None:
        """
        Answer an error page (nothing of the member's was sent): C{page}, or
        a plain-text one saying C{message}; with the route's C{Header always}
        edits, if any.
        """
        content_type, body = page if page is not None else plain_error_page(status, message)
        headers = [
            (b"Content-Type", content_type),
            (b"Content-Length", b"%d" % len(body)),
        ]
        if self.header_edit is not None:
            headers = self.header_edit(headers, True)
        self._start(status, headers)
        self.write(body)
        self.finish()

    def _register(self, producer: object) -> None:
        self._channel.registerProducer(producer, True)

    def _unregister(self) -> None:
        self._channel.unregisterProducer()

    def _abort_transport(self) -> None:
        if self._channel.transport is not None:
            self._channel.transport.abortConnection()  # type: ignore[attr-defined]
