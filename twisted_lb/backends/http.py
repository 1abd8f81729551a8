"""
The HTTP/HTTPS backend: one member reached with Twisted's C{Agent} over its
own pool of persistent connections.

Everything that does not change per request (the endpoint, the TLS policy,
the URL prefix, the Host header, the pool) is built once per member. Each
request is one L{_Attempt}: it sends the exchange, waits for the head under
the member's C{timeout}, and streams the body into the sink with
backpressure. Failures are mapped onto the classes of L{twisted_lb.errors}
here and nowhere else, because the dispatcher decides retries from them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

from OpenSSL import SSL
from twisted.internet import defer, task
from twisted.internet import error as ierror
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IConsumer,
    IPushProducer,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import client as web_client
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import Agent, HTTPConnectionPool, PotentialDataLoss, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from twisted_lb.backends.connect_probe import ConnectProbe
from twisted_lb.backends.tls_policy import MemberTLSPolicy
from twisted_lb.compat import on_raw_response_field
from twisted_lb.config.model import MemberConfig
from twisted_lb.errors import (
    AttemptFailed,
    BackendProtocolError,
    BackendTimeout,
    ConnectFailed,
    MemberBusy,
    RequestNotSent,
    RequestRefused,
    ResponseAborted,
    ResponseNeverReceived,
    TLSFailed,
)
from twisted_lb.exchange import (
    Exchange,
    ResponseSink,
    field_problem,
    member_path,
    response_head_problem,
)
from twisted_lb.http_rules import FORWARDING_FIELDS, forwarding_headers
from twisted_lb.quiet import QuietFactory
from twisted_lb.request_body import BodyError, StreamedBody
from twisted_lb.rewrite import ResponseRewriter, RewriterCache, RouteRewriting, public_origin

__all__ = ["HTTPBackend"]

_HOST = b"host"
_XFF = b"x-forwarded-for"
#: Request headers never copied: Host and Content-Length are set here, and
#: the proxy has already read the body, so an C{Expect} would only stall.
_NOT_COPIED = frozenset({_HOST, b"content-length", b"expect"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUS = frozenset({204, 304})
_READ_SIZE = 64 * 1024
#: A member's response head may carry at most this many header fields and
#: bytes (Twisted bounds each line at 16 KiB, not their number): beyond, 502.
_MAX_RESPONSE_HEADERS = 200
_MAX_RESPONSE_HEAD_BYTES = 64 * 1024

_log = Logger()

#: Twisted's failures that wrap reasons: the connection was up when they happened.
_AGENT_FAILURES = (
    web_client.RequestNotSent,
    web_client.RequestGenerationFailed,
    web_client.RequestTransmissionFailed,
    web_client.ResponseNeverReceived,
    web_client.ResponseFailed,
)
_CONNECT_ERRORS = (
    ierror.ConnectError,
    ierror.TimeoutError,
    ierror.DNSLookupError,
    ierror.ConnectingCancelledError,
    OSError,
)


def _reasons(error: BaseException) -> Iterator[BaseException]:
    """C{error} and, for Twisted's wrapper exceptions, every reason inside."""
    yield error
    for reason in getattr(error, "reasons", None) or ():
        value = reason.value if isinstance(reason, Failure) else reason
        if isinstance(value, BaseException):
            yield from _reasons(value)


def _describe(error: BaseException) -> str:
    """The innermost reasons of a wrapper exception, in words."""
    inner = [e for e in _reasons(error) if not getattr(e, "reasons", None)]
    parts = [f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in inner]
    return "; ".join(parts) or type(error).__name__


def _unforwardable(name: str, reason: ValueError) -> RequestRefused:
    """
    The 400 for a request Twisted's client refuses to write to member C{name}.

    The reason names the member's URL or the request's values: it is logged,
    not shown to the client.
    """
    _log.warn("request to {member} cannot be forwarded: {reason}", member=name, reason=reason)
    return RequestRefused(400, "request cannot be forwarded: it cannot be written as HTTP/1.1")


class BadResponseField(ValueError):
    """A member's response field holds NUL, CR or LF (see L{field_problem})."""


def _refuse_bad_field(name: bytes, value: bytes) -> None:
    problem = field_problem(name, value)
    if problem is not None:
        raise BadResponseField(problem)


class _MemberClientProtocol(HTTP11ClientProtocol):
    """
    Twisted's HTTP/1.1 client connection, which ignores bytes that follow a
    response and would pool the connection anyway; here such a connection
    is closed (with a log line), so those bytes can never be read as the
    answer to the next request. A response field with NUL, CR or LF fails
    the response (Twisted would store a CR as a space).
    """

    member_name = ""

    def request(self, request: Any) -> defer.Deferred[IResponse]:
        d = super().request(request)
        on_raw_response_field(self, _refuse_bad_field)
        return d

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        if rest and self._currentRequest is not None:
            _log.warn(
                "{member} sent {count} bytes after the response; connection closed",
                member=self.member_name,
                count=len(rest),
            )
            self._currentRequest.persistent = False
        elif self._currentRequest is not None and getattr(self.transport, "disconnecting", False):
            # Closed while its response was read (a head that could not be
            # passed on, see _Dropper): never back to the pool.
            self._currentRequest.persistent = False
        super()._finishResponse_WAITING(rest)

    _finishResponse_TRANSMITTING = _finishResponse_WAITING

    def dataReceived(self, bytes: bytes) -> None:  # noqa: A002 -- Twisted's name
        if self._parser is None:
            # Between responses, nothing is expected (Twisted would fail on None).
            _log.warn(
                "{member} sent {count} bytes after the response; connection closed",
                member=self.member_name,
                count=len(bytes),
            )
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        super().dataReceived(bytes)


class _MemberClientFactory(web_client._HTTP11ClientFactory):
    """Builds L{_MemberClientProtocol}s for one member."""

    #: No "Starting factory"/"Stopping factory" line per connection to the member.
    noisy = False
    member_name = ""

    def buildProtocol(self, addr: object) -> _MemberClientProtocol:
        proto = _MemberClientProtocol(self._quiescentCallback)
        proto.member_name = self.member_name
        return proto


class _MemberPool(HTTPConnectionPool):
    """
    The member's persistent connections. A GET, HEAD, OPTIONS, DELETE or
    TRACE without a body that fails on a pooled connection before any
    response byte (the member closed it just as it was reused) is sent
    again once on a new connection, as Twisted does by default.
    """

    def __init__(self, reactor: Any, member_name: str) -> None:
        super().__init__(reactor, persistent=True)
        self._member_name = member_name

    def _factory(self, quiescent_callback: Any, metadata: Any) -> _MemberClientFactory:  # type: ignore[override]
        factory = _MemberClientFactory(quiescent_callback, metadata)
        factory.member_name = self._member_name
        return factory


@implementer(IAgentEndpointFactory)
class _MemberEndpoint:
    """Every URL of the agent goes to the member's one endpoint."""

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri: object) -> IStreamClientEndpoint:
        return self.endpoint


@implementer(IBodyProducer)
class _BodyProducer:
    """
    Streams C{length} bytes of the (seekable) request body. Unlike
    C{FileBodyProducer} it never closes the file: the dispatcher may rewind
    it for another member.
    """

    def __init__(self, body: IO[bytes] | None, length: int, on_write: Callable[[], None]) -> None:
        self._body = body
        self.length = length
        self._on_write = on_write
        self._task: task.CooperativeTask | None = None

    def _chunks(self, consumer: Any) -> Iterator[None]:
        left = self.length
        if self._body is None or left <= 0:
            return
        self._body.seek(0)
        while left > 0:
            data = self._body.read(min(_READ_SIZE, left))
            if not data:
                raise OSError(f"request body ended {left} bytes early")
            left -= len(data)
            self._on_write()
            consumer.write(data)
            yield None

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        self._task = task.cooperate(self._chunks(consumer))
        d = self._task.whenDone()

        def stopped(reason: Failure) -> Any:
            if reason.check(defer.CancelledError):
                self.stopProducing()
            elif not reason.check(task.TaskStopped):
                return reason
            return defer.Deferred()  # stopped: never fires, as IBodyProducer wants

        return d.addCallbacks(lambda _: None, stopped)

    def pauseProducing(self) -> None:
        if self._task is not None:
            self._task.pause()

    def resumeProducing(self) -> None:
        if self._task is not None:
            self._task.resume()

    def stopProducing(self) -> None:
        if self._task is not None:
            try:
                self._task.stop()
            except (task.TaskDone, task.TaskFailed, task.TaskStopped, task.TaskFinished):
                pass


class HTTPBackend:
    """
    Sends exchanges to one C{http://} or C{https://} member.

    @ivar member: the member's configuration.
    @ivar pool: the member's persistent connections.
    @ivar tls: the member's TLS policy (C{None} for C{http://}).
    """

    def __init__(
        self,
        reactor: Any,
        member: MemberConfig,
        *,
        x_forwarded: bool = True,
        preserve_host: bool = False,
    ) -> None:
        """
        @param reactor: provides TCP, time and (for C{https}) TLS.
        @param member: an C{http://} or C{https://} member.
        @param x_forwarded: add C{X-Forwarded-For/-Proto/-Host}.
        @param preserve_host: send the client's Host instead of the member's.
        @raise OSError: a TLS file cannot be read.
        @raise ValueError: a TLS file cannot be parsed, or the scheme is not
            C{http}/C{https}.
        """
        if member.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"{member.url}: HTTPBackend serves http:// and https:// members")
        self.member = member
        self.name = member.name
        self._reactor = reactor
        self._x_forwarded = x_forwarded
        self._preserve_host = preserve_host
        self._timeout = member.timeout
        self._connect_timeout = member.connectiontimeout
        self._max = member.max
        host = member.host
        url_host = f"[{host}]" if ":" in host else host
        scheme = member.scheme
        self._scheme = scheme.encode("ascii")
        self._host = url_host.encode("ascii" if url_host.isascii() else "idna")
        self._port = member.port
        self._path = member.path.encode("utf-8")
        self._origin = b"%s://%s:%d" % (self._scheme, self._host, self._port)
        self._host_header = (
            self._host
            if _DEFAULT_PORTS[scheme] == self._port
            else b"%s:%d" % (self._host, self._port)
        )
        endpoint: Any = HostnameEndpoint(reactor, host, self._port, timeout=self._connect_timeout)
        self.tls: MemberTLSPolicy | None = None
        if scheme == "https":
            self.tls = MemberTLSPolicy(member)
            endpoint = wrapClientTLS(self.tls.creator, endpoint)
        self._endpoint = endpoint
        self.pool = _MemberPool(reactor, member.name)
        self.pool.maxPersistentPerHost = member.max
        self.pool.cachedConnectionTimeout = member.ttl  # type: ignore[assignment]
        self.agent = Agent.usingEndpointFactory(reactor, _MemberEndpoint(endpoint), pool=self.pool)
        self._rewriters = RewriterCache(self._rewriter_for)
        self._default_routes: dict[tuple[bytes, bytes], RouteRewriting] = {}
        self._in_flight = 0
        self._waiters: deque[defer.Deferred[None]] = deque()
        self._probes: set[defer.Deferred[Any]] = set()

    # -- per route -------------------------------------------------------

    def _rewriter_for(self, route: RouteRewriting) -> ResponseRewriter:
        return route.for_member(self._scheme, self._host.strip(b"[]"), self._port, self._path)

    def rewriter(self, exchange: Exchange) -> ResponseRewriter:
        """
        The response rewriter for C{exchange}'s route, made on the route's
        first exchange and kept (one per route that reaches this member).
        """
        route = exchange.rewriting
        if route is None:
            # An exchange built without its route's rewriting: the route defaults.
            target = exchange.target_path
            if target is None:
                target = b"/" if exchange.public_prefix.endswith(b"/") else b""
            key = (exchange.public_prefix, target)
            route = self._default_routes.get(key)
            if route is None:
                route = self._default_routes[key] = RouteRewriting(*key)
        rewriter = self._rewriters.get(route)
        assert rewriter is not None
        return rewriter

    # -- the request -----------------------------------------------------

    def request_headers(self, exchange: Exchange) -> Headers:
        """
        The headers sent to the member for C{exchange}: the client's
        end-to-end headers, then Host and the C{X-Forwarded-*} headers.
        """
        headers = Headers()
        add = headers.addRawHeader
        forwarded_for: list[bytes] = []
        x_forwarded = self._x_forwarded
        for name, value in exchange.headers:
            if name in _NOT_COPIED:
                continue
            if x_forwarded and name in FORWARDING_FIELDS:
                if name == _XFF:
                    forwarded_for.append(value)
                continue
            add(name, value)
        if (self._preserve_host or exchange.preserve_host) and exchange.host:
            add(_HOST, exchange.host)
        else:
            add(_HOST, self._host_header)
        if x_forwarded:
            for name, value in forwarding_headers(exchange, forwarded_for):
                add(name, value)
        return headers

    def url(self, exchange: Exchange) -> bytes:
        """The member URL for C{exchange}."""
        url = self._origin + member_path(self._path, exchange.path)
        if exchange.query is not None:
            url += b"?" + exchange.query
        return url

    async def send(self, exchange: Exchange, sink: ResponseSink) -> None:
        """
        Send C{exchange} and stream the answer into C{sink}.

        @raise AttemptFailed: the attempt failed; its class tells whether the
            request may have reached the application.
        @raise RequestRefused: the request cannot be written as HTTP/1.1.
        """
        await self._acquire()
        try:
            await _Attempt(self, exchange, sink).run()
        finally:
            self._release()

    # -- the in-flight cap (member.max) ---------------------------------

    async def _acquire(self) -> None:
        if self._in_flight < self._max:
            self._in_flight += 1
            return
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(d)
        timer = self._reactor.callLater(self._connect_timeout, self._busy, d)
        try:
            await d
        finally:
            if timer.active():
                timer.cancel()

    def _busy(self, d: defer.Deferred[None]) -> None:
        if d in self._waiters:
            self._waiters.remove(d)
            d.errback(MemberBusy(f"all {self._max} connections to {self.name} are busy"))

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().callback(None)  # the slot passes on
        else:
            self._in_flight -= 1

    # -- failures --------------------------------------------------------

    def _tls_failure(self, error: BaseException) -> ConnectFailed | None:
        """A L{ConnectFailed} naming the TLS reason, if C{error} is one."""
        if self.tls is None:
            return None
        for reason in _reasons(error):
            if isinstance(reason, SSL.Error):
                detail = self.tls.verify_failure()
                if detail is not None and "certificate verify failed" in str(reason):
                    return TLSFailed(f"TLS to {self.name}: {detail}")
                return TLSFailed(f"TLS handshake with {self.name} failed: {_describe(reason)}")
        return None

    # -- probing ---------------------------------------------------------

    async def probe(self) -> bool:
        """
        Whether the member accepts a connection now (and, for C{https}, whether
        the TLS handshake succeeds, certificate checks included); no request
        is sent. Used by background probing; L{close} cancels it.
        """
        tls = self.tls is not None
        connecting = self._endpoint.connect(QuietFactory.forProtocol(lambda: ConnectProbe(tls)))
        try:
            proto: ConnectProbe = await self._bounded(connecting)
        except Exception:
            return False
        try:
            return await self._bounded(proto.ready) is None
        except Exception:
            return False
        finally:
            transport: Any = proto.transport
            if transport is not None:
                transport.loseConnection()

    def _bounded(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """C{d}, given up after the connect timeout, cancelled by L{close}."""
        d.addTimeout(self._connect_timeout, self._reactor)
        self._probes.add(d)

        def settled(result: object) -> object:
            self._probes.discard(d)
            return result

        return d.addBoth(settled)

    def close(self) -> defer.Deferred[None]:
        """Cancel probes under way and close the pooled idle connections."""
        for d in list(self._probes):
            d.cancel()
        return self.pool.closeCachedConnections()


class _Dropper(Protocol):
    """Takes a response body only to close its connection at once."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


@implementer(IBodyProducer)
class _StreamProducer:
    """
    Streams a body from the client (L{StreamedBody}) to the member as it
    arrives: with its C{Content-Length}, or chunked when its length is
    unknown. The member connection pauses it when its buffer is full; the
    client is paused in turn when too much waits here.
    """

    def __init__(self, stream: StreamedBody, on_write: Callable[[], None]) -> None:
        self._stream = stream
        self.length = stream.length if stream.length is not None else web_client.UNKNOWN_LENGTH
        self._on_write = on_write
        self._consumer: IConsumer | None = None
        self._done: defer.Deferred[None] | None = None
        self._paused = False
        self._waiting = False

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        self._consumer = consumer
        self._done = done = defer.Deferred[None]()
        self._pump()
        return done

    def _pump(self) -> None:
        stream = self._stream
        while self._done is not None and not self._paused:
            try:
                data = stream.read(_READ_SIZE)
            except BodyError as e:
                done, self._done = self._done, None
                done.errback(OSError(f"the client's request body failed: {e}"))
                return
            if data is None:
                if not self._waiting:
                    self._waiting = True
                    stream.when_readable(self._readable)
                return
            if not data:
                done, self._done = self._done, None
                done.callback(None)
                return
            self._on_write()
            assert self._consumer is not None
            self._consumer.write(data)

    def _readable(self) -> None:
        self._waiting = False
        self._pump()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            self._pump()

    def stopProducing(self) -> None:
        # Stopped: the Deferred never fires, as IBodyProducer wants.
        self._done = None


@implementer(IPushProducer)
class _Attempt(Protocol):
    """
    One exchange with the member: the request, then the response body
    delivered to this protocol (C{IResponse.deliverBody}).

    It is also the producer the sink pauses when the client is slow. Its
    transport is the one C{deliverBody} documents as an C{IPushProducer}: the
    member connection, wrapped so that it stops obeying once the response is
    complete and the connection went back to the pool. Registering this
    object rather than that transport lets the stall timer stop while the
    client is the slow side.
    """

    def __init__(self, backend: HTTPBackend, exchange: Exchange, sink: ResponseSink) -> None:
        self._backend = backend
        self._exchange = exchange
        self._sink = sink
        #: The route's timeout, else the member's.
        self._timeout = exchange.timeout or backend._timeout
        self._timer: Any = None  # an IDelayedCall
        self._requesting: defer.Deferred[IResponse] | None = None
        self._done: defer.Deferred[None] | None = None
        self._paused = False
        self._timed_out = False
        self._client_gone = False

    async def run(self) -> None:
        backend, exchange, sink = self._backend, self._exchange, self._sink
        sink.on_client_gone(self._on_client_gone)
        if self._client_gone:
            raise ResponseAborted("client went away before the request was sent")
        body: _BodyProducer | _StreamProducer | None = None
        if exchange.body_stream is not None:
            body = _StreamProducer(exchange.body_stream, self._rearm)
        elif exchange.body_length > 0 or any(n == b"content-length" for n, _ in exchange.headers):
            # The client framed a body (maybe an empty one): so does the member request.
            body = _BodyProducer(exchange.body, exchange.body_length, self._rearm)
        try:
            d = backend.agent.request(
                exchange.method, backend.url(exchange), backend.request_headers(exchange), body
            )
        except ValueError as e:
            raise _unforwardable(backend.name, e) from None
        try:
            await self._head_then_body(d)
        finally:
            if body is not None:
                # A member may answer before it read the body: stop sending it.
                body.stopProducing()

    async def _head_then_body(self, d: defer.Deferred[IResponse]) -> None:
        """Wait for the response head from C{d}, then stream the body into the sink."""
        sink = self._sink
        self._requesting = d
        self._arm()
        try:
            response = await d
        except Exception as e:
            raise self._request_failed(e) from None
        finally:
            self._requesting = None
            self._cancel_timer()
        headers = self._response_headers(response)
        self._done = done = defer.Deferred[None]()
        sink.start(response.code, headers)
        sink.register_producer(self)
        self._arm()
        response.deliverBody(self)
        if self._paused and self.transport is not None and not done.called:
            # deliverBody resumes the member connection after connecting us;
            # the client asked for a pause before that.
            cast(IPushProducer, self.transport).pauseProducing()
        await done

    # -- the head --------------------------------------------------------

    def _request_failed(self, error: Exception) -> BaseException:
        backend = self._backend
        name = backend.name
        if self._client_gone:
            return ResponseAborted("client went away while the member was asked")
        tls = backend._tls_failure(error)
        if tls is not None:
            return tls
        wrapped = isinstance(error, _AGENT_FAILURES)
        if self._timed_out:
            if wrapped:
                return BackendTimeout(f"{name} did not answer within {self._timeout:g} s")
            return ConnectFailed(f"no connection to {name} within {self._timeout:g} s")
        if isinstance(error, AttemptFailed | RequestRefused):
            return error
        if isinstance(error, web_client.RequestNotSent):
            return RequestNotSent(f"pooled connection to {name} was closed before the request")
        if isinstance(error, web_client.ResponseNeverReceived):
            return ResponseNeverReceived(
                f"{name} closed the connection without answering ({_describe(error)})"
            )
        if isinstance(error, web_client.RequestTransmissionFailed):
            return ResponseNeverReceived(
                f"{name} broke the connection while the request was sent ({_describe(error)})"
            )
        if isinstance(error, web_client.RequestGenerationFailed):
            for reason in _reasons(error):
                if isinstance(reason, ValueError):
                    return _unforwardable(name, reason)
            return BackendProtocolError(
                f"request to {name} could not be written: {_describe(error)}"
            )
        if isinstance(error, web_client.ResponseFailed):
            for reason in _reasons(error):
                if isinstance(reason, BadResponseField):
                    return BackendProtocolError(
                        f"{name} sent a response head that cannot be passed on: {reason}"
                    )
            return BackendProtocolError(f"{name} sent a broken response head ({_describe(error)})")
        if isinstance(error, _CONNECT_ERRORS):
            return ConnectFailed(f"cannot connect to {name}: {_describe(error)}")
        return BackendProtocolError(f"request to {name} failed: {_describe(error)}")

    def _response_headers(self, response: IResponse) -> list[tuple[bytes, bytes]]:
        headers = [
            (name, value)
            for name, values in response.headers.getAllRawHeaders()
            for value in values
        ]
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if len(headers) > _MAX_RESPONSE_HEADERS or size > _MAX_RESPONSE_HEAD_BYTES:
            response.deliverBody(_Dropper())
            raise BackendProtocolError(
                f"{self._backend.name} sent a response head of {len(headers)} fields, "
                f"{size} bytes (limits: {_MAX_RESPONSE_HEADERS} fields, "
                f"{_MAX_RESPONSE_HEAD_BYTES} bytes)"
            )
        problem = response_head_problem(response.code, headers)
        if problem is not None:
            response.deliverBody(_Dropper())
            raise BackendProtocolError(
                f"{self._backend.name} sent a response head that cannot be passed on: {problem}"
            )
        length = response.length
        if (
            isinstance(length, int)
            and self._exchange.method != b"HEAD"
            and response.code not in _NO_BODY_STATUS
        ):
            headers.append((b"Content-Length", b"%d" % length))
        exchange = self._exchange
        rewriter = self._backend.rewriter(exchange)
        return rewriter.rewrite(headers, public_origin(exchange.is_ssl, exchange.host))

    # -- the body (IProtocol, via deliverBody) ---------------------------

    def connectionMade(self) -> None:
        if self._paused:
            cast(IPushProducer, self.transport).pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._done is None or self._done.called:
            return
        self._rearm()
        self._sink.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        done = self._done
        if done is None or done.called:
            return
        self._cancel_timer()
        self._sink.unregister_producer()
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self._sink.finish()
            done.callback(None)
        else:
            done.errback(
                ResponseAborted(
                    f"{self._backend.name} broke the connection mid-response "
                    f"({_describe(reason.value)})"
                )
            )

    def _abort_body(self, error: AttemptFailed) -> None:
        done = self._done
        if done is None or done.called:
            return
        self._cancel_timer()
        self._sink.unregister_producer()
        if self.transport is not None:
            # Closes the member connection at once; it never returns to the pool.
            cast(IPushProducer, self.transport).stopProducing()
        done.errback(error)

    # -- IPushProducer: the client side slows the member down -----------

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel_timer()
        if self.transport is not None:
            cast(IPushProducer, self.transport).pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if self.transport is not None:
            cast(IPushProducer, self.transport).resumeProducing()
        if self._done is not None and not self._done.called:
            self._arm()

    def stopProducing(self) -> None:
        self._on_client_gone()

    # -- timers and the client -------------------------------------------

    def _arm(self) -> None:
        self._cancel_timer()
        if not self._paused:
            self._timer = self._backend._reactor.callLater(self._timeout, self._expired)

    def _rearm(self) -> None:
        if self._timer is not None and not self._paused:
            self._timer.reset(self._timeout)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _expired(self) -> None:
        self._timer = None
        self._timed_out = True
        if self._requesting is not None:
            self._requesting.cancel()
        else:
            self._abort_body(
                ResponseAborted(
                    f"{self._backend.name} sent nothing for {self._timeout:g} s mid-response"
                )
            )

    def _on_client_gone(self) -> None:
        if self._client_gone:
            return
        self._client_gone = True
        if self._requesting is not None:
            self._requesting.cancel()
        else:
            self._abort_body(ResponseAborted("client went away"))
