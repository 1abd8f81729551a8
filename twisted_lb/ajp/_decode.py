"""
Decoding of AJP/1.3 message payloads into events.

The decoders take one payload (header stripped, as returned by
L{twisted_lb.ajp._framing.PacketReader}) and raise L{RemoteProtocolError} on
any malformation; which message may arrive when is the business of
L{twisted_lb.ajp._connection}.
"""

from __future__ import annotations

from collections.abc import Callable

from . import _constants as C
from ._encode import parse_content_length
from ._wire import U16, Buffer, expect_end, read_bool, read_bytes, read_int, read_string
from .errors import RemoteProtocolError
from .events import (
    CPing,
    CPong,
    EndResponse,
    Event,
    ForwardRequest,
    GetBodyChunk,
    Ping,
    RequestBody,
    SendBodyChunk,
    SendHeaders,
    Shutdown,
)

__all__ = [
    "content_length_of",
    "decode_container_message",
    "decode_forward_request",
    "decode_proxy_message",
    "decode_request_body",
]

_unpack_u16 = U16.unpack_from
# Shared immutable events returned by the decoders.
_CPING = CPing()
_CPONG = CPong()
_SHUTDOWN = Shutdown()
_PING = Ping()
_FLUSH = SendBodyChunk(b"")
_END_REUSE = EndResponse(True)
_END_CLOSE = EndResponse(False)
_EMPTY_BODY = RequestBody(b"")

#: String attribute code to L{ForwardRequest} field.
_STRING_ATTRIBUTES = {
    C.SC_A_REMOTE_USER: "remote_user",
    C.SC_A_AUTH_TYPE: "auth_type",
    C.SC_A_QUERY_STRING: "query_string",
    C.SC_A_ROUTE: "route",
    C.SC_A_SSL_CERT: "ssl_cert",
    C.SC_A_SSL_CIPHER: "ssl_cipher",
    C.SC_A_SSL_SESSION: "ssl_session",
    C.SC_A_SECRET: "secret",
}
_IGNORED_ATTRIBUTES = frozenset((C.SC_A_CONTEXT, C.SC_A_SERVLET_PATH))


def content_length_of(headers: tuple[tuple[bytes, bytes], ...]) -> int | None:
    """
    Find the request body length declared by received headers.

    @param headers: the decoded request headers.
    @return: the length, or C{None} without a Content-Length header.
    @raise RemoteProtocolError: if the header is invalid or repeated.
    """
    length = None
    for name, value in headers:
        if name.lower() == b"content-length":
            length = parse_content_length(value, length, RemoteProtocolError)
    return length


def _read_headers(
    p: Buffer, offset: int, names: dict[int, bytes], what: str
) -> tuple[tuple[tuple[bytes, bytes], ...], int]:
    """
    Read a header count and that many C{(name, value)} pairs.

    A name is either a code (an integer C{0xA0nn}) or a string; a null value
    is read as empty, like Tomcat does.

    @param p: the payload.
    @param offset: where the header count is.
    @param names: header code to name.
    @param what: C{"request"} or C{"response"}, for errors.
    @return: the headers and the offset after them.
    @raise RemoteProtocolError: on truncation, a null name or an unknown code.
    """
    count, offset = read_int(p, offset)
    headers = []
    size = len(p)
    unpack = _unpack_u16
    # Strings are read inline while they are well formed; at the first sign
    # of trouble the checked readers of _wire read them again and raise the
    # precise error.
    for _ in range(count):
        if offset + 2 > size:
            raise RemoteProtocolError(f"truncated {what} header name at payload offset {offset}")
        n = unpack(p, offset)[0]
        if n & 0xFF00 == 0xA000:
            name = names.get(n)
            if name is None:
                raise RemoteProtocolError(f"unknown {what} header code {n:#06x}")
            offset += 2
        else:
            stop = offset + 2 + n
            if n != 0xFFFF and stop < size and p[stop] == 0:
                name = bytes(p[offset + 2 : stop])
                offset = stop + 1
            else:
                string, offset = read_string(p, offset)
                if string is None:
                    raise RemoteProtocolError(f"null {what} header name")
                name = string
        if offset + 2 <= size:
            n = unpack(p, offset)[0]
            stop = offset + 2 + n
            if n != 0xFFFF and stop < size and p[stop] == 0:
                headers.append((name, bytes(p[offset + 2 : stop])))
                offset = stop + 1
                continue
        value, offset = read_bytes(p, offset)
        headers.append((name, value))
    return tuple(headers), offset


def decode_request_body(payload: Buffer) -> RequestBody:
    """
    Decode a request body packet (proxy to container).

    Both the empty payload (C{12 34 00 00}, what httpd and mod_jk send) and a
    payload holding a zero data length are the end of the body.

    @param payload: the payload.
    @return: the body chunk.
    @raise RemoteProtocolError: if the data length disagrees with the payload.
    """
    if not payload:
        return _EMPTY_BODY
    n, offset = read_int(payload, 0)
    if offset + n != len(payload):
        raise RemoteProtocolError(
            f"request body declares {n} bytes in a payload of {len(payload)} bytes"
        )
    return RequestBody(bytes(payload[offset:])) if n else _EMPTY_BODY


def decode_forward_request(p: Buffer) -> ForwardRequest:
    """
    Decode a FORWARD_REQUEST payload.

    Attributes 0x01 (context) and 0x02 (servlet_path) are read and ignored,
    like Tomcat does.  A stored method (0x0D) overrides the method byte,
    again like Tomcat.

    @param p: the payload, type byte included.
    @return: the request.
    @raise RemoteProtocolError: on any malformation.
    """
    if len(p) < 2:
        raise RemoteProtocolError("truncated FORWARD_REQUEST")
    code = p[1]
    protocol, offset = read_bytes(p, 2)
    req_uri, offset = read_bytes(p, offset)
    remote_addr, offset = read_bytes(p, offset)
    remote_host, offset = read_string(p, offset)
    server_name, offset = read_bytes(p, offset)
    server_port, offset = read_int(p, offset)
    is_ssl, offset = read_bool(p, offset)
    headers, offset = _read_headers(p, offset, C.REQUEST_HEADER_NAMES, "request")
    size = len(p)
    fields: dict[str, object] = {}
    stored = None
    attributes = []
    while True:
        if offset >= size:
            raise RemoteProtocolError("FORWARD_REQUEST lacks its 0xFF terminator")
        attribute = p[offset]
        offset += 1
        if attribute == C.SC_A_ARE_DONE:
            break
        field = _STRING_ATTRIBUTES.get(attribute)
        if field is not None:
            fields[field], offset = read_string(p, offset)
        elif attribute == C.SC_A_REQ_ATTRIBUTE:
            name, offset = read_bytes(p, offset)
            value, offset = read_bytes(p, offset)
            attributes.append((name, value))
        elif attribute == C.SC_A_SSL_KEY_SIZE:
            fields["ssl_key_size"], offset = read_int(p, offset)
        elif attribute == C.SC_A_STORED_METHOD:
            stored, offset = read_string(p, offset)
        elif attribute in _IGNORED_ATTRIBUTES:
            _, offset = read_string(p, offset)
        else:
            raise RemoteProtocolError(f"unknown FORWARD_REQUEST attribute {attribute:#04x}")
    expect_end(p, offset, "FORWARD_REQUEST")
    if stored:
        method = stored
    elif code == C.SC_M_JK_STORED:
        raise RemoteProtocolError("method code 0xFF without a stored method attribute")
    else:
        method = C.METHOD_NAMES.get(code)  # type: ignore[assignment]
        if method is None:
            raise RemoteProtocolError(f"unknown method code {code:#04x}")
    return ForwardRequest(
        method,
        req_uri,
        protocol,
        remote_addr,
        remote_host,
        server_name,
        server_port,
        is_ssl,
        headers,
        request_attributes=tuple(attributes),
        **fields,  # type: ignore[arg-type]
    )


def _decode_send_headers(p: Buffer) -> SendHeaders:
    """
    Decode a SEND_HEADERS payload; coded names become canonical names.

    @param p: the payload, type byte included.
    @return: the response head.
    @raise RemoteProtocolError: on any malformation or header code outside
        0xA001..0xA00B.
    """
    # One copy of the (small) head, so that strings are sliced from bytes.
    p = bytes(p)
    status, offset = read_int(p, 1)
    reason, offset = read_bytes(p, offset)
    headers, offset = _read_headers(p, offset, C.RESPONSE_HEADER_NAMES, "response")
    expect_end(p, offset, "SEND_HEADERS")
    return SendHeaders(status, reason, headers)


def _decode_send_body_chunk(p: Buffer) -> SendBodyChunk:
    """
    Decode a SEND_BODY_CHUNK payload.

    @param p: the payload, type byte included.
    @return: the chunk.
    @raise RemoteProtocolError: as L{send_body_chunk_data}.
    """
    data = send_body_chunk_data(p)
    if not data:
        return _FLUSH
    return SendBodyChunk(data)


def send_body_chunk_data(p: Buffer) -> Buffer:
    """
    The data of a SEND_BODY_CHUNK payload (empty for a flush).

    The payload must be exactly type, length, data and one C{0x00}.  A
    payload lacking only the trailing NUL is tolerated (some containers omit
    it); any other disagreement between the declared length and the payload
    is an error.

    @param p: the payload, type byte included.
    @return: a memoryview of the received segment when the packet came whole
        (the body is not copied here: the proxy copies at most once, when it
        writes).
    @raise RemoteProtocolError: if the length does not match the payload.
    """
    n, _ = read_int(p, 1)
    size = len(p)
    if size == n + 4:
        if p[-1] != 0:
            raise RemoteProtocolError("SEND_BODY_CHUNK does not end with 0x00")
    elif size != n + 3:
        raise RemoteProtocolError(
            f"SEND_BODY_CHUNK declares {n} bytes in a payload of {size} bytes"
        )
    return p[3 : 3 + n]


def _decode_get_body_chunk(p: Buffer) -> GetBodyChunk:
    """
    @param p: the payload, type byte included.
    @return: the decoded GET_BODY_CHUNK.
    @raise RemoteProtocolError: if the payload is not 3 bytes long.
    """
    length, offset = read_int(p, 1)
    expect_end(p, offset, "GET_BODY_CHUNK")
    return GetBodyChunk(length)


def _decode_end_response(p: Buffer) -> EndResponse:
    """
    @param p: the payload, type byte included.
    @return: the decoded END_RESPONSE.
    @raise RemoteProtocolError: if the payload is not 2 bytes long.
    """
    reuse, offset = read_bool(p, 1)
    expect_end(p, offset, "END_RESPONSE")
    return _END_REUSE if reuse else _END_CLOSE


def _singleton(event: Event, name: str) -> Callable[[Buffer], Event]:
    """
    Build the decoder of a message that has no field.

    @param event: the event to return.
    @param name: the message name, for errors.
    @return: the decoder.
    """

    def decode(p: Buffer) -> Event:
        expect_end(p, 1, name)
        return event

    return decode


_CONTAINER_DECODERS: dict[int, Callable[[Buffer], Event]] = {
    C.SEND_BODY_CHUNK: _decode_send_body_chunk,
    C.SEND_HEADERS: _decode_send_headers,
    C.END_RESPONSE: _decode_end_response,
    C.GET_BODY_CHUNK: _decode_get_body_chunk,
    C.CPONG_REPLY: _singleton(_CPONG, "CPONG_REPLY"),
}
_PROXY_DECODERS: dict[int, Callable[[Buffer], Event]] = {
    C.FORWARD_REQUEST: decode_forward_request,
    C.SHUTDOWN: _singleton(_SHUTDOWN, "SHUTDOWN"),
    C.PING: _singleton(_PING, "PING"),
    C.CPING_REQUEST: _singleton(_CPING, "CPING"),
}


def decode_container_message(payload: Buffer) -> Event:
    """
    Decode a container-to-proxy message by its type byte.

    @param payload: the payload.
    @return: the event.
    @raise RemoteProtocolError: on an empty payload, an unknown type or a
        malformed message.
    """
    if not payload:
        raise RemoteProtocolError("empty packet from the container")
    decoder = _CONTAINER_DECODERS.get(payload[0])
    if decoder is None:
        raise RemoteProtocolError(f"unknown container message type {payload[0]}")
    return decoder(payload)


def decode_proxy_message(payload: Buffer) -> Event:
    """
    Decode a typed proxy-to-container message (not a request body packet).

    @param payload: the payload.
    @return: the event.
    @raise RemoteProtocolError: on an empty payload, an unknown type or a
        malformed message.
    """
    if not payload:
        raise RemoteProtocolError("unexpected request body packet")
    decoder = _PROXY_DECODERS.get(payload[0])
    if decoder is None:
        raise RemoteProtocolError(f"unknown proxy message type {payload[0]}")
    return decoder(payload)
