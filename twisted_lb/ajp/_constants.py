"""
Numeric constants of AJP/1.3 and the lookup tables derived from them.

Sources: Tomcat C{org.apache.coyote.ajp.Constants}, httpd
C{modules/proxy/ajp.h}, mod_jk C{jk_ajp_common.h}.  Every table the hot path
needs is computed once, at import time.
"""

from __future__ import annotations

import http
import struct

__all__ = [
    "DEFAULT_PACKET_SIZE",
    "MAX_PACKET_SIZE",
    "reason_phrase",
]

#: The packet size (4-byte header included) both ends use unless configured.
DEFAULT_PACKET_SIZE = 8192
#: The largest packet size Tomcat, httpd and mod_jk accept.
MAX_PACKET_SIZE = 65536
#: The smallest packet size Tomcat honours (smaller values are ignored).
MIN_PACKET_SIZE = 8192

#: Packet header length: 2 bytes magic, 2 bytes payload length.
HEADER_LENGTH = 4
#: Magic of packets sent by the proxy (web server) to the container.
PROXY_MAGIC = 0x1234
#: Magic of packets sent by the container to the proxy (C{"AB"}).
CONTAINER_MAGIC = 0x4142

#: Body bytes per request-body packet: packet size minus 4 (header) minus 2
#: (data length).
BODY_OVERHEAD = 6
#: Body bytes per SEND_BODY_CHUNK: packet size minus 4 (header), 1 (type),
#: 2 (length) and 1 (trailing NUL).
CHUNK_OVERHEAD = 8

# Message types.
FORWARD_REQUEST = 2
SEND_BODY_CHUNK = 3
SEND_HEADERS = 4
END_RESPONSE = 5
GET_BODY_CHUNK = 6
SHUTDOWN = 7
PING = 8
CPONG_REPLY = 9
CPING_REQUEST = 10

#: Method byte meaning "the real method is in attribute 0x0D".
SC_M_JK_STORED = 0xFF

# Attribute codes of FORWARD_REQUEST.
SC_A_CONTEXT = 0x01
SC_A_SERVLET_PATH = 0x02
SC_A_REMOTE_USER = 0x03
SC_A_AUTH_TYPE = 0x04
SC_A_QUERY_STRING = 0x05
SC_A_ROUTE = 0x06
SC_A_SSL_CERT = 0x07
SC_A_SSL_CIPHER = 0x08
SC_A_SSL_SESSION = 0x09
SC_A_REQ_ATTRIBUTE = 0x0A
SC_A_SSL_KEY_SIZE = 0x0B
SC_A_SECRET = 0x0C
SC_A_STORED_METHOD = 0x0D
SC_A_ARE_DONE = 0xFF

#: Tomcat C{Constants.methodTransArray}: method code N is element N-1.
_METHODS = (
    b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK",
    b"ACL", b"REPORT", b"VERSION-CONTROL", b"CHECKIN", b"CHECKOUT",
    b"UNCHECKOUT", b"SEARCH", b"MKWORKSPACE", b"UPDATE", b"LABEL", b"MERGE",
    b"BASELINE-CONTROL", b"MKACTIVITY",
)  # fmt: skip
#: Method name (exact case) to method code.
METHOD_CODES: dict[bytes, int] = {m: i for i, m in enumerate(_METHODS, 1)}
#: Method code to method name.
METHOD_NAMES: dict[int, bytes] = {i: m for m, i in METHOD_CODES.items()}

#: Coded request headers, in code order (0xA001 first); names lower case.
_REQUEST_HEADERS = (
    b"accept", b"accept-charset", b"accept-encoding", b"accept-language",
    b"authorization", b"connection", b"content-type", b"content-length",
    b"cookie", b"cookie2", b"host", b"pragma", b"referer", b"user-agent",
)  # fmt: skip
#: Lower-case request header name to its packed 2-byte code.
REQUEST_HEADER_CODES: dict[bytes, bytes] = {
    name: struct.pack(">H", 0xA001 + i) for i, name in enumerate(_REQUEST_HEADERS)
}
#: Request header code (as an integer) to its lower-case name.
REQUEST_HEADER_NAMES: dict[int, bytes] = {
    0xA001 + i: name for i, name in enumerate(_REQUEST_HEADERS)
}
#: The packed code of C{content-length}, checked while encoding.
CONTENT_LENGTH_CODE = REQUEST_HEADER_CODES[b"content-length"]

#: Coded response headers, in code order, with Tomcat's canonical spelling.
_RESPONSE_HEADERS = (
    b"Content-Type", b"Content-Language", b"Content-Length", b"Date",
    b"Last-Modified", b"Location", b"Set-Cookie", b"Set-Cookie2",
    b"Servlet-Engine", b"Status", b"WWW-Authenticate",
)  # fmt: skip
#: Exact-case response header name to its packed 2-byte code (Tomcat's
#: C{responseTransMap} is a case-sensitive map, and so is this one).
RESPONSE_HEADER_CODES: dict[bytes, bytes] = {
    name: struct.pack(">H", 0xA001 + i) for i, name in enumerate(_RESPONSE_HEADERS)
}
#: Response header code (as an integer) to its canonical name.
RESPONSE_HEADER_NAMES: dict[int, bytes] = {
    0xA001 + i: name for i, name in enumerate(_RESPONSE_HEADERS)
}

#: String names at least this long would be mistaken for header codes.
MAX_HEADER_NAME_LENGTH = 0xA000 - 1
#: A string length of 0xFFFF marks the null string, so strings are shorter.
MAX_STRING_LENGTH = 0xFFFE

_REASONS: dict[int, bytes] = {
    status.value: status.phrase.encode("ascii") for status in http.HTTPStatus
}


def reason_phrase(status: int) -> bytes:
    """
    Return the standard reason phrase for an HTTP status code.

    Tomcat sends the status number as the SEND_HEADERS reason ("200"), so a
    proxy speaking HTTP/1.1 to its clients generates the phrase itself.

    @param status: an HTTP status code.
    @return: the phrase, e.g. C{b"Not Found"}, or C{b"Unknown"} for a code
        that has none.
    """
    return _REASONS.get(status, b"Unknown")
