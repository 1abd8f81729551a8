"""
Connections to members are opened with C{TCP_NODELAY}, as Apache's mod_proxy
opens its backend connections: a small write (a CPING, the end of a request
body) never waits for the member's delayed ACK. The AJP client sets it; for
http:// and https:// members Twisted's HTTP client does, and these tests pin
that. Real sockets on 127.0.0.1.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import readBody
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from twisted_lb.backends.ajp_protocol import AJPClientProtocol
from twisted_lb.backends.http import HTTPBackend
from twisted_lb.config.model import BackendTLSConfig, MemberConfig, TLSConfig
from twisted_lb.tls import make_self_signed, server_context


def no_delay(transport: object) -> int:
    """The TCP_NODELAY option of the socket under C{transport} (TLS or not)."""
    handle = transport.getHandle()  # type: ignore[attr-defined]
    if not isinstance(handle, socket.socket):
        # TLS: the handle is the OpenSSL connection; the socket is one level down.
        handle = transport.transport.getHandle()  # type: ignore[attr-defined]
    return handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class BackendSocketTests(TestCase):
    timeout = 20

    def listen(self, factory: Factory, tls: TLSConfig | None = None) -> int:
        if tls is None:
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        else:
            port = reactor.listenSSL(0, factory, server_context(tls), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def test_ajp_connection(self) -> None:
        """The AJP client protocol (what the pool builds) sets TCP_NODELAY on connect."""
        accepted: list[Protocol] = []

        class Accept(Protocol):
            def connectionMade(self) -> None:
                accepted.append(self)

        port = self.listen(Factory.forProtocol(Accept))
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        proto = yield endpoint.connect(Factory.forProtocol(lambda: AJPClientProtocol(reactor)))
        self.addCleanup(proto.transport.abortConnection)
        self.assertTrue(no_delay(proto.transport))

    @defer.inlineCallbacks
    def check_http_member(self, url_scheme: str, tls: TLSConfig | None) -> None:
        root = Resource()
        root.putChild(b"ok", Data(b"ok", "text/plain"))
        port = self.listen(Site(root), tls)
        member = MemberConfig(
            url=f"{url_scheme}://127.0.0.1:{port}/",
            route="m1",
            tls=BackendTLSConfig(verify=False) if tls is not None else None,
        )
        backend = HTTPBackend(reactor, member)
        self.addCleanup(backend.pool.closeCachedConnections)
        response = yield backend.agent.request(b"GET", member.url.encode() + b"ok")
        body = yield readBody(response)
        self.assertEqual(body, b"ok")
        # The connection is back in the member's pool (Twisted keeps them in
        # HTTPConnectionPool._connections, by host key).
        pooled = [proto for protos in backend.pool._connections.values() for proto in protos]
        self.assertEqual(len(pooled), 1)
        self.assertTrue(no_delay(pooled[0].transport))

    def test_http_member_connection(self) -> None:
        """A pooled connection to an http:// member has TCP_NODELAY."""
        return self.check_http_member("http", None)

    def test_https_member_connection(self) -> None:
        """Below TLS too: the option is set on the TCP socket of an https:// member."""
        directory = Path(tempfile.mkdtemp(prefix="lb-nodelay-"))
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        return self.check_http_member("https", TLSConfig(str(cert), str(key)))
