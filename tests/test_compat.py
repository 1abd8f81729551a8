"""
Probes for every private attribute of Twisted, Autobahn or pyOpenSSL that
L{twisted_lb.compat} uses: each fails loudly, naming the attribute, when a
release changes it.
"""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from OpenSSL import SSL
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import client as web_client
from twisted.web import http
from twisted.web._newclient import HTTP11ClientProtocol, ResponseFailed
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http_headers import Headers as ClientHeaders
from twisted.web.server import Request, Site

from twisted_lb import compat
from twisted_lb.compat import (
    H2_CONNECTION_PRIVATE,
    H2Connection,
    H2ConnectionBase,
    listening_port,
    quiet_pool_factory,
    raise_listen_errors,
    switch_to_http2,
    tls_session_id,
)
from twisted_lb.config.model import LimitsConfig
from twisted_lb.frontend import FrontendSite
from twisted_lb.http2 import LimitedH2Connection
from twisted_lb.tls import make_self_signed

from .websocket.conftest import txaio_clock  # noqa: F401  (no timer on the global reactor)
from .websocket.memory import SocketTransport

# -- HTTP/2 (twisted_lb.http2) -----------------------------------------------------------------


class _TLSLikeTransport(StringTransport):
    """A transport that negotiated h2 over ALPN."""

    negotiatedProtocol = b"h2"


class HTTP2SwitchProbes(SynchronousTestCase):
    def test_generic_channel_protocol_attributes(self):
        """The attributes of twisted.web's HTTP/1.1-or-HTTP/2 switch that switch_to_http2
        reads and sets exist, with the values HTTPFactory gives them."""
        site = Site(None, reactor=MemoryReactorClock())  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        for name in (
            "_channel",
            "_negotiatedProtocol",
            "_requestFactory",
            "_site",
            "_factory",
            "_timeOut",
            "_callLater",
        ):
            self.assertTrue(hasattr(generic, name), f"_GenericHTTPChannelProtocol.{name} is gone")
        self.assertIsInstance(generic._channel, http.HTTPChannel)
        self.assertIs(generic._site, site)
        self.assertIsNone(generic._negotiatedProtocol)
        generic.makeConnection(StringTransport())
        self.assertTrue(
            hasattr(generic._channel, "_networkProducer"), "HTTPChannel._networkProducer is gone"
        )

    def test_switch_to_http2_serves_with_our_connection(self):
        """After the switch, our connection is the channel, the transport's producer,
        has the site and sends its SETTINGS; the switch itself does nothing more."""
        clock = MemoryReactorClock()
        site = FrontendSite(None, LimitsConfig(), clock, http2=True)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        transport = _TLSLikeTransport()
        generic.makeConnection(transport)
        connection = LimitedH2Connection(LimitsConfig(), clock)
        switch_to_http2(generic, connection)
        self.assertIs(generic._channel, connection)
        self.assertEqual(generic._negotiatedProtocol, b"h2")
        self.assertIs(connection.site, site)
        self.assertIs(connection.requestFactory, site.requestFactory)
        self.assertEqual(connection.timeOut, site.timeOut)
        self.assertIs(transport.producer, connection)
        self.assertTrue(transport.value().startswith(b"\x00\x00"))  # a SETTINGS frame
        self.assertIsInstance(connection, H2Connection)

    def test_frontend_switches_a_negotiated_h2_connection(self):
        """FrontendSite's channel protocol switches on the first bytes of an h2 connection."""
        clock = MemoryReactorClock()
        site = FrontendSite(None, LimitsConfig(), clock, http2=True)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        generic.makeConnection(_TLSLikeTransport())
        generic.dataReceived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertIsInstance(generic._channel, LimitedH2Connection)
        self.assertIs(generic._channel.requestFactory, Request)

# -- TLS session id (pyOpenSSL) ----------------------------------------------


def _handshake(
    tmp_path: Path, version: int, no_ticket: bool = False
) -> tuple[SSL.Connection, SSL.Connection]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key)
    server_context = SSL.Context(SSL.TLS_METHOD)
    server_context.use_certificate_file(str(cert))
    server_context.use_privatekey_file(str(key))
    server_context.set_max_proto_version(version)
    if no_ticket:
        server_context.set_options(SSL.OP_NO_TICKET)
    a, b = socket.socketpair()
    server = SSL.Connection(server_context, a)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), b)
    client.set_connect_state()
    server.setblocking(False)
    client.setblocking(False)
    done = set()
    for _ in range(50):
        for side in (client, server):
            try:
                side.do_handshake()
                done.add(side)
            except SSL.WantReadError:
                pass
        if len(done) == 2:
            break
    assert len(done) == 2, "the in-memory handshake did not complete"
    return server, client


def test_private_names_exist() -> None:
    """pyOpenSSL's bindings and the connection's SSL pointer, as tls_session_id reads them."""
    from OpenSSL.SSL import _ffi, _lib

    assert callable(_lib.SSL_get_session)
    assert callable(_lib.i2d_SSL_SESSION)
    assert _ffi.NULL is not None
    connection = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    assert connection._ssl is not None


def test_tls_session_id_tls13(tmp_path: Path) -> None:
    server, client = _handshake(tmp_path, SSL.TLS1_3_VERSION)
    session = tls_session_id(server)
    assert session is not None and len(session) == 64, session
    int(session, 16)
    assert session == session.upper()


def test_tls_session_id_tls12_without_tickets(tmp_path: Path) -> None:
    """TLS 1.2 has a server-side id when no ticket replaces it; the client sees the same."""
    server, client = _handshake(tmp_path, SSL.TLS1_2_VERSION, no_ticket=True)
    session = tls_session_id(server)
    assert session is not None and len(session) == 64, session
    assert tls_session_id(client) == session


def test_no_session_before_a_handshake() -> None:
    assert tls_session_id(SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)) is None


# -- end of TLS session id -----------------------------------------------------

# ---------------------------------------------------------------------------
# Autobahn: the WebSocket frame relay
# ---------------------------------------------------------------------------

_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
#: A masked close frame, code 1000 (the key is zero: the payload is as it is).
_CLOSE_1000 = b"\x88\x82\x00\x00\x00\x00\x03\xe8"


def _server() -> tuple[WebSocketServerProtocol, SocketTransport]:
    factory = WebSocketServerFactory(reactor=MemoryReactorClock())  # no timer on the global reactor
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(failByDrop=False)
    proto = factory.buildProtocol(None)
    transport = SocketTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_autobahn_buffers_what_follows_the_handshake_in_data():
    """Bytes past the upgrade request wait in C{data} while the handshake is not done."""
    proto, transport = _server()
    proto.onConnect = lambda request: Deferred()  # the handshake waits
    compat.autobahn_feed(proto, _UPGRADE + b"\x81\x80")
    assert proto.state == WebSocketProtocol.STATE_CONNECTING
    assert compat.autobahn_take_received(proto) == b"\x81\x80"
    assert proto.data == b""
    compat.autobahn_put_received(proto, b"xy")
    assert proto.data == b"xy"


def test_autobahn_feed_runs_the_close_handshake():
    """A close frame fed after the handshake: Autobahn answers it and reports the code."""
    proto, transport = _server()
    compat.autobahn_feed(proto, _UPGRADE)
    assert proto.state == WebSocketProtocol.STATE_OPEN
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    transport.clear()
    seen = []
    proto.onCloseFrame = lambda code, reason, default=proto.onCloseFrame: (
        seen.append(code),
        default(code, reason),
    )[1]
    compat.autobahn_feed(proto, _CLOSE_1000)
    assert seen == [1000]
    assert transport.value() == b"\x88\x02\x03\xe8"  # the answer, unmasked


def test_autobahn_fail_sends_the_code_and_closes():
    proto, transport = _server()
    compat.autobahn_feed(proto, _UPGRADE)
    transport.clear()
    compat.autobahn_fail(proto, 1002, "broken")
    assert transport.value() == b"\x88\x08\x03\xeabroken"
    assert proto.state == WebSocketProtocol.STATE_CLOSING
    assert proto.localCloseCode == 1002
    assert "code" in inspect.signature(WebSocketProtocol._fail_connection).parameters


# ---------------------------------------------------------------------------
# Twisted: a TLS write that reaches the socket at once
# ---------------------------------------------------------------------------


def _tcp_pair():
    from twisted.internet import tcp
    from twisted.internet.protocol import Protocol
    from twisted.internet.testing import MemoryReactor

    ours, theirs = socket.socketpair()
    ours.setblocking(False)

    class _Port:
        sessionno = 0
        _realPortNumber = 1
        _type = "TCP"

        def getHost(self):
            return None

    server = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), _Port(), 1, MemoryReactor())
    return server, theirs


def test_tcp_transports_buffer_writes_where_compat_looks():
    server, theirs = _tcp_pair()
    try:
        server.write(b"one")
        server.write(b"two")
        assert server._tempDataBuffer == [b"one", b"two"]
        assert server._tempDataLen == 6
        assert not server.dataBuffer and not server._writeDisconnecting
        compat._flush_tcp(server)
        assert theirs.recv(100) == b"onetwo"
        assert server._tempDataLen == 0 and not server.dataBuffer
    finally:
        server.socket.close()
        theirs.close()


def test_twisted_tls_aggregates_small_writes_in_a_flushable_buffer():
    from twisted.protocols.tls import (
        BufferingTLSTransport,
        TLSMemoryBIOProtocol,
        _AggregateSmallWrites,
    )

    assert "_aggregator" in BufferingTLSTransport.__init__.__code__.co_names
    assert callable(_AggregateSmallWrites.flush)
    assert BufferingTLSTransport.__mro__[1] is TLSMemoryBIOProtocol
    assert "write" in TLSMemoryBIOProtocol.__dict__


def test_tls_transport_private_names() -> None:
    """What tls_write_now and tls_read_directly read of Twisted's TLS transport and pyOpenSSL."""
    from OpenSSL.SSL import _ffi, _lib
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    made = TLSMemoryBIOProtocol.makeConnection.__code__.co_names
    for name in compat.TLS_TRANSPORT_PRIVATE:
        assert hasattr(TLSMemoryBIOProtocol, name) or name in made, name
    connection = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    for name in compat.PYOPENSSL_CONNECTION_PRIVATE:
        assert getattr(connection, name) not in (None, _ffi.NULL), name
    # BIO_get_mem_data counts the bytes waiting in a memory BIO.
    assert _lib.BIO_get_mem_data(connection._into_ssl, _ffi.NULL) == 0
    connection.bio_write(b"\x16\x03\x01")
    assert compat._bio_pending(connection._into_ssl) == 3


class _Received:
    """The protocol inside the TLS transport: what it got, and how it ended."""

    def __init__(self) -> None:
        from twisted.internet.protocol import Protocol

        self.data: list[bytes] = []
        self.lost: list[object] = []
        outer = self

        class Inner(Protocol):
            def dataReceived(self, data: bytes) -> None:  # noqa: N802
                outer.data.append(data)

            def connectionLost(self, reason: object = None) -> None:  # noqa: N802
                outer.lost.append(reason)

        self.protocol = Inner()


class _CountingReactor:
    """A MemoryReactor that counts the times a transport asked to be told it can write."""

    def __new__(cls):  # type: ignore[no-untyped-def]
        from twisted.internet.testing import MemoryReactor

        class Counting(MemoryReactor):
            write_registrations = 0

            def addWriter(self, writer):  # type: ignore[no-untyped-def]  # noqa: N802
                self.write_registrations += 1
                super().addWriter(writer)

        return Counting()


class _CountingConnection:
    """A pyOpenSSL Connection that counts the reads asked of it and the WantReadErrors raised."""

    def __init__(self, connection: SSL.Connection) -> None:
        self._connection = connection
        self.reads = 0
        self.want_read = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        try:
            return self._connection.recv(size)
        except SSL.WantReadError:
            self.want_read += 1
            raise

    def bio_read(self, size: int) -> bytes:
        try:
            return self._connection.bio_read(size)
        except SSL.WantReadError:
            self.want_read += 1
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


def _tls_over_tcp(tmp_path: Path):  # type: ignore[no-untyped-def]
    """
    Twisted's TLS server transport over a real TCP transport (one end of a
    socket pair), handshaken with a pyOpenSSL client on the other end:
    C{(tls, tcp transport, reactor, client, client socket, received)}.
    """
    from twisted.internet import tcp
    from twisted.internet.protocol import Factory as ProtocolFactory
    from twisted.internet.task import Clock
    from twisted.protocols.tls import TLSMemoryBIOFactory

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key)
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate_file(str(cert))
    context.use_privatekey_file(str(key))

    class _Legacy:
        def getContext(self) -> SSL.Context:  # noqa: N802
            return context

    received = _Received()
    factory = TLSMemoryBIOFactory(
        _Legacy(), False, ProtocolFactory.forProtocol(lambda: received.protocol), clock=Clock()
    )
    reactor = _CountingReactor()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)

    class _Port:
        sessionno = 0
        _realPortNumber = 1
        _type = "TCP"

        def getHost(self):  # type: ignore[no-untyped-def]  # noqa: N802
            return None

    tls = factory.buildProtocol(("127.0.0.1", 1))
    under = tcp.Server(ours, tls, ("127.0.0.1", 1), _Port(), 1, reactor)
    tls.makeConnection(under)
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    for _ in range(20):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            theirs.sendall(client.bio_read(65536))
        except SSL.WantReadError:
            pass
        if tls._handshakeDone and under.dataBuffer == b"" and not under._tempDataLen:
            break
        under.doRead()
        under.doWrite()
        theirs.settimeout(0.2)
        try:
            client.bio_write(theirs.recv(65536))
        except TimeoutError:
            pass
    client.do_handshake()
    assert tls._handshakeDone, "the in-memory handshake did not complete"
    return tls, under, reactor, client, theirs, received


def _records(client: SSL.Connection, *messages: bytes) -> bytes:
    out = b""
    for message in messages:
        client.send(message)
        out += client.bio_read(65536)
    return out


def test_tls_write_now_sends_one_record_at_once(tmp_path: Path) -> None:
    """A relayed write is one TLS record, in the peer's socket before any reactor turn."""
    tls, under, reactor, client, theirs, _ = _tls_over_tcp(tmp_path)
    try:
        registrations = reactor.write_registrations
        compat.tls_write_now(tls, b"\x81\x05hello")
        record = theirs.recv(65536)
        assert record[:3] == b"\x17\x03\x03"  # one application-data record...
        assert int.from_bytes(record[3:5], "big") == len(record) - 5  # ...and only one
        client.bio_write(record)
        assert client.recv(100) == b"\x81\x05hello"
        # straight to the socket: the reactor was never asked to wait for writability
        assert reactor.write_registrations == registrations
        assert under._tempDataLen == 0 and not under.dataBuffer
        # larger than a record: records of 16 KiB, all of it sent
        big = bytes(range(256)) * 160
        compat.tls_write_now(tls, big)
        got = b""
        while len(got) < len(big):
            client.bio_write(theirs.recv(65536))
            try:
                while True:
                    got += client.recv(65536)
            except SSL.WantReadError:
                pass
        assert got == big
    finally:
        under.socket.close()
        theirs.close()


def test_tls_read_directly_one_read_per_record(tmp_path: Path) -> None:
    """
    Whole records are decrypted with one read each and no WantReadError;
    a record in two pieces and several records in one piece arrive intact.
    """
    tls, under, reactor, client, theirs, received = _tls_over_tcp(tmp_path)
    try:
        received.data.clear()
        compat.tls_read_directly(tls)
        counting = _CountingConnection(tls._tlsConnection)
        tls._tlsConnection = counting
        tls.dataReceived(_records(client, b"one"))
        assert received.data == [b"one"]
        assert (counting.reads, counting.want_read) == (1, 0)
        tls.dataReceived(_records(client, b"two", b"three"))
        assert received.data == [b"one", b"two", b"three"]
        assert (counting.reads, counting.want_read) == (3, 0)
        split = _records(client, b"four")
        tls.dataReceived(split[:7])
        tls.dataReceived(split[7:])
        assert received.data[-1] == b"four"
        assert counting.want_read == 1  # the first half could not be read yet
    finally:
        under.socket.close()
        theirs.close()


def test_tls_read_directly_close_notify_and_garbage(tmp_path: Path) -> None:
    """close_notify and a broken record go through Twisted's own handling."""
    tls, under, reactor, client, theirs, received = _tls_over_tcp(tmp_path)
    try:
        compat.tls_read_directly(tls)
        client.shutdown()
        tls.dataReceived(client.bio_read(65536))
        assert tls._lostTLSConnection and under.disconnecting
    finally:
        under.socket.close()
        theirs.close()
    tls, under, reactor, client, theirs, received = _tls_over_tcp(tmp_path)
    try:
        compat.tls_read_directly(tls)
        record = bytearray(_records(client, b"x" * 40))
        record[-1] ^= 1  # the tag no longer matches
        tls.dataReceived(bytes(record))
        assert tls._lostTLSConnection and under.disconnecting
        assert received.data == []
    finally:
        under.socket.close()
        theirs.close()


# --- operator experience -----------------------------------------------------


def test_pool_makes_connection_factories_with_its_factory_attribute() -> None:
    """HTTPConnectionPool calls self._factory(quiescentCallback, metadata) per connection."""
    pool = web_client.HTTPConnectionPool(MemoryReactorClock(), persistent=False)
    assert pool._factory is web_client._HTTP11ClientFactory
    pool._factory = quiet_pool_factory  # type: ignore[assignment]
    factory = pool._factory(lambda p: None, "metadata")
    assert isinstance(factory, web_client._HTTP11ClientFactory)
    assert isinstance(factory, Factory) and factory.noisy is False
    # And a plain one is noisy: what the quiet one is for.
    assert web_client._HTTP11ClientFactory(lambda p: None, "m").noisy


def test_endpoint_service_keeps_its_listen_outcome() -> None:
    """StreamServerEndpointService keeps listen()'s Deferred in _waitingForPort."""
    reactor = MemoryReactorClock()
    service = StreamServerEndpointService(TCP4ServerEndpoint(reactor, 8080), Factory())
    assert listening_port(service) is None
    service.startService()
    assert service._waitingForPort is not None and service._waitingForPort.called
    port = listening_port(service)
    assert port is not None and port.getHost().port == 8080
    service.stopService()
    assert listening_port(service) is None

class H2ConnectionProbes(SynchronousTestCase):
    def test_private_handlers_exist(self):
        """Every private method H2ConnectionBase calls is still there, and is a method."""
        for name in H2_CONNECTION_PRIVATE:
            self.assertTrue(
                callable(getattr(H2Connection, name, None)), f"H2Connection.{name} is gone"
            )

    def test_connection_lost_takes_cancel_timeouts(self):
        """Twisted tears a connection down after its own errors with
        connectionLost(reason, _cancelTimeouts=False): LimitedH2Connection tells that apart."""
        parameters = inspect.signature(H2Connection.connectionLost).parameters
        self.assertIn("_cancelTimeouts", parameters)
        self.assertIn("_cancelTimeouts=False", inspect.getsource(H2Connection._terminate))

    def test_our_attribute_names_are_not_twisteds(self):
        """LimitedH2Connection's own attributes do not shadow any of Twisted's."""
        twisted_names = set(vars(H2Connection(MemoryReactorClock()))) | set(dir(H2Connection))
        ours = set(vars(LimitedH2Connection(LimitsConfig(), MemoryReactorClock())))
        ours -= set(vars(H2Connection(MemoryReactorClock())))
        self.assertTrue(ours)
        self.assertEqual(ours & twisted_names, set())
        base_methods = {n for n in vars(H2ConnectionBase) if not n.startswith("__")}
        self.assertEqual(base_methods & set(dir(H2Connection)), set())

    def test_handlers_serve_a_request(self):
        """The handlers behind open_stream, stream_data, stream_ended, stream_reset and
        forget_stream do what H2ConnectionBase says: a stream and its request are made,
        the body reaches it, the end processes it; a reset or forget drops the stream."""
        clock = MemoryReactorClock()
        processed: list[bytes] = []

        class Recording(Request):
            def process(self) -> None:
                processed.append(self.content.read())

        connection = H2ConnectionBase(clock)
        connection.requestFactory = Recording
        connection.site = Site(None)  # type: ignore[arg-type]
        transport = StringTransport()
        connection.makeConnection(transport)
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        head = [(":method", "POST"), (":path", "/"), (":authority", "x"), (":scheme", "https")]
        client.send_headers(1, head)
        client.send_data(1, b"body", end_stream=True)
        client.send_headers(3, head)
        events = connection.conn.receive_data(client.data_to_send())
        kinds: dict[type, object] = {}
        for event in events:
            kinds.setdefault(type(event), event)
        connection.open_stream(kinds[h2.events.RequestReceived])
        self.assertIn(1, connection.streams)
        connection.stream_data(kinds[h2.events.DataReceived])
        connection.stream_ended(kinds[h2.events.StreamEnded])
        self.assertEqual(processed, [b"body"])
        request_3 = [e for e in events if isinstance(e, h2.events.RequestReceived)][1]
        connection.open_stream(request_3)
        client.reset_stream(3)
        (reset,) = connection.conn.receive_data(client.data_to_send())
        connection.stream_reset(reset)
        self.assertNotIn(3, connection.streams)
        connection.forget_stream(1)
        self.assertNotIn(1, connection.streams)
        self.assertTrue(connection.flush_control())


def test_the_proxy_imports_without_h2() -> None:
    """Without twisted[http2] (h2, priority) the proxy still imports and offers no HTTP/2."""
    code = (
        "import sys; sys.modules['h2'] = sys.modules['priority'] = None\n"
        "import twisted_lb.compat, twisted_lb.frontend, twisted_lb.service\n"
        "from twisted_lb.tls import h2_available\n"
        "assert not h2_available()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------
# HTTP members (twisted_lb.backends.http): the response parser of Twisted's
# HTTP/1.1 client, kept in HTTP11ClientProtocol._parser.
# ---------------------------------------------------------------------------


class HTTPMemberParserProbes(SynchronousTestCase):
    """on_raw_response_field sees each raw field before Twisted stores it."""

    def _request(self) -> tuple[HTTP11ClientProtocol, StringTransport, Deferred]:
        proto = HTTP11ClientProtocol()
        transport = StringTransport()
        proto.makeConnection(transport)
        d = proto.request(ClientRequest(b"GET", b"/", ClientHeaders({b"host": [b"member"]}), None))
        return proto, transport, d

    def test_raw_fields_and_a_refusal(self) -> None:
        """
        The check gets each field as the member sent it (a CR inside a value
        kept, which Twisted's Headers would turn into a space); what it
        raises fails the response as a broken one and closes the connection.
        """
        proto, transport, d = self._request()
        self.assertIsNotNone(proto._parser, "HTTP11ClientProtocol._parser is gone")
        seen = []

        def check(name: bytes, value: bytes) -> None:
            seen.append((name, value))
            if b"\r" in value:
                raise ValueError("bare CR")

        compat.on_raw_response_field(proto, check)
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: a\rb\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(seen, [(b"X-A", b"1"), (b"X-B", b"a\rb")])
        failure = self.failureResultOf(d, ResponseFailed)
        self.assertTrue(any(r.check(ValueError) for r in failure.value.reasons))
        self.assertTrue(transport.disconnecting)

    def test_fields_kept_when_accepted(self) -> None:
        """A check that raises nothing leaves the response as Twisted makes it."""
        proto, _, d = self._request()
        compat.on_raw_response_field(proto, lambda name, value: None)
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
        response = self.successResultOf(d)
        self.assertEqual(response.headers.getRawHeaders(b"x-a"), [b"1"])


# --- end of the HTTP members section ----------------------------------------


# -- HTTP/2 stream -> connection (Twisted) --------------------------------------


def test_h2_stream_has_its_connection_and_no_transport() -> None:
    """An H2Stream (a request's channel) keeps its H2Connection in _conn; its transport is None."""
    from twisted.internet.testing import StringTransport
    from twisted.web._http2 import H2Connection, H2Stream
    from twisted.web.http import Request

    from twisted_lb.compat import h2_connection_of

    connection = H2Connection()
    connection.transport = StringTransport()
    headers = [
        (b":method", b"GET"),
        (b":path", b"/"),
        (b":authority", b"a"),
        (b":scheme", b"https"),
    ]
    stream = H2Stream(1, connection, headers, Request, None, None)
    assert stream.transport is None
    assert h2_connection_of(stream) is connection
    assert h2_connection_of(object()) is None


# -- end of HTTP/2 stream -> connection ------------------------------------------


# ---------------------------------------------------------------------------
# Twisted: twisted.web's HTTPChannel, borrowed by the fast lane between requests
# ---------------------------------------------------------------------------


def _http_channel() -> http.HTTPChannel:
    channel = http.HTTPChannel()
    channel.makeConnection(StringTransport())
    return channel


def test_http_channel_private_names_exist_on_a_live_channel() -> None:
    channel = _http_channel()
    for name in compat.HTTP_CHANNEL_PRIVATE_NAMES:
        assert hasattr(channel, name), f"twisted.web's HTTPChannel has no {name} any more"


def test_http_channel_between_requests_follows_what_it_parses() -> None:
    channel = _http_channel()
    assert compat.channel_between_requests(channel)
    assert compat.channel_expects_request_line(channel)
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    assert not compat.channel_expects_request_line(channel)
    assert not compat.channel_between_requests(channel)
    partial = _http_channel()
    partial.dataReceived(b"GET / HT")
    assert not compat.channel_between_requests(partial)


def test_http_channel_holds_what_arrives_while_busy_and_gives_it_back() -> None:
    channel = _http_channel()
    compat.channel_hold(channel)
    channel.setRawMode()
    channel.dataReceived(b"GET /next HTTP/1.1\r\n")
    compat.channel_hold_bytes(channel, b"Host: x\r\n\r\n")
    assert channel.transport.producerState == "paused"
    assert channel.requests == []
    assert compat.channel_release(channel) == b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    assert compat.channel_release(channel) == b""


# --- end of the HTTPChannel section --------------------------------------------


class _Refusing:
    """A server endpoint whose listen fails at once, as a port in use does."""

    def listen(self, factory: Factory):
        from twisted.internet import defer

        return defer.fail(CannotListenError("127.0.0.1", 8080, OSError(98, "in use")))


def test_endpoint_service_raises_listen_errors_when_told() -> None:
    """_raiseSynchronously makes privilegedStartService raise the listen failure."""
    assert StreamServerEndpointService._raiseSynchronously is False
    service = StreamServerEndpointService(_Refusing(), Factory())
    raise_listen_errors(service)
    with pytest.raises(CannotListenError):
        service.privilegedStartService()
