"""
Probes of what twisted_lb.compat relies on in other projects' private
attributes: each fails loudly when a release changes it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from OpenSSL import SSL

from twisted_lb.compat import tls_session_id
from twisted_lb.tls import make_self_signed

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
