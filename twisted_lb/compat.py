"""
The one place that reaches into private attributes of Twisted, Autobahn or
pyOpenSSL. Each use has a probe in C{tests/test_compat.py} that fails
loudly when a release changes what it relies on.

Sections belong to the parts of twisted_lb that need them; keep each in its
own commented block.
"""

from __future__ import annotations

from typing import Any

__all__ = ["h2_connection_of", "tls_session_id"]


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


# -- HTTP/2 stream -> connection (Twisted) --------------------------------------
#
# A request over HTTP/2 has an H2Stream as its channel, whose transport is
# None: the TLS connection (for AJP's SSL attributes) is its H2Connection's,
# which Twisted keeps in the private _conn.


def h2_connection_of(channel: Any) -> Any | None:
    """
    The C{H2Connection} of a request's channel when it is Twisted's
    C{H2Stream}, else C{None}.
    """
    return getattr(channel, "_conn", None)


# -- end of HTTP/2 stream -> connection ------------------------------------------
