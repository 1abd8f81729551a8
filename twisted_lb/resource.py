"""
The proxy resource: the one place that turns a client request into an
upstream exchange and an outcome into a client response.

It knows HTTP, not members: it maps the path, refuses what must not be
forwarded, builds an L{Exchange}, hands it to the target's dispatcher, and
writes whatever comes back. Failures become 502/503/504 through
L{twisted_lb.errors.status_for} and nowhere else.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_lb.access import AccessRules
from twisted_lb.balancer import StickyConfig, find_session_routes
from twisted_lb.basic_auth import AuthRules
from twisted_lb.compat import h2_connection_of
from twisted_lb.config.model import RouteConfig
from twisted_lb.dispatch import AttemptRecord, Dispatcher
from twisted_lb.errors import (
    AttemptFailed,
    ErrorPage,
    NoUsableMember,
    RequestRefused,
    plain_error_page,
    status_for,
)
from twisted_lb.exchange import (
    HOP_BY_HOP,
    ClientSink,
    Exchange,
    connection_options,
    request_protocol,
    wants_websocket,
)
from twisted_lb.fastpath import FastRequest, RawResponse, RequestHead
from twisted_lb.frontend import ConnectionInfo
from twisted_lb.header_edits import HeaderEdits, balancer_variables, connection_variables
from twisted_lb.http_rules import control_in_value, host_problem, response_fields
from twisted_lb.request_body import StreamedBody
from twisted_lb.request_rules import RuleRequest
from twisted_lb.rewrite import RouteRewriting
from twisted_lb.routing import (
    ENCODED_SLASH,
    Match,
    Router,
    absolute_target,
    fallback_host,
    unsafe_path,
    unsafe_query,
)

if TYPE_CHECKING:
    from twisted_lb.frontend import LimitedHTTPChannel
    from twisted_lb.websocket import WebSocketBridge

__all__ = ["ProxyTarget", "ProxyResource", "RedirectResource", "RequestSink"]

_log = Logger()

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_COOKIE = b"cookie"
_CONNECTION = b"connection"
_CONTENT_LENGTH = b"content-length"
_HOST = b"host"


@attrs.frozen
class ProxyTarget:
    """
    What a path prefix maps to.

    @ivar dispatcher: sends exchanges to the balancer's members.
    @ivar target_path: the path put before the rest of the request path.
    @ivar sticky: where session ids are looked for, or C{None}.
    @ivar websocket: the WebSocket bridge when the balancer's members are
        C{ws(s)://} members: only upgrades are served then.
    @ivar preserve_host: send the client's Host to HTTP and WebSocket members.
    @ivar timeout: the route's answer (and WebSocket idle) timeout, or
        C{None} for the members' own.
    @ivar rewriting: the route's part in rewriting answers (cookie rules).
    @ivar allow_trace: pass C{TRACE} on; when C{False} it is answered 405
        (Apache's C{TraceEnable off}).
    @ivar header_edits: the route's request and response header edits, or
        C{None}.
    @ivar access: who may use the route, or C{None} for everyone.
    @ivar auth: who must log in, or C{None} for nobody.
    @ivar encoded_slashes: accept C{%2F} in paths (passed on as written).
    """

    dispatcher: Dispatcher
    target_path: bytes = b""
    preserve_host: bool = False
    sticky: StickyConfig | None = None
    websocket: WebSocketBridge | None = None
    timeout: float | None = None
    rewriting: RouteRewriting | None = None
    allow_trace: bool = True
    header_edits: HeaderEdits | None = None
    access: AccessRules | None = None
    auth: AuthRules | None = None
    encoded_slashes: bool = False

    @classmethod
    def for_route(
        cls,
        route: RouteConfig,
        dispatcher: Dispatcher,
        *,
        sticky: StickyConfig | None = None,
        websocket: WebSocketBridge | None = None,
        allow_trace: bool = True,
    ) -> ProxyTarget:
        """The target of a configured route, everything per route built now."""
        return cls(
            dispatcher=dispatcher,
            target_path=route.target_path.encode("utf-8"),
            preserve_host=route.preserve_host,
            sticky=sticky,
            websocket=websocket,
            timeout=route.timeout,
            rewriting=RouteRewriting.for_route(
                route.path, route.target_path, route.cookie_path, route.cookie_domain
            ),
            allow_trace=allow_trace,
            header_edits=(
                HeaderEdits(route.request_headers, route.response_headers)
                if route.request_headers or route.response_headers
                else None
            ),
            access=AccessRules(route.access) if route.access else None,
            auth=AuthRules(route.auth) if route.auth else None,
            encoded_slashes=route.encoded_slashes,
        )


class RequestSink(ClientSink):
    """
    Writes a member's response to a C{twisted.web} request, streaming, with
    backpressure (the member connection is paused while the client is slow).
    """

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        super().__init__()
        self._request = request
        request.notifyFinish().addErrback(self.client_lost)

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        request = self._request
        self._started()
        if self.header_edit is not None:
            headers = self.header_edit(headers, False)
        request.setResponseCode(status)
        out = request.responseHeaders
        grouped: dict[bytes, list[bytes]] = {}
        for name, value in response_fields(headers):
            grouped.setdefault(name, []).append(value)
        for name, values in grouped.items():
            out.setRawHeaders(name, values)

    def write(self, data: bytes) -> None:
        if not self._gone:
            self.bytes_written += len(data)
            self._request.write(data)

    def finish(self) -> None:
        self._on_gone = None
        if not self._gone:
            self._request.finish()

    def error(self, status: int, message: str, page: ErrorPage | None = None) -> None:
        """
        Answer an error page (nothing of the member's was sent): C{page}, or
        a plain-text one saying C{message}.
        """
        request = self._request
        body = _error_page(request, status, message, page)
        if self.header_edit is not None:
            _edit_error_headers(request, self.header_edit)
        request.write(body)
        request.finish()

    def _register(self, producer: object) -> None:
        self._request.registerProducer(producer, True)

    def _unregister(self) -> None:
        self._request.unregisterProducer()

    def _abort_transport(self) -> None:
        transport: Any = self._request.channel.transport if self._request.channel else None
        if transport is not None:
            transport.abortConnection()


def _edit_error_headers(
    request: Request,
    edit: Callable[[Sequence[tuple[bytes, bytes]], bool], list[tuple[bytes, bytes]]],
) -> None:
    """Make a route's C{Header always} edits on an error page of the proxy's own."""
    out = request.responseHeaders
    edited = edit([(n, v) for n, values in out.getAllRawHeaders() for v in values], True)
    for name, _ in list(out.getAllRawHeaders()):
        out.removeHeader(name)
    for name, value in edited:
        out.addRawHeader(name, value)


def _error_page(
    request: Request, status: int, message: str, page: ErrorPage | None = None
) -> bytes:
    request.setResponseCode(status, HTTPStatus(status).phrase.encode("ascii"))
    content_type, body = page if page is not None else plain_error_page(status, message)
    request.responseHeaders.setRawHeaders(b"content-type", [content_type])
    request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
    return body


class ProxyResource(Resource):
    """
    Proxies every request below it to the balancer its path maps to.

    @param router: path prefix → L{ProxyTarget} (C{None} for exclusions).
    @param x_forwarded: whether HTTP members get C{X-Forwarded-*} headers.
    @param access_log: called with one dict per finished request: C{request},
        C{status}, C{bytes}, C{member} (its name, or C{"-"}), C{route_changed},
        C{attempts}, C{upstream_seconds} (from dispatch to the end),
        C{first_byte_seconds} (until the member's response began, or C{None}),
        C{balancer} (its name) and C{sticky} (the member was chosen by the
        request's session route).
    """

    isLeaf = True

    def __init__(
        self,
        router: Router[ProxyTarget],
        *,
        access_log: Callable[[dict[str, Any]], None] | None = None,
        error_pages: Mapping[int, ErrorPage] | None = None,
    ) -> None:
        """
        @param error_pages: per status (502, 503, 504), the page answered
            instead of the plain-text one when no member answered.
        """
        super().__init__()
        self._router = router
        self._access_log = access_log
        self._error_pages: Mapping[int, ErrorPage] = error_pages or {}

    def replace(
        self,
        router: Router[ProxyTarget],
        access_log: Callable[[dict[str, Any]], None] | None,
        error_pages: Mapping[int, ErrorPage] | None = None,
    ) -> None:
        """
        Serve the next requests with C{router}, log them to C{access_log} and
        answer C{error_pages} (a reload); requests in flight finish on the
        target they started with and are logged to the new access log.
        """
        self._router = router
        self._access_log = access_log
        self._error_pages = error_pages or {}

    def serve_fast(self, channel: LimitedHTTPChannel, head: RequestHead) -> bool:
        """
        Proxy a fast-lane request (see L{twisted_lb.fastpath}) and answer it
        on C{channel} with a L{RawResponse}.

        @return: C{False}, having done nothing, when the request needs
            twisted.web's path (not in origin form, an unsafe path or query,
            no route, an excluded path): that path answers it.
        """
        return self._serve_raw(channel, head, None)

    def serve_stream(self, channel: LimitedHTTPChannel, head: RequestHead, body: StreamedBody) -> bool:
        """
        Proxy a fast-lane request with a body that C{channel} streams into
        C{body}: it is sent to a member once the body is prefetched (see
        L{StreamedBody.when_prefetched}), and read as the member asks.

        @return: C{False}, having done nothing, as L{serve_fast}.
        """
        return self._serve_raw(channel, head, body)

    def _serve_raw(
        self, channel: LimitedHTTPChannel, head: RequestHead, body: StreamedBody | None
    ) -> bool:
        uri = head.uri
        if uri[:1] != b"/":
            return False
        path, _, query = uri.partition(b"?")
        if unsafe_path(path) is not None or (query and unsafe_query(query) is not None):
            return False
        router = self._router
        if router.by_host:
            router = router.for_host(next((v for n, v in head.headers if n == b"host"), b""))
        if router.rules is not None:
            # Rules before routing are checked on twisted.web's path.
            return False
        match = router.match(path)
        if match is None or match.target is None:
            return False
        target = match.target
        if target.auth is not None:
            return False  # logins are checked on twisted.web's path
        if head.method == b"TRACE" and not target.allow_trace:
            return False  # refused (TraceEnable off) on twisted.web's path
        info = channel.connection_info()
        if target.access is not None and not target.access.allows(
            path, info.client_host, info.local_host
        ):
            return False  # refusals are answered by twisted.web's path
        headers, cookies, host = _forwarded_headers(head.headers)
        if target.header_edits is not None:
            headers = target.header_edits.edit_request(headers, info.secure)
        routes: Sequence[str] = ()
        if target.sticky is not None:
            routes = find_session_routes(cookies, path, target.sticky)
        request = FastRequest(head, info.client)
        sink = RawResponse(channel, request, head.keep_alive)
        channel.fast_request_started(sink)

        def dispatch() -> None:
            body_length = 0
            if body is None:
                if head.method in _BODY_METHODS:
                    # As twisted.web's path: a POST, PUT or PATCH says its body is empty.
                    headers.append((_CONTENT_LENGTH, b"0"))
            else:
                if body.length is not None:
                    body_length = body.length
                elif body.ended:
                    # A chunked body that ended before it was sent: its length is known.
                    body_length = body.received
                else:
                    # An unknown length to the member (AJP: no Content-Length;
                    # HTTP: chunked).
                    body_length = -1
                if body_length >= 0:
                    headers.append((_CONTENT_LENGTH, b"%d" % body_length))
            exchange = _exchange_for(
                target, match, head.method, uri, query, headers, host, routes, info, None,
                body_length, body_stream=body,
            )
            self._dispatch(target, exchange, request, sink)

        if body is None:
            dispatch()
        else:
            body.when_prefetched(dispatch)
        return True

    def _dispatch(
        self,
        target: ProxyTarget,
        exchange: Exchange,
        request: Request | FastRequest,
        sink: RequestSink | RawResponse,
    ) -> None:
        """Send C{exchange} to C{target}'s members; answer failures; log the request."""
        record = AttemptRecord()
        if target.header_edits is not None and target.header_edits.response:
            sink.header_edit = partial(_edit_response, target, record, exchange.is_ssl)
        started = time.monotonic()
        d = target.dispatcher.dispatch(exchange, sink, record)
        d.addErrback(self._failed, request, sink, target)
        if self._access_log is not None:
            d.addBoth(self._logged, request, sink, record, started, target)

    def render(self, request: Request) -> bytes | int:
        request.responseHeaders.removeHeader(b"server")
        # A proxy adds no Content-Type the member did not send (as the fast lane).
        request.defaultContentType = None
        try:
            target, exchange = self._prepare(request)
            bridge = _websocket_bridge(request, target)
        except RequestRefused as e:
            _log.info(
                "refused {method} {uri} from {client}: {reason}",
                method=request.method.decode("latin-1"), uri=request.uri[:200].decode("latin-1"),
                client=_client(request), reason=e,
            )
            body = _error_page(request, e.status, str(e))
            refused_for = e.target if isinstance(e, _Refused) else None
            if refused_for is not None and refused_for.header_edits is not None:
                _edit_error_headers(
                    request,
                    partial(_edit_response, refused_for, AttemptRecord(), bool(request.isSecure())),
                )
            edits = e.edits if isinstance(e, _Refused) else None
            if edits is not None:
                # No route applies: the host's own Header always edits.
                env = connection_variables(bool(request.isSecure()))
                _edit_error_headers(request, lambda headers, error: edits.edit_response(
                    headers, env, error
                ))
            return body
        if bridge is not None:
            return bridge.render(request, exchange)
        self._dispatch(target, exchange, request, RequestSink(request))
        return NOT_DONE_YET

    def _prepare(self, request: Request) -> tuple[ProxyTarget, Exchange]:
        method = request.method
        if method == b"CONNECT":
            raise RequestRefused(405, "CONNECT is not served: this is a reverse proxy")
        malformed = _malformed(request)
        if malformed is not None:
            # The rest of the connection cannot be trusted to be framed right.
            if hasattr(request.channel, "persistent"):
                request.channel.persistent = False
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            raise RequestRefused(400, malformed)
        uri = request.uri
        authority = None
        if not uri.startswith(b"/"):
            try:
                authority, uri = absolute_target(uri)
            except ValueError as e:
                raise RequestRefused(400, str(e)) from None
        path, _, query = uri.partition(b"?")
        reason = unsafe_path(path) or unsafe_query(query)
        # An encoded slash is refused unless the route the path maps to
        # passes them on (checked once it is known, below).
        slashed = reason == ENCODED_SLASH and unsafe_query(query) is None
        if reason is not None and not slashed:
            raise RequestRefused(400, reason)
        router = self._router.for_host(authority or request.getHeader(b"host") or b"")
        rules = router.rules
        # Access rules and logins are for the path the client asked for
        # (Apache's <Location>), also when a rule proxies it elsewhere.
        asked = path
        outcome = _rule_outcome(rules, request, path, query, False) if rules else None
        if outcome is not None and outcome.status == 1:
            # [PT]: the rewritten path is routed as if the client had asked for it.
            path, query = outcome.path, outcome.query or b""
            uri = path + (b"?" + query if outcome.query is not None else b"")
            asked = path
            reason = unsafe_path(path)
            if reason is not None:
                raise RequestRefused(400, f"the rewritten path: {reason}")
            outcome = None
        if outcome is not None and not outcome.status:
            target = router.proxy_targets[outcome.rule]
            match: Match[ProxyTarget] | None = Match(target, b"", outcome.path)
            path, query = outcome.path, outcome.query or b""
            uri = path + (b"?" + query if outcome.query is not None else b"")
        elif outcome is None:
            match = router.match(path)
            if (match is None or match.target is None) and rules is not None and rules.has_after:
                outcome = _rule_outcome(rules, request, path, query, True)
        if slashed and (
            (outcome is not None and outcome.status)
            or match is None
            or match.target is None
            or not match.target.encoded_slashes
            or (reason := unsafe_path(path, encoded_slashes=True)) is not None
        ):
            raise RequestRefused(400, reason or ENCODED_SLASH)
        if outcome is not None and outcome.status:
            if outcome.location:
                request.setHeader(b"location", outcome.location.encode("utf-8"))
            raise _Refused(
                outcome.status, f"the site's rules answer {outcome.status}", edits=router.unrouted
            )
        if match is None or match.target is None:
            raise _Refused(404, "no route for this path", edits=router.unrouted)
        target = match.target
        if target.access is not None and not target.access.allows(
            asked, _client(request), getattr(request.getHost(), "host", None)
        ):
            raise _Refused(
                403, "the route's access rules do not allow this client", target=target
            )
        if target.auth is not None:
            challenge = target.auth.challenge(asked, request.getHeader(b"authorization"))
            if challenge is not None:
                request.setHeader(b"www-authenticate", challenge)
                raise _Refused(401, "this path needs a login", target=target)
        if method == b"TRACE" and not target.allow_trace:
            raise RequestRefused(405, "TRACE is not allowed here (TraceEnable off)")
        headers, cookies, host = _forwarded_headers(_request_pairs(request))
        if authority is not None:
            # RFC 9112 3.2.2: the target's host, not the Host header.
            host = authority
            headers = [(n, v) for n, v in headers if n != _HOST]
            headers.insert(0, (_HOST, authority))
        info = _request_info(request)
        if not host:
            host = fallback_host(
                getattr(getattr(request, "site", None), "server_name", None),
                info.local_host, info.local_port, info.secure,
            )
        if target.header_edits is not None:
            headers = target.header_edits.edit_request(headers, bool(request.isSecure()))
        body = request.content
        body_length = 0
        if body is not None:
            body.seek(0, 2)
            body_length = body.tell()
            body.seek(0)
        if body_length or method in _BODY_METHODS:
            headers.append((_CONTENT_LENGTH, b"%d" % body_length))
        routes: Sequence[str] = ()
        if target.sticky is not None:
            routes = find_session_routes(cookies, path, target.sticky)
        exchange = _exchange_for(
            target, match, method, uri, query, headers, host, routes, info,
            body if body_length else None, body_length, request_protocol(request.clientproto),
        )
        return target, exchange

    def _failed(
        self,
        failure: Failure,
        request: Request | FastRequest,
        sink: RequestSink | RawResponse,
        target: ProxyTarget,
    ) -> None:
        error = failure.value
        if isinstance(error, RequestRefused):
            if not sink.started and not sink.gone:
                sink.error(error.status, str(error))
            return
        if not isinstance(error, (AttemptFailed, NoUsableMember)):
            _log.failure(
                "unexpected error proxying {uri}", failure, uri=request.uri[:200].decode("latin-1")
            )
        else:
            _log.warn(
                "{method} {uri} failed ({balancer}): {error}",
                method=request.method.decode("latin-1"),
                uri=request.uri[:200].decode("latin-1"),
                balancer=target.dispatcher.balancer.name, error=error,
            )
        if sink.gone:
            return
        if sink.started:
            sink.abort()
            return
        status = status_for(error)
        sink.error(
            status, "the cluster could not answer this request", self._error_pages.get(status)
        )

    def _logged(
        self,
        result: object,
        request: Request | FastRequest,
        sink: RequestSink | RawResponse,
        record: AttemptRecord,
        started: float,
        target: ProxyTarget,
    ) -> None:
        access_log = self._access_log
        if access_log is None:
            return
        member = record.member
        response_at = sink.started_at
        access_log(
            {
                "request": request,
                "status": request.code,
                "bytes": sink.bytes_written,
                "member": member.name if member is not None else "-",
                "route_changed": record.route_changed,
                "attempts": record.attempts,
                "upstream_seconds": time.monotonic() - started,
                "first_byte_seconds": None if response_at is None else response_at - started,
                "balancer": target.dispatcher.balancer.name,
                "sticky": record.sticky,
            }
        )


class _Refused(RequestRefused):
    """
    A refusal whose answer takes C{Header always} edits: those of C{target},
    the route refusing, or where no route applies the host's own C{edits}.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        target: ProxyTarget | None = None,
        edits: HeaderEdits | None = None,
    ) -> None:
        super().__init__(status, message)
        self.target = target
        self.edits = edits


def _rule_outcome(rules: Any, request: Request, path: bytes, query: bytes, after: bool) -> Any:
    """What the rules before (or after) routing decide for C{request}, or C{None}."""
    headers = request.requestHeaders

    def header(name: str) -> str:
        values = headers.getRawHeaders(name.encode("latin-1"), ())
        return ", ".join(v.decode("latin-1") for v in values)

    return rules.apply(
        RuleRequest(
            method=request.method.decode("latin-1"),
            path=unquote_to_bytes(path).decode("utf-8", "surrogateescape"),
            query=query.decode("latin-1"),
            https=bool(request.isSecure()),
            host=header("host"),
            header=header,
        ),
        after,
    )


def _edit_response(
    target: ProxyTarget,
    record: AttemptRecord,
    secure: bool,
    headers: Sequence[tuple[bytes, bytes]],
    error: bool,
) -> list[tuple[bytes, bytes]]:
    """A response head with C{target}'s C{Header} edits made, for the member C{record} names."""
    assert target.header_edits is not None
    member = record.member
    env = balancer_variables(
        target.dispatcher.balancer.name,
        member.name if member is not None else None,
        member.route if member is not None else "",
        target.sticky is not None,
        record.sticky,
        secure,
    )
    return target.header_edits.edit_response(headers, env, error)


#: The TLS details of HTTP/2 connections, read once per connection.
_H2_TLS: weakref.WeakKeyDictionary[Any, ConnectionInfo] = weakref.WeakKeyDictionary()


def _request_info(request: Request) -> ConnectionInfo:
    """What a twisted.web request knows of its connection (read once per connection)."""
    channel = request.channel
    read_once = getattr(channel, "connection_info", None)
    if read_once is not None:
        return read_once()  # type: ignore[no-any-return]
    h2 = h2_connection_of(channel)
    if h2 is None:
        return ConnectionInfo.of_parts(
            request.getClientAddress(), request.getHost(), bool(request.isSecure()),
            channel.transport,
        )
    # An HTTP/2 stream: its connection holds the TLS transport.
    info = _H2_TLS.get(h2)
    if info is None:
        info = _H2_TLS[h2] = ConnectionInfo.of_parts(
            request.getClientAddress(), request.getHost(), bool(request.isSecure()),
            h2.transport,
        )
    return info


def _exchange_for(
    target: ProxyTarget,
    match: Match[ProxyTarget],
    method: bytes,
    uri: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    host: bytes,
    routes: Sequence[str],
    info: ConnectionInfo,
    body: IO[bytes] | None,
    body_length: int,
    protocol: bytes = b"HTTP/1.1",
    body_stream: StreamedBody | None = None,
) -> Exchange:
    """The exchange of a request for C{target}, whichever lane it came by."""
    return Exchange(
        method=method,
        path=target.target_path + match.rest,
        query=query if query or b"?" in uri else None,
        headers=headers,
        host=host,
        client_address=info.client_host,
        client_port=info.client_port,
        local_address=info.local_host,
        local_port=info.local_port,
        is_ssl=info.secure,
        body=body,
        body_length=body_length,
        body_stream=body_stream,
        ssl_protocol=info.ssl_protocol,
        ssl_cipher=info.ssl_cipher,
        ssl_key_size=info.ssl_key_size,
        ssl_session=info.ssl_session,
        ssl_cert=info.ssl_cert,
        session_routes=routes,
        public_prefix=match.prefix,
        target_path=target.target_path,
        preserve_host=target.preserve_host,
        rewriting=target.rewriting,
        timeout=target.timeout,
        protocol=protocol,
    )


def _websocket_bridge(request: Request, target: ProxyTarget) -> WebSocketBridge | None:
    """
    The bridge that takes C{request} over, or C{None} for a plain request.

    A plain request on a WebSocket route goes to the same node over
    C{http(s)://} (see L{twisted_lb.websocket.member.WSMember.send}); an
    upgrade on a route whose members cannot carry it (AJP, HTTP) is served
    as a plain request, the C{Upgrade} ignored (RFC 9110 7.8), as Apache does.
    """
    if target.websocket is None:
        return None
    if wants_websocket(request.method, request.requestHeaders.getRawHeaders(b"upgrade")):
        return target.websocket
    return None


def _malformed(request: Request) -> str | None:
    """
    Why the request's framing or headers must not be forwarded, or C{None}.

    Twisted refuses both Content-Length and Transfer-Encoding, codings it
    does not know, and CR, LF or NUL in values; it accepts
    C{Transfer-Encoding: identity} (and then reads no body), other control
    characters in values, and a missing or repeated Host.
    """
    headers = request.requestHeaders
    for value in headers.getRawHeaders(b"transfer-encoding", ()):
        if value.strip(b" \t").lower() != b"chunked":
            return "Transfer-Encoding other than chunked is not accepted"
    problem = host_problem(headers.getRawHeaders(b"host", ()), request.clientproto == b"HTTP/1.1")
    if problem is not None:
        return problem
    for name, values in headers.getAllRawHeaders():
        for value in values:
            if control_in_value(value):
                return f"control character in the {name.decode('latin-1')} header"
    return None


def _client(request: Request) -> str:
    client = request.getClientAddress()
    return getattr(client, "host", "?")


def _forwarded_headers(
    pairs: Iterable[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], list[bytes], bytes]:
    """
    The end-to-end request headers (names in lower case), the Cookie values
    and the Host, from the client's C{(name, value)} pairs.
    """
    connection: list[bytes] = []
    out: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host = b""
    for name, value in pairs:
        lower = name.lower()
        if lower == _CONNECTION:
            connection.append(value)
            continue
        if lower in HOP_BY_HOP or lower == _CONTENT_LENGTH:
            continue
        if lower == _COOKIE:
            cookies.append(value)
        elif lower == _HOST and not host:
            host = value
        out.append((lower, value))
    if connection:
        listed = connection_options(connection)
        out = [(n, v) for n, v in out if n not in listed]
    return out, cookies, host


def _request_pairs(request: Request) -> Iterator[tuple[bytes, bytes]]:
    for name, values in request.requestHeaders.getAllRawHeaders():
        for value in values:
            yield name, value


class RedirectResource(Resource):
    """
    Answers every request with a permanent redirect to the same path under
    C{base} (the plain-HTTP listener in front of an HTTPS site).
    """

    isLeaf = True

    def __init__(self, base: str, status: int = 301) -> None:
        super().__init__()
        self._base = base.rstrip("/").encode("utf-8")
        self._status = status

    def render(self, request: Request) -> bytes:
        request.responseHeaders.removeHeader(b"server")
        uri = request.uri if request.uri.startswith(b"/") else b"/"
        request.setResponseCode(self._status)
        request.responseHeaders.setRawHeaders(b"location", [self._base + uri])
        request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
        return b"moved to " + self._base + uri + b"\n"
