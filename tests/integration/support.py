"""
Helpers for integration tests: demo AJP nodes and a proxy on real loopback
sockets, and a small HTTP client on Twisted's Agent.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.defer import succeed
from twisted.internet.interfaces import IListeningPort
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from twisted_lb.ajp.container import AJPContainerFactory
from twisted_lb.config.model import (
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.demo import DemoApp
from twisted_lb.service import ProxyService


class Node:
    """A demo AJP node on 127.0.0.1 that can be stopped and started again."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.app = DemoApp(name)
        self.factory = AJPContainerFactory(self.app)
        self.connections: list[Any] = []
        original = self.factory.buildProtocol

        def build(addr: object) -> Any:
            proto = original(addr)
            self.connections.append(proto)
            return proto

        self.factory.buildProtocol = build  # type: ignore[method-assign]
        self.listening: IListeningPort = reactor.listenTCP(port, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def url(self) -> str:
        return f"ajp://127.0.0.1:{self.port}"

    def stop(self) -> defer.Deferred[None]:
        """Stop listening and drop every connection (as a killed node would)."""
        for proto in self.connections:
            if proto.transport is not None:
                proto.transport.abortConnection()
        self.connections.clear()
        return defer.maybeDeferred(self.listening.stopListening)

    def start(self) -> None:
        self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")


@implementer(IBodyProducer)
class BytesProducer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class Client:
    """An HTTP client for the tests, with its own connection pool."""

    def __init__(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.agent = Agent(reactor, pool=self.pool)

    async def request(
        self,
        url: str,
        method: bytes = b"GET",
        headers: dict[bytes, list[bytes]] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Headers, bytes]:
        response = await self.agent.request(
            method,
            url.encode("ascii"),
            Headers(headers or {}),
            BytesProducer(body) if body is not None else None,
        )
        data = await readBody(response)
        headers = response.headers.copy()
        if isinstance(response.length, int):
            # Agent keeps framing headers apart; show the one the proxy sent.
            headers.setRawHeaders(b"content-length", [b"%d" % response.length])
        return response.code, headers, data

    def close(self) -> defer.Deferred[None]:
        return self.pool.closeCachedConnections()


async def start_proxy(
    nodes: list[Node], access_log: str | None = None, **balancer_options: Any
) -> tuple[ProxyService, str]:
    """A proxy on an ephemeral port in front of C{nodes}; returns it and its base URL."""
    members = tuple(MemberConfig(url=n.url, route=n.name, ping=1.0) for n in nodes)
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1"),),
        balancers=(BalancerConfig("cluster", members, **balancer_options),),
        routes=(RouteConfig("/", "cluster"),),
        access_log=access_log,
    )
    service = ProxyService(config, reactor)
    service.startService()
    port = await service.listening[0]._waitingForPort
    return service, f"http://127.0.0.1:{port.getHost().port}"


def tls_client(
    port: int,
    alpn: list[bytes] | None = None,
    max_version: int | None = None,
) -> SSL.Connection:
    """A handshaken pyOpenSSL connection to 127.0.0.1:C{port} that trusts anything."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if max_version is not None:
        # Let this client offer old versions at all (Debian's OpenSSL refuses them at level 2).
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        context.set_max_proto_version(max_version)
    if alpn:
        context.set_alpn_protos(alpn)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(True)  # pyOpenSSL blocks on a blocking socket; SO_RCVTIMEO bounds it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
    conn = SSL.Connection(context, sock)
    conn.set_connect_state()
    conn.set_tlsext_host_name(b"localhost")
    try:
        conn.do_handshake()
    except BaseException:
        sock.close()
        raise
    return conn
