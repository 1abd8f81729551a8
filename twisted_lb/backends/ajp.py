"""
The AJP/1.3 backend: one member reached through a pool of AJP connections.
"""

from __future__ import annotations

from typing import cast

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTCP
from twisted.python.failure import Failure

from twisted_lb.ajp import AJPConnection, ForwardRequest, RequestTooLarge, Role
from twisted_lb.backends.ajp_pool import AJPConnectionPool
from twisted_lb.backends.ajp_protocol import AJPClientProtocol
from twisted_lb.config.model import MemberConfig
from twisted_lb.errors import AttemptFailed, RequestRefused, ResponseAborted
from twisted_lb.exchange import Exchange, ResponseSink, member_path
from twisted_lb.quiet import QuietFactory
from twisted_lb.rewrite import RewriterCache, RewritingSink, public_origin
from twisted_lb.routing import host_name

__all__ = ["AJPBackend"]

_REMOTE_PORT = b"AJP_REMOTE_PORT"
_LOCAL_ADDR = b"AJP_LOCAL_ADDR"
_SSL_PROTOCOL = b"AJP_SSL_PROTOCOL"


class AJPBackend:
    """
    Sends exchanges to one member over AJP/1.3.

    Everything that does not change per request (the secret, the member's
    path prefix, the route) is encoded once here.
    """

    def __init__(
        self, reactor: IReactorTCP, member: MemberConfig, *, ping_after_idle: float = 3.0
    ) -> None:
        self.member = member
        self._reactor = reactor
        self._prefix = member.path.encode("ascii")
        self._secret = member.secret.encode("utf-8") if member.secret else None
        self._route = member.effective_route.encode("utf-8")
        self._timeout = member.timeout
        self._ping_timeout = member.ping or member.connectiontimeout
        #: Tomcat gets the client's Host, so only paths and cookie rules are rewritten.
        self._rewriters = RewriterCache(lambda route: route.for_path(self._prefix))
        self.pool = AJPConnectionPool(
            reactor,  # type: ignore[arg-type]
            member.host,
            member.port,
            packet_size=member.packet_size,
            max_connections=member.max,
            ttl=member.ttl,
            connect_timeout=member.connectiontimeout,
            ping_timeout=member.ping,
            ping_after_idle=ping_after_idle,
        )

    def forward_request(self, exchange: Exchange) -> ForwardRequest:
        """
        The FORWARD_REQUEST for C{exchange}.

        @param exchange: the client's request.
        """
        attributes = [
            (_REMOTE_PORT, b"%d" % exchange.client_port),
            (_LOCAL_ADDR, exchange.local_address.encode("ascii")),
        ]
        if exchange.is_ssl and exchange.ssl_protocol:
            attributes.append((_SSL_PROTOCOL, exchange.ssl_protocol))
        return ForwardRequest(
            method=exchange.method,
            req_uri=member_path(self._prefix, exchange.path),
            protocol=exchange.protocol,
            remote_addr=exchange.client_address.encode("ascii"),
            remote_host=None,
            server_name=host_name(exchange.host),
            server_port=exchange.local_port,
            is_ssl=exchange.is_ssl,
            headers=tuple(exchange.headers),
            query_string=exchange.query,
            route=self._route,
            secret=self._secret,
            ssl_cipher=exchange.ssl_cipher if exchange.is_ssl else None,
            ssl_key_size=exchange.ssl_key_size if exchange.is_ssl else None,
            ssl_session=exchange.ssl_session if exchange.is_ssl else None,
            ssl_cert=exchange.ssl_cert if exchange.is_ssl else None,
            request_attributes=tuple(attributes),
        )

    def send(self, exchange: Exchange, sink: ResponseSink) -> defer.Deferred[None]:
        """
        Send C{exchange} and stream the answer into C{sink}.

        With an idle pooled connection ready, the exchange starts at once
        (callbacks, no coroutine); otherwise after L{AJPConnectionPool.acquire}.

        @return: a Deferred failing with L{AttemptFailed} when the attempt
            fails (its class tells whether the request may have reached the
            application), or with L{RequestRefused} when the request cannot
            be expressed in AJP (its head does not fit in one packet).
        """
        try:
            forward = self.forward_request(exchange)
            self._check_size(forward)
        except Exception:
            return defer.fail()
        if exchange.rewriting is not None:
            rewriter = self._rewriters.get(exchange.rewriting)
            if rewriter is not None:
                sink = RewritingSink(sink, rewriter, public_origin(exchange.is_ssl, exchange.host))
        proto = self.pool.take_ready()
        if proto is None:
            return defer.Deferred.fromCoroutine(self._send_when_acquired(forward, exchange, sink))
        return self._exchange(proto, forward, exchange, sink)

    async def _send_when_acquired(
        self, forward: ForwardRequest, exchange: Exchange, sink: ResponseSink
    ) -> None:
        proto = await self.pool.acquire()
        if getattr(sink, "gone", False):
            # The client left (an HTTP/2 stream it reset) while a connection
            # was made, checked or freed: the request is not sent at all.
            self.pool.release(proto, True)
            raise ResponseAborted("the client went away before the request was sent")
        await self._exchange(proto, forward, exchange, sink)

    def _exchange(
        self,
        proto: AJPClientProtocol,
        forward: ForwardRequest,
        exchange: Exchange,
        sink: ResponseSink,
    ) -> defer.Deferred[None]:
        """One exchange on C{proto}; the connection goes back to the pool after it."""
        try:
            d = proto.request(
                forward, exchange.body, exchange.body_length, sink,
                exchange.timeout or self._timeout, exchange.body_stream,
            )
        except RequestTooLarge as e:
            self.pool.release(proto, True)
            return defer.fail(RequestRefused(e.status_hint, str(e)))
        except BaseException:
            self.pool.release(proto, False)
            return defer.fail()
        return d.addCallbacks(
            self._release, self._release_failed, callbackArgs=(proto,), errbackArgs=(proto,)
        )

    def _release(self, reusable: bool, proto: AJPClientProtocol) -> None:
        self.pool.release(proto, reusable)

    def _release_failed(self, failure: Failure, proto: AJPClientProtocol) -> Failure:
        self.pool.release(proto, False)
        return failure

    def _check_size(self, forward: ForwardRequest) -> None:
        """
        Refuse a request whose head cannot fit in one AJP packet before any
        connection is taken: a cheap upper bound first, the exact encoding
        only for the rare large request.

        @raise RequestRefused: with 431 (headers) or 414 (path) when it does
            not fit.
        """
        bound = 128 + len(forward.req_uri) + len(forward.query_string or b"")
        for name, value in forward.headers:
            bound += len(name) + len(value) + 6
        for name, value in forward.request_attributes:
            bound += len(name) + len(value) + 7
        bound += len(forward.secret or b"") + len(forward.route or b"") + len(forward.method)
        bound += len(forward.remote_addr) + len(forward.server_name) + len(forward.ssl_cipher or b"")
        bound += len(forward.ssl_session or b"") + len(forward.ssl_cert or b"") + 16
        if bound <= self.member.packet_size - 4:
            return
        try:
            AJPConnection(Role.PROXY, self.member.packet_size).send(forward)
        except RequestTooLarge as e:
            raise RequestRefused(e.status_hint, str(e)) from None

    async def probe(self) -> bool:
        """
        Whether the member answers a CPING on a new connection now.

        Used by background health probing; no user request is involved.
        """
        endpoint = HostnameEndpoint(
            self._reactor, self.member.host, self.member.port, timeout=self.member.connectiontimeout
        )
        factory = QuietFactory.forProtocol(
            lambda: AJPClientProtocol(self._reactor, self.member.packet_size)  # type: ignore[arg-type]
        )
        try:
            proto = cast(AJPClientProtocol, await endpoint.connect(factory))
        except Exception:
            return False
        try:
            await proto.cping(self._ping_timeout)
            return True
        except AttemptFailed:
            return False
        finally:
            if proto.transport is not None:
                proto.transport.loseConnection()

    def close(self) -> defer.Deferred[None]:
        """Close pooled connections."""
        self.pool.close()
        return defer.succeed(None)
