"""
Golden AJP/1.3 vectors: C{(event, wire bytes)} pairs written out by hand
from the protocol description (reference-systems.md section 2), each with
the prelude of events that brings a connection pair to the state in which
the vector is legal.
"""

from __future__ import annotations

import attrs

from twisted_lb.ajp import (
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


def h(text: str) -> bytes:
    """
    Parse a hex dump; C{#} starts a comment, whitespace is ignored.

    @param text: the dump.
    @return: the bytes.
    """
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


@attrs.frozen
class Vector:
    """
    One golden vector.

    @ivar name: a test id.
    @ivar event: the event.
    @ivar wire: its exact encoding.
    @ivar prelude: events sent through a fresh pair first.
    """

    name: str
    event: Event
    wire: bytes
    prelude: tuple[Event, ...] = ()


#: The byte example of reference-systems.md section 2.4.
EXAMPLE_REQUEST = ForwardRequest(
    method=b"GET",
    req_uri=b"/app/",
    remote_addr=b"203.0.113.7",
    remote_host=None,
    server_name=b"www.example.com",
    server_port=443,
    is_ssl=True,
    headers=((b"host", b"www.example.com"), (b"cookie", b"JSESSIONID=8F3A.node1")),
    query_string=b"a=1",
    route=b"node1",
    secret=b"s3cr3t",
    request_attributes=((b"AJP_REMOTE_PORT", b"51514"),),
)
EXAMPLE_WIRE = h(
    """
    12 34 00 a0 02 02 00 08 48 54 54 50 2f 31 2e 31
    00 00 05 2f 61 70 70 2f 00 00 0b 32 30 33 2e 30
    2e 31 31 33 2e 37 00 ff ff 00 0f 77 77 77 2e 65
    78 61 6d 70 6c 65 2e 63 6f 6d 00 01 bb 01 00 02
    a0 0b 00 0f 77 77 77 2e 65 78 61 6d 70 6c 65 2e
    63 6f 6d 00 a0 09 00 15 4a 53 45 53 53 49 4f 4e
    49 44 3d 38 46 33 41 2e 6e 6f 64 65 31 00 05 00
    03 61 3d 31 00 06 00 05 6e 6f 64 65 31 00 0c 00
    06 73 33 63 72 33 74 00 0a 00 0f 41 4a 50 5f 52
    45 4d 4f 54 45 5f 50 4f 52 54 00 00 05 35 31 35
    31 34 00 ff
    """
)

PATCH_REQUEST = ForwardRequest(
    method=b"PATCH",
    req_uri=b"/api/items/1",
    remote_addr=b"10.0.0.1",
    server_name=b"app.local",
    headers=((b"content-type", b"application/json"), (b"X-Req", b"1")),
)
PATCH_WIRE = h(
    """
    12 34 00 65
    02 ff                                   # FORWARD_REQUEST, SC_M_JK_STORED
    00 08 48 54 54 50 2f 31 2e 31 00        # HTTP/1.1
    00 0c 2f 61 70 69 2f 69 74 65 6d 73 2f 31 00   # /api/items/1
    00 08 31 30 2e 30 2e 30 2e 31 00        # 10.0.0.1
    ff ff                                   # remote_host null
    00 09 61 70 70 2e 6c 6f 63 61 6c 00     # app.local
    00 50 00                                # port 80, not ssl
    00 02                                   # 2 headers
    a0 07 00 10 61 70 70 6c 69 63 61 74 69 6f 6e 2f 6a 73 6f 6e 00
    00 05 58 2d 52 65 71 00 00 01 31 00     # X-Req: 1
    0d 00 05 50 41 54 43 48 00              # stored_method PATCH
    ff
    """
)

SSL_REQUEST = ForwardRequest(
    method=b"GET",
    req_uri=b"/",
    remote_addr=b"::1",
    remote_host=b"h",
    server_name=b"s",
    server_port=8443,
    is_ssl=True,
    remote_user=b"u",
    auth_type=b"t",
    ssl_cert=b"c",
    ssl_cipher=b"x",
    ssl_session=b"y",
    ssl_key_size=256,
)
SSL_WIRE = h(
    """
    12 34 00 41
    02 02
    00 08 48 54 54 50 2f 31 2e 31 00
    00 01 2f 00
    00 03 3a 3a 31 00
    00 01 68 00
    00 01 73 00
    20 fb 01
    00 00
    03 00 01 75 00      # remote_user
    04 00 01 74 00      # auth_type
    07 00 01 63 00      # ssl_cert
    08 00 01 78 00      # ssl_cipher
    09 00 01 79 00      # ssl_session
    0b 01 00            # ssl_key_size 256, an integer
    ff
    """
)

RESPONSE_HEADERS = SendHeaders(
    200,
    b"200",
    (
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"X-Trace", b"abc"),
    ),
)
RESPONSE_HEADERS_WIRE = h(
    """
    41 42 00 39
    04 00 c8 00 03 32 30 30 00 00 04
    a0 01 00 09 74 65 78 74 2f 68 74 6d 6c 00
    a0 07 00 03 61 3d 31 00
    a0 07 00 03 62 3d 32 00
    00 07 58 2d 54 72 61 63 65 00 00 03 61 62 63 00
    """
)

#: A bodiless GET, used as a prelude.
GET = ForwardRequest(b"GET", b"/")
#: A POST without Content-Length (a chunked client request).
CHUNKED_POST = ForwardRequest(b"POST", b"/upload")
#: A POST with a 5-byte body.
POST_5 = ForwardRequest(b"POST", b"/form", headers=((b"content-length", b"5"),))
OK = SendHeaders(200, b"200", ())

VECTORS = [
    Vector("forward-request-example", EXAMPLE_REQUEST, EXAMPLE_WIRE),
    Vector("forward-request-patch", PATCH_REQUEST, PATCH_WIRE),
    Vector("forward-request-ssl", SSL_REQUEST, SSL_WIRE),
    Vector("cping", CPing(), h("12 34 00 01 0a")),
    Vector("cpong", CPong(), h("41 42 00 01 09"), (CPing(),)),
    Vector("shutdown", Shutdown(), h("12 34 00 01 07")),
    Vector("ping", Ping(), h("12 34 00 01 08")),
    Vector("body-hello", RequestBody(b"hello"), h("12 34 00 07 00 05 68 65 6c 6c 6f"), (POST_5,)),
    Vector(
        "body-empty",
        RequestBody(b""),
        h("12 34 00 00"),
        (CHUNKED_POST, GetBodyChunk(8186)),
    ),
    Vector("get-body-chunk-8186", GetBodyChunk(8186), h("41 42 00 03 06 1f fa"), (CHUNKED_POST,)),
    Vector("send-headers", RESPONSE_HEADERS, RESPONSE_HEADERS_WIRE, (GET,)),
    Vector("flush", SendBodyChunk(b""), h("41 42 00 04 03 00 00 00"), (GET, OK)),
    Vector(
        "body-chunk-hello",
        SendBodyChunk(b"hello"),
        h("41 42 00 09 03 00 05 68 65 6c 6c 6f 00"),
        (GET, OK),
    ),
    Vector("end-response-reuse", EndResponse(True), h("41 42 00 02 05 01"), (GET, OK)),
    Vector("end-response-close", EndResponse(False), h("41 42 00 02 05 00"), (GET, OK)),
]
