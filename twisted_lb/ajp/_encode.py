"""
Encoding of AJP/1.3 messages into whole packets (header included).

This module knows message layouts only; which message may be sent when is
the business of L{twisted_lb.ajp._connection}.
"""

from __future__ import annotations

import struct

from . import _constants as C
from ._constants import MAX_STRING_LENGTH
from ._framing import frame
from ._wire import NULL_STRING, pack_u16, put_bytes, put_int
from .errors import AJPProtocolError, LocalProtocolError, RequestTooLarge
from .events import (
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    RequestBody,
    SendBodyChunk,
    SendHeaders,
)

__all__ = [
    "CPING_PACKET",
    "CPONG_PACKET",
    "PING_PACKET",
    "SHUTDOWN_PACKET",
    "encode_end_response",
    "encode_forward_request",
    "encode_get_body_chunk",
    "encode_request_body",
    "encode_send_body_chunk",
    "encode_send_headers",
    "parse_content_length",
]

_BODY_HEADER = struct.Struct(">HHH")  # magic, payload length, data length
_CHUNK_HEADER = struct.Struct(">HHBH")  # magic, payload length, type, data length
_GET_BODY_CHUNK = struct.Struct(">HHBH")
_NUL = b"\x00"

# Whole packets that never vary.
CPING_PACKET = b"\x12\x34\x00\x01\x0a"
CPONG_PACKET = b"\x41\x42\x00\x01\x09"
SHUTDOWN_PACKET = b"\x12\x34\x00\x01\x07"
PING_PACKET = b"\x12\x34\x00\x01\x08"
EMPTY_BODY_PACKET = b"\x12\x34\x00\x00"
FLUSH_PACKET = b"\x41\x42\x00\x04\x03\x00\x00\x00"
END_REUSE_PACKET = b"\x41\x42\x00\x02\x05\x01"
END_CLOSE_PACKET = b"\x41\x42\x00\x02\x05\x00"

_FR_PREFIX = {code: bytes((C.FORWARD_REQUEST, code)) for code in range(256)}

#: String attributes in encoding order: code byte, L{ForwardRequest} field.
_STRING_ATTRIBUTES = (
    (b"\x03", "remote_user"),
    (b"\x04", "auth_type"),
    (b"\x05", "query_string"),
    (b"\x06", "route"),
    (b"\x07", "ssl_cert"),
    (b"\x08", "ssl_cipher"),
    (b"\x09", "ssl_session"),
)
#: Attribute code to L{ForwardRequest} field, for decoding.


def parse_content_length(value: bytes, previous: int | None, error: type[AJPProtocolError]) -> int:
    """
    Parse one Content-Length value.

    @param value: the header value.
    @param previous: the value of an earlier Content-Length header, if any.
    @param error: the exception class to raise.
    @return: the length.
    @raise AJPProtocolError: (of class C{error}) if the value is not a plain
        decimal number or the header is repeated (Tomcat answers 400 to both).
    """
    digits = value.strip(b" \t")
    if not digits.isdigit():
        raise error(f"invalid Content-Length {value!r}", 400)
    if previous is not None:
        raise error("more than one Content-Length header", 400)
    return int(digits)


def encode_forward_request(req: ForwardRequest, packet_size: int) -> tuple[bytes, int | None]:
    """
    Encode a FORWARD_REQUEST packet.

    Attributes go in ascending code order (remote_user, auth_type,
    query_string, route, ssl_cert, ssl_cipher, ssl_session, ssl_key_size,
    secret, stored_method) and then the request attributes in the given
    order; Tomcat does not care about the order.

    @param req: the request.
    @param packet_size: the maximum packet size.
    @return: the packet and the declared Content-Length (C{None} if absent).
    @raise RequestTooLarge: if the packet would exceed C{packet_size}.
    @raise LocalProtocolError: if a field cannot be encoded, the request has
        a Transfer-Encoding header (AJP has no chunked framing: send no
        Content-Length and answer GET_BODY_CHUNK instead), or Content-Length
        is invalid or repeated.
    """
    try:
        payload, length = _encode_forward_request(req)
    except (TypeError, ValueError, AttributeError, struct.error) as e:
        raise LocalProtocolError(f"cannot encode FORWARD_REQUEST: {e}") from e
    if len(payload) > packet_size - C.HEADER_LENGTH:
        needed = len(payload) + C.HEADER_LENGTH
        uri_alone = C.HEADER_LENGTH + 2 + len(req.req_uri) + 3
        if req.query_string is not None:
            uri_alone += 1 + len(req.query_string) + 3
        raise RequestTooLarge(needed, packet_size, 414 if uri_alone > packet_size else 431)
    return frame(C.PROXY_MAGIC, payload), length


def _encode_forward_request(req: ForwardRequest) -> tuple[bytes, int | None]:
    """
    Build a FORWARD_REQUEST payload without a size check.

    @param req: the request.
    @return: the payload and the declared Content-Length.
    """
    method = req.method
    code = C.METHOD_CODES.get(method)
    if code is None:
        if not isinstance(method, bytes) or not method:
            raise LocalProtocolError(f"invalid method {method!r}")
        code = C.SC_M_JK_STORED
    # Strings are appended inline (length, bytes, NUL) rather than through
    # _wire.put_bytes: this runs for every request. A non-bytes value fails
    # in len() or in the join (TypeError, turned into LocalProtocolError by
    # the caller); a string too long for AJP is refused here.
    pack = pack_u16
    nul = _NUL
    parts: list[bytes] = [_FR_PREFIX[code]]
    for value in (req.protocol, req.req_uri, req.remote_addr):
        n = len(value)
        if n > MAX_STRING_LENGTH:
            raise _too_long(n)
        parts += (pack(n), value, nul)
    remote_host = req.remote_host
    if remote_host is None:
        parts.append(NULL_STRING)
    else:
        put_bytes(parts.append, remote_host)
    value = req.server_name
    n = len(value)
    if n > MAX_STRING_LENGTH:
        raise _too_long(n)
    headers = req.headers
    parts += (
        pack(n), value, nul, pack(req.server_port), b"\x01" if req.is_ssl else b"\x00",
        pack(len(headers)),
    )
    length = None
    codes = C.REQUEST_HEADER_CODES
    for name, value in headers:
        lower = name.lower()
        coded = codes.get(lower)
        if coded is not None:
            parts.append(coded)
            if coded == C.CONTENT_LENGTH_CODE:
                length = parse_content_length(value, length, LocalProtocolError)
        else:
            n = len(name)
            if n > C.MAX_HEADER_NAME_LENGTH:
                raise LocalProtocolError(f"header name of {n} bytes is too long")
            if lower == b"transfer-encoding":
                raise LocalProtocolError(
                    "AJP cannot carry Transfer-Encoding; send the body without "
                    "Content-Length and answer GET_BODY_CHUNK instead"
                )
            parts += (pack(n), name, nul)
        n = len(value)
        if n > MAX_STRING_LENGTH:
            raise _too_long(n)
        parts += (pack(n), value, nul)
    append = parts.append
    for attribute, field in _STRING_ATTRIBUTES:
        value = getattr(req, field)
        if value is not None:
            append(attribute)
            put_bytes(append, value)
    if req.ssl_key_size is not None:
        append(b"\x0b")
        put_int(append, req.ssl_key_size)
    if req.secret is not None:
        append(b"\x0c")
        put_bytes(append, req.secret)
    if code == C.SC_M_JK_STORED:
        append(b"\x0d")
        put_bytes(append, method)
    for name, value in req.request_attributes:
        append(b"\x0a")
        put_bytes(append, name)
        put_bytes(append, value)
    append(b"\xff")
    return b"".join(parts), length


def _too_long(n: int) -> LocalProtocolError:
    return LocalProtocolError(f"string of {n} bytes is too long for AJP")


def encode_request_body(event: RequestBody) -> bytes:
    """
    Encode a request body packet (no type byte, no trailing NUL).

    @param event: the body chunk; its size was checked by the caller.
    @return: the packet; C{12 34 00 00} for the empty chunk.
    """
    data = event.data
    n = len(data)
    if not n:
        return EMPTY_BODY_PACKET
    return _BODY_HEADER.pack(C.PROXY_MAGIC, n + 2, n) + data


def encode_send_headers(event: SendHeaders, packet_size: int) -> bytes:
    """
    Encode SEND_HEADERS; exact-case well-known names are coded, like Tomcat.

    @param event: the response head.
    @param packet_size: the maximum packet size.
    @return: the packet.
    @raise LocalProtocolError: if it cannot be encoded or does not fit.
    """
    parts: list[bytes] = [b"\x04"]
    append = parts.append
    try:
        put_int(append, event.status)
        put_bytes(append, event.reason)
        put_int(append, len(event.headers))
        codes = C.RESPONSE_HEADER_CODES
        for name, value in event.headers:
            coded = codes.get(name)
            if coded is None:
                if len(name) > C.MAX_HEADER_NAME_LENGTH:
                    raise LocalProtocolError(f"header name of {len(name)} bytes is too long")
                put_bytes(append, name)
            else:
                append(coded)
            put_bytes(append, value)
    except (TypeError, ValueError) as e:
        raise LocalProtocolError(f"cannot encode SEND_HEADERS: {e}") from e
    payload = b"".join(parts)
    if len(payload) > packet_size - C.HEADER_LENGTH:
        raise LocalProtocolError(
            f"SEND_HEADERS needs {len(payload) + C.HEADER_LENGTH} bytes "
            f"but the packet size is only {packet_size}"
        )
    return frame(C.CONTAINER_MAGIC, payload)


def encode_send_body_chunk(event: SendBodyChunk) -> bytes:
    """
    Encode SEND_BODY_CHUNK (data followed by one NUL).

    @param event: the chunk; its size was checked by the caller.
    @return: the packet.
    """
    data = event.data
    n = len(data)
    if not n:
        return FLUSH_PACKET
    return _CHUNK_HEADER.pack(C.CONTAINER_MAGIC, n + 4, C.SEND_BODY_CHUNK, n) + data + _NUL


def encode_get_body_chunk(event: GetBodyChunk) -> bytes:
    """
    Encode GET_BODY_CHUNK.

    @param event: the request for body bytes.
    @return: the packet.
    @raise LocalProtocolError: if the length is not in 0..65535.
    """
    try:
        return _GET_BODY_CHUNK.pack(C.CONTAINER_MAGIC, 3, C.GET_BODY_CHUNK, event.length)
    except struct.error as e:
        raise LocalProtocolError(f"invalid GET_BODY_CHUNK length {event.length!r}") from e


def encode_end_response(event: EndResponse) -> bytes:
    """
    Encode END_RESPONSE.

    @param event: the end of the response.
    @return: the packet.
    """
    return END_REUSE_PACKET if event.reuse else END_CLOSE_PACKET
