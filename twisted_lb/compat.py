"""
The one place that reaches into private attributes of Twisted, Autobahn or
pyOpenSSL. Each use has a probe in C{tests/test_compat.py} that fails
loudly when a release changes what it relies on.

Sections belong to the parts of twisted_lb that need them; keep each in its
own commented block, saying which release it was written against.
"""

from __future__ import annotations

from typing import Any

from twisted.web._http2 import H2Connection

__all__ = [
    "H2Connection",
    "switch_to_http2",
    "tls_session_id",
    "autobahn_feed",
    "autobahn_fail",
    "autobahn_take_received",
    "autobahn_put_received",
    "on_raw_response_field",
]


# ---------------------------------------------------------------------------
# HTTP/2 (twisted_lb.http2): the HTTP/1.1-or-HTTP/2 switch of twisted.web
# (_GenericHTTPChannelProtocol) and Twisted's H2Connection.
# ---------------------------------------------------------------------------


def switch_to_http2(generic: Any, connection: Any) -> None:
    """
    Make C{connection} serve a TLS connection that negotiated C{h2}, in
    place of the HTTP/1.1 channel of twisted.web's switch
    (C{_GenericHTTPChannelProtocol}), as that switch does itself with
    Twisted's own C{H2Connection}.

    @param generic: the C{_GenericHTTPChannelProtocol}, before it saw any byte.
    @param connection: the HTTP/2 connection (an C{H2Connection}) that takes over.
    """
    channel = generic._channel
    network_producer = channel._networkProducer
    network_producer.unregisterProducer()
    channel.setTimeout(None)
    transport = channel.transport
    connection.requestFactory = generic._requestFactory
    connection.site = generic._site
    connection.factory = generic._factory
    connection.timeOut = generic._timeOut
    connection.callLater = generic._callLater
    generic._channel = connection
    generic._negotiatedProtocol = b"h2"
    connection.makeConnection(transport)
    network_producer.registerProducer(connection, True)
# -- TLS session id (pyOpenSSL) ----------------------------------------------
#
# pyOpenSSL has no accessor for a session's id, and the bindings it uses
# (cryptography's) do not export SSL_SESSION_get_id. i2d_SSL_SESSION does:
# the DER form of a session (OpenSSL's SSL_SESSION_ASN1) starts
# SEQUENCE { version INTEGER, ssl_version INTEGER, cipher OCTET STRING,
# session_id OCTET STRING, master_key OCTET STRING, ... }; the id is read
# from it and the rest (the master key) is dropped at once. Used for AJP's
# ssl_session attribute (Apache's SSL_SESSION_ID).


def _der_item(data: bytes, offset: int) -> tuple[int, int, int]:
    """The tag, the start of the value and its end, of the DER item at C{offset}."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, offset, end


def tls_session_id(connection: Any) -> bytes | None:
    """
    The id of the TLS session of a pyOpenSSL C{Connection}, in upper-case
    hex as Apache's C{SSL_SESSION_ID}, or C{None} when there is none.
    """
    from OpenSSL.SSL import _ffi, _lib

    session = _lib.SSL_get_session(connection._ssl)
    if session == _ffi.NULL:
        return None
    size = _lib.i2d_SSL_SESSION(session, _ffi.NULL)
    if size <= 0:
        return None
    buffer = _ffi.new("unsigned char[]", size)
    pointer = _ffi.new("unsigned char **", buffer)
    if _lib.i2d_SSL_SESSION(session, pointer) != size:
        return None
    der = bytes(_ffi.buffer(buffer, size))
    try:
        tag, offset, end = _der_item(der, 0)
        if tag != 0x30:
            return None
        for expected in (0x02, 0x02, 0x04):  # version, ssl_version, cipher
            tag, _, offset = _der_item(der, offset)
            if tag != expected:
                return None
        tag, start, stop = _der_item(der, offset)
    except (ValueError, IndexError):
        return None
    finally:
        _ffi.memmove(buffer, b"\0" * size, size)
    if tag != 0x04 or start == stop:
        return None
    return der[start:stop].hex().upper().encode("ascii")


# -- end of TLS session id -----------------------------------------------------


# ---------------------------------------------------------------------------
# Autobahn (26.11.1): the WebSocket frame relay (twisted_lb.websocket).
#
# Autobahn does the opening and closing handshakes of both legs of a tunnel;
# between them the relay reads the bytes itself. It hands Autobahn the bytes
# from a close frame on, takes the bytes Autobahn buffered past a handshake,
# and lets Autobahn fail a connection with a close code.
# ---------------------------------------------------------------------------


def autobahn_feed(protocol: Any, data: bytes) -> None:
    """Let Autobahn's own parser process C{data} received on C{protocol}."""
    protocol._dataReceived(data)


def autobahn_take_received(protocol: Any) -> bytes:
    """The bytes C{protocol} received and has not processed; it forgets them."""
    data: bytes = protocol.data
    protocol.data = b""
    return data


def autobahn_put_received(protocol: Any, data: bytes) -> None:
    """Replace the bytes C{protocol} received and has not processed yet."""
    protocol.data = data


def autobahn_fail(protocol: Any, code: int, reason: str) -> None:
    """
    Fail C{protocol}'s WebSocket connection as Autobahn does on a protocol
    violation: a close frame with C{code}, then the close handshake.
    """
    protocol._fail_connection(code, reason)


# --- end of the Autobahn section --------------------------------------------


# ---------------------------------------------------------------------------
# HTTP members (twisted_lb.backends.http), Twisted 26.10: the response parser
# of twisted.web's HTTP/1.1 client (twisted.web._newclient).
#
# Twisted's Headers replace CR and LF inside a field with spaces as they
# store it; a member's raw field is seen only by the parser's
# headerReceived, on the parser HTTP11ClientProtocol keeps in _parser while
# a response is read.
# ---------------------------------------------------------------------------


def on_raw_response_field(protocol: Any, check: Any) -> None:
    """
    Have C{check(name, value)} called with each raw header field of the
    response C{protocol} (an C{HTTP11ClientProtocol} whose request was just
    issued) reads, before Twisted stores it; an exception C{check} raises
    fails the response as a broken one (C{ResponseFailed}) and closes the
    connection.
    """
    parser = protocol._parser
    if parser is None:
        return
    store = parser.headerReceived

    def checked(name: bytes, value: bytes) -> None:
        check(name, value)
        store(name, value)

    parser.headerReceived = checked


# --- end of the HTTP members section ----------------------------------------
