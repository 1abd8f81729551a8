"""
Probes of what twisted_lb.compat relies on in Twisted's and Autobahn's
private parts: each fails loudly when a release changes it.
"""

from __future__ import annotations

import inspect

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from twisted_lb import compat

from .websocket.conftest import txaio_clock  # noqa: F401,E402  (no timer on the global reactor)
from .websocket.memory import SocketTransport

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
    import socket

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
