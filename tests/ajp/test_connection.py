"""
Tests for L{twisted_lb.ajp.AJPConnection}: whole exchanges between a PROXY
and a CONTAINER connection, and every way each side can break the protocol.
"""

from __future__ import annotations

import pytest

from tests.ajp.helpers import ConnectionPair, drain
from tests.ajp.vectors import CHUNKED_POST, EXAMPLE_WIRE, GET, OK, POST_5, h
from twisted_lb.ajp import (
    DEFAULT_PACKET_SIZE,
    MAX_PACKET_SIZE,
    NEED_DATA,
    AJPConnection,
    ConnectionClosed,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    LocalProtocolError,
    Ping,
    RemoteProtocolError,
    RequestBody,
    RequestTooLarge,
    Role,
    SendBodyChunk,
    SendHeaders,
    Shutdown,
    State,
    reason_phrase,
)


def _post(length: int) -> ForwardRequest:
    """
    @param length: the Content-Length.
    @return: a POST declaring it.
    """
    return ForwardRequest(b"POST", b"/p", headers=((b"content-length", b"%d" % length),))


def _proxy_in_exchange(request: ForwardRequest = GET) -> AJPConnection:
    """
    @param request: the request to send first.
    @return: a proxy connection that sent it.
    """
    conn = AJPConnection(Role.PROXY)
    conn.send(request)
    return conn


def _feed(conn: AJPConnection, data: bytes) -> object:
    """
    @param conn: a connection.
    @param data: bytes from its peer.
    @return: the next event.
    """
    conn.receive_data(data)
    return conn.next_event()


# Whole exchanges.


def test_get_without_body() -> None:
    """A bodiless GET needs no body packet and leaves the pair reusable."""
    pair = ConnectionPair()
    pair.send(GET)
    assert pair.proxy.body_packets_allowed == 0
    assert pair.container.body_packets_allowed == 0
    pair.run([SendHeaders(200, b"200", ((b"Content-Length", b"2"),)), SendBodyChunk(b"ok")])
    assert pair.proxy.response_started and pair.container.response_started
    pair.send(EndResponse(True))
    assert pair.proxy.state is State.DONE and pair.proxy.reusable and pair.container.reusable
    pair.proxy.start_next_cycle()
    pair.container.start_next_cycle()
    assert pair.proxy.state is pair.container.state is State.IDLE
    assert not pair.proxy.response_started
    pair.run([GET, OK, EndResponse(True)])


def test_post_content_length_zero() -> None:
    """A POST with Content-Length 0 sends no body packet at all."""
    pair = ConnectionPair()
    pair.send(_post(0))
    assert pair.proxy.body_packets_allowed == 0
    with pytest.raises(LocalProtocolError):
        pair.proxy.send(RequestBody(b""))
    pair.run([OK, EndResponse(True)])
    assert pair.proxy.reusable


def test_post_one_byte() -> None:
    """A 1-byte body goes in the first, unasked packet."""
    pair = ConnectionPair()
    pair.send(_post(1))
    assert pair.proxy.body_packets_allowed == 1
    assert pair.container.body_packets_allowed == 1
    assert pair.send(RequestBody(b"x")) == h("12 34 00 03 00 01 78")
    assert pair.proxy.body_packets_allowed == 0
    pair.run([OK, EndResponse(True)])
    assert pair.proxy.reusable and pair.container.reusable


def test_post_exactly_one_packet() -> None:
    """A body of packet_size - 6 bytes fills exactly one packet of packet_size bytes."""
    pair = ConnectionPair()
    pair.send(_post(8186))
    data = pair.send(RequestBody(b"a" * 8186))
    assert len(data) == DEFAULT_PACKET_SIZE
    pair.run([OK, EndResponse(True)])
    assert pair.proxy.reusable


def test_post_first_packet_too_big() -> None:
    """The first body packet may not exceed packet_size - 6 bytes."""
    conn = _proxy_in_exchange(_post(9000))
    with pytest.raises(LocalProtocolError, match="only 8186"):
        conn.send(RequestBody(b"a" * 8187))
    assert conn.body_packets_allowed == 1


def test_post_two_packets() -> None:
    """An 8 KiB + 1 body takes a second packet, sent only after GET_BODY_CHUNK."""
    pair = ConnectionPair()
    pair.send(_post(8193))
    pair.send(RequestBody(b"a" * 8186))
    with pytest.raises(LocalProtocolError, match="did not ask"):
        pair.proxy.send(RequestBody(b"b" * 7))
    pair.send(GetBodyChunk(8186))
    assert pair.proxy.body_packets_allowed == 1
    assert pair.proxy.requested_body_length == 8186
    pair.send(RequestBody(b"b" * 7))
    assert pair.proxy.body_packets_allowed == 0
    pair.run([OK, SendBodyChunk(b"done"), EndResponse(True)])
    assert pair.proxy.reusable and pair.container.reusable


def test_post_body_longer_than_content_length() -> None:
    """Body bytes beyond the Content-Length are refused."""
    pair = ConnectionPair()
    pair.send(POST_5)
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        pair.proxy.send(RequestBody(b"toolong"))


def test_chunked_request() -> None:
    """Without Content-Length each ask gets one packet and the last ask the empty packet."""
    pair = ConnectionPair()
    pair.send(CHUNKED_POST)
    assert pair.proxy.body_packets_allowed == 0
    with pytest.raises(LocalProtocolError):
        pair.proxy.send(RequestBody(b"unasked"))
    pair.send(GetBodyChunk(8186))
    pair.send(RequestBody(b"chunk one"))
    pair.send(GetBodyChunk(8186))
    pair.send(RequestBody(b"chunk two"))
    pair.send(GetBodyChunk(8186))
    assert pair.send(RequestBody(b"")) == h("12 34 00 00")
    pair.run([OK, EndResponse(True)])
    assert pair.proxy.reusable


def test_ask_after_end_of_body() -> None:
    """A GET_BODY_CHUNK after the empty end packet is answered with another empty packet."""
    pair = ConnectionPair()
    pair.send(CHUNKED_POST)
    pair.send(GetBodyChunk(100))
    pair.send(RequestBody(b""))
    pair.send(GetBodyChunk(100))
    with pytest.raises(LocalProtocolError, match="after the end-of-body"):
        pair.proxy.send(RequestBody(b"more"))
    pair.send(RequestBody(b""))
    pair.run([OK, EndResponse(True)])


def test_ask_is_clamped() -> None:
    """A GET_BODY_CHUNK larger than a packet grants only packet_size - 6 bytes."""
    conn = _proxy_in_exchange(CHUNKED_POST)
    _feed(conn, h("41 42 00 03 06 2e 26"))  # asks for 11814 bytes, like flup
    assert conn.requested_body_length == 8186
    with pytest.raises(LocalProtocolError):
        conn.send(RequestBody(b"a" * 8187))
    conn.send(RequestBody(b"a" * 8186))


def test_ask_smaller_than_packet() -> None:
    """A small GET_BODY_CHUNK limits the next body packet to the asked length."""
    conn = _proxy_in_exchange(CHUNKED_POST)
    _feed(conn, h("41 42 00 03 06 00 04"))
    with pytest.raises(LocalProtocolError, match="only 4"):
        conn.send(RequestBody(b"12345"))
    assert conn.send(RequestBody(b"1234")) == h("12 34 00 06 00 04 31 32 33 34")


def test_headers_before_body_is_read() -> None:
    """SEND_HEADERS may arrive before the container asked for the rest of the body."""
    pair = ConnectionPair()
    pair.send(_post(10000))
    pair.send(RequestBody(b"a" * 8186))
    pair.run([OK, SendBodyChunk(b"early")])
    pair.send(EndResponse(True))
    assert pair.proxy.reusable


def test_cping_cpong() -> None:
    """CPING is answered by CPONG and both sides return to IDLE."""
    pair = ConnectionPair()
    pair.send(CPing())
    assert pair.proxy.state is State.AWAIT_CPONG
    with pytest.raises(LocalProtocolError):
        pair.proxy.send(GET)
    pair.send(CPong())
    assert pair.proxy.state is State.IDLE
    pair.run([GET, OK, EndResponse(True)])


def test_reuse_false() -> None:
    """END_RESPONSE with reuse=0 makes the connection ineligible for the pool."""
    pair = ConnectionPair()
    pair.run([GET, SendHeaders(403, b"403", ()), EndResponse(False)])
    assert pair.proxy.state is State.MUST_CLOSE
    assert not pair.proxy.reusable and not pair.container.reusable
    with pytest.raises(LocalProtocolError):
        pair.proxy.start_next_cycle()
    with pytest.raises(LocalProtocolError):
        pair.proxy.send(GET)


def test_start_next_cycle_mid_exchange() -> None:
    """start_next_cycle is refused before END_RESPONSE."""
    conn = _proxy_in_exchange()
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_end_with_outstanding_grant_not_reusable() -> None:
    """END_RESPONSE while a body packet is still owed makes the connection unusable."""
    conn = _proxy_in_exchange(CHUNKED_POST)
    conn.receive_data(h("41 42 00 03 06 1f fa") + h("41 42 00 07 04 00 c8 ff ff 00 00"))
    conn.receive_data(h("41 42 00 02 05 01"))
    assert [type(e).__name__ for e in drain(conn)] == [
        "GetBodyChunk",
        "SendHeaders",
        "EndResponse",
    ]
    assert conn.state is State.MUST_CLOSE and not conn.reusable
    assert conn.body_packets_allowed == 0


def test_packet_size_65536() -> None:
    """With 65536-byte packets, 65530 body bytes and 65528 chunk bytes fit a packet."""
    pair = ConnectionPair(MAX_PACKET_SIZE)
    pair.send(_post(70000))
    assert len(pair.send(RequestBody(b"a" * 65530))) == 65536
    pair.send(GetBodyChunk(65530))
    pair.send(RequestBody(b"b" * (70000 - 65530)))
    pair.send(OK)
    assert len(pair.send(SendBodyChunk(b"c" * 65528))) == 65536
    with pytest.raises(LocalProtocolError):
        pair.container.send(SendBodyChunk(b"c" * 65529))
    pair.send(EndResponse(True))


@pytest.mark.parametrize("size", [0, 1024, 8191, 65537, 8192.0, True])
def test_packet_size_out_of_range(size: object) -> None:
    """Packet sizes outside 8192..65536 (or not integers) are a ValueError."""
    with pytest.raises(ValueError):
        AJPConnection(Role.PROXY, size)  # type: ignore[arg-type]


def test_role_must_be_role() -> None:
    """The role must be a Role member."""
    with pytest.raises(TypeError):
        AJPConnection("proxy")  # type: ignore[arg-type]


# Encoding rules.


def test_request_too_large_headers() -> None:
    """A FORWARD_REQUEST with too many header bytes raises RequestTooLarge(431) and stays IDLE."""
    conn = AJPConnection(Role.PROXY)
    request = ForwardRequest(b"GET", b"/", headers=((b"cookie", b"x" * 9000),))
    with pytest.raises(RequestTooLarge) as info:
        conn.send(request)
    assert info.value.status_hint == 431
    assert isinstance(info.value, LocalProtocolError)
    assert info.value.packet_size == 8192 and info.value.needed > 9000
    assert "8192" in str(info.value) and str(info.value.needed) in str(info.value)
    assert conn.state is State.IDLE
    conn.send(GET)


def test_request_too_large_uri() -> None:
    """A request URI that alone exceeds the packet gives status hint 414."""
    conn = AJPConnection(Role.PROXY)
    with pytest.raises(RequestTooLarge) as info:
        conn.send(ForwardRequest(b"GET", b"/" + b"u" * 8200))
    assert info.value.status_hint == 414
    assert conn.state is State.IDLE


def test_request_that_just_fits() -> None:
    """A FORWARD_REQUEST of exactly packet_size bytes is sent."""
    base = len(AJPConnection(Role.PROXY).send(ForwardRequest(b"GET", b"/")))
    request = ForwardRequest(b"GET", b"/" + b"u" * (8192 - base))
    assert len(AJPConnection(Role.PROXY).send(request)) == 8192
    request = ForwardRequest(b"GET", b"/" + b"u" * (8193 - base))
    with pytest.raises(RequestTooLarge):
        AJPConnection(Role.PROXY).send(request)


def test_transfer_encoding_refused() -> None:
    """A Transfer-Encoding header is refused: AJP has no chunked framing."""
    conn = AJPConnection(Role.PROXY)
    with pytest.raises(LocalProtocolError, match="Transfer-Encoding"):
        conn.send(ForwardRequest(b"POST", b"/", headers=((b"Transfer-Encoding", b"chunked"),)))
    assert conn.state is State.IDLE


@pytest.mark.parametrize(
    "headers",
    [
        ((b"content-length", b"abc"),),
        ((b"content-length", b"-1"),),
        ((b"content-length", b"+5"),),
        ((b"Content-Length", b"5"), (b"content-length", b"5")),
    ],
)
def test_bad_content_length_refused(headers: tuple[tuple[bytes, bytes], ...]) -> None:
    """Invalid or repeated Content-Length headers are refused before sending."""
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        AJPConnection(Role.PROXY).send(ForwardRequest(b"POST", b"/", headers=headers))


def test_header_names_case_insensitive_codes() -> None:
    """Known request headers are coded whatever their case; others keep their spelling."""
    conn = AJPConnection(Role.PROXY)
    data = conn.send(ForwardRequest(b"GET", b"/", headers=((b"User-Agent", b"t"), (b"X-A", b"1"))))
    assert b"\xa0\x0e\x00\x01t\x00" in data and b"\x00\x03X-A\x00" in data
    container = AJPConnection(Role.CONTAINER)
    event = _feed(container, data)
    assert event.headers == ((b"user-agent", b"t"), (b"X-A", b"1"))  # type: ignore[attr-defined]


def test_method_names() -> None:
    """Table methods get their code, others (and wrong-case ones) are stored."""
    for method, code in [(b"OPTIONS", 1), (b"BASELINE-CONTROL", 26), (b"MKACTIVITY", 27)]:
        assert AJPConnection(Role.PROXY).send(ForwardRequest(method, b"/"))[5] == code
    data = AJPConnection(Role.PROXY).send(ForwardRequest(b"get", b"/"))
    assert data[5] == 0xFF and b"\x0d\x00\x03get\x00\xff" in data
    with pytest.raises(LocalProtocolError):
        AJPConnection(Role.PROXY).send(ForwardRequest(b"", b"/"))


def test_bad_field_types_refused() -> None:
    """Fields of the wrong type are a LocalProtocolError, not a crash."""
    for request in [
        ForwardRequest(b"GET", "/"),  # type: ignore[arg-type]
        ForwardRequest(b"GET", b"/", server_port=70000),
        ForwardRequest(b"GET", b"/", headers=((b"a", None),)),  # type: ignore[arg-type]
    ]:
        with pytest.raises(LocalProtocolError):
            AJPConnection(Role.PROXY).send(request)


def test_response_header_codes_exact_case() -> None:
    """The container codes only exact-case names; other spellings travel as strings."""
    pair = ConnectionPair()
    pair.send(GET)
    data = pair.send(SendHeaders(200, b"OK", ((b"set-cookie", b"a"), (b"Set-Cookie", b"b"))))
    assert b"\x00\x0aset-cookie\x00" in data and b"\xa0\x07\x00\x01b\x00" in data


def test_reason_phrase() -> None:
    """reason_phrase gives standard phrases and b'Unknown' otherwise."""
    assert reason_phrase(200) == b"OK"
    assert reason_phrase(404) == b"Not Found"
    assert reason_phrase(799) == b"Unknown"


# Local misuse.


def test_proxy_cannot_send_container_events() -> None:
    """A proxy cannot send response messages, whatever the state."""
    conn = _proxy_in_exchange()
    for event in [OK, SendBodyChunk(b""), EndResponse(True), GetBodyChunk(1), CPong()]:
        with pytest.raises(LocalProtocolError):
            conn.send(event)


def test_container_order_enforced() -> None:
    """A container sends SEND_HEADERS once, before body chunks and END_RESPONSE."""
    pair = ConnectionPair()
    pair.send(GET)
    for event in [SendBodyChunk(b"x"), EndResponse(True), CPong()]:
        with pytest.raises(LocalProtocolError):
            pair.container.send(event)
    pair.send(OK)
    with pytest.raises(LocalProtocolError):
        pair.container.send(OK)


def test_container_cannot_answer_unasked() -> None:
    """A container in IDLE cannot send CPONG or a response."""
    conn = AJPConnection(Role.CONTAINER)
    for event in [CPong(), OK, GetBodyChunk(1)]:
        with pytest.raises(LocalProtocolError):
            conn.send(event)


def test_send_in_error_state() -> None:
    """After a remote error nothing can be sent and next_event keeps raising."""
    conn = AJPConnection(Role.PROXY)
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 00 01 09"))
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(GET)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_unknown_object_refused() -> None:
    """Sending something that is not an event is a LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        AJPConnection(Role.PROXY).send(object())  # type: ignore[arg-type]


# Remote errors, proxy side.


@pytest.mark.parametrize(
    "data, match",
    [
        (h("12 34 00 01 09"), "signature"),
        (h("41 42 1f fd"), "packet size"),
        (h("41 42 00 01 63"), "unknown container message type"),
        (h("41 42 00 0b 04 00 c8 00 00 00 00 01 a0 0c 00 00 00"), "0xa00c"),
        (h("41 42 00 0b 04 00 c8 00 00 00 00 01 a0 00 00 00 00"), "0xa000"),
        (h("41 42 00 09 04 00 c8 00 01 41 42 00 00"), "NUL"),
        (h("41 42 00 02 06 1f"), "truncated integer"),
        (h("41 42 00 04 05 01 00 00"), "trailing"),
        (h("41 42 00 01 09"), "CPONG_REPLY"),
        (h("41 42 00 04 03 00 00 00"), "SEND_BODY_CHUNK before SEND_HEADERS"),
        (h("41 42 00 02 05 01"), "END_RESPONSE before SEND_HEADERS"),
    ],
    ids=[
        "wrong-magic",
        "oversize",
        "unknown-type",
        "header-code-a00c",
        "header-code-a000",
        "string-without-nul",
        "truncated-integer",
        "trailing-garbage",
        "cpong-mid-exchange",
        "chunk-before-headers",
        "end-before-headers",
    ],
)
def test_proxy_rejects(data: bytes, match: str) -> None:
    """Malformed or out-of-order container messages are remote errors that stick."""
    conn = _proxy_in_exchange()
    with pytest.raises(RemoteProtocolError, match=match) as info:
        _feed(conn, data)
    assert info.value.status_hint == 502
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_oversize_rejected_before_payload() -> None:
    """An oversized packet is rejected when only its 4-byte header has arrived."""
    conn = _proxy_in_exchange()
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 20 00"))


def test_send_headers_twice() -> None:
    """A second SEND_HEADERS is a remote error."""
    conn = _proxy_in_exchange()
    assert _feed(conn, h("41 42 00 07 04 00 c8 ff ff 00 00")) == SendHeaders(200, b"", ())
    with pytest.raises(RemoteProtocolError, match="SEND_HEADERS"):
        _feed(conn, h("41 42 00 07 04 00 c8 ff ff 00 00"))


def test_unsolicited_message_while_idle() -> None:
    """A container message on an idle connection is a remote error."""
    conn = AJPConnection(Role.PROXY)
    with pytest.raises(RemoteProtocolError, match="IDLE"):
        _feed(conn, h("41 42 00 03 06 1f fa"))


def test_anything_but_cpong_after_cping() -> None:
    """While waiting for CPONG any other message is a remote error."""
    conn = AJPConnection(Role.PROXY)
    conn.send(CPing())
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 00 02 05 01"))


def _done_proxy() -> AJPConnection:
    """
    @return: a proxy connection whose exchange just ended with reuse=1.
    """
    conn = _proxy_in_exchange()
    conn.receive_data(h("41 42 00 07 04 00 c8 ff ff 00 00 41 42 00 02 05 01"))
    assert len(drain(conn)) == 2
    return conn


def test_flush_after_end_tolerated() -> None:
    """Empty SEND_BODY_CHUNKs after END_RESPONSE are dropped (mod_jk 49413)."""
    conn = _done_proxy()
    assert _feed(conn, h("41 42 00 04 03 00 00 00") * 2) is NEED_DATA
    assert conn.reusable


def test_flush_after_next_cycle_tolerated() -> None:
    """A trailing flush that arrives after start_next_cycle is dropped too, once only."""
    conn = _done_proxy()
    conn.start_next_cycle()
    assert _feed(conn, h("41 42 00 04 03 00 00 00")) is NEED_DATA
    conn.send(GET)
    assert _feed(conn, h("41 42 00 07 04 00 c8 ff ff 00 00")) == SendHeaders(200, b"", ())
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 00 07 04 00 c8 ff ff 00 00"))


def test_data_after_end_rejected() -> None:
    """A non-empty SEND_BODY_CHUNK after END_RESPONSE is a remote error."""
    conn = _done_proxy()
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 00 05 03 00 01 78 00"))


def test_get_body_chunk_after_end_rejected() -> None:
    """A GET_BODY_CHUNK after END_RESPONSE is a remote error."""
    conn = _done_proxy()
    with pytest.raises(RemoteProtocolError):
        _feed(conn, h("41 42 00 03 06 00 10"))


# End of file.


def test_eof_when_idle() -> None:
    """A close between exchanges gives ConnectionClosed, repeatedly."""
    conn = AJPConnection(Role.PROXY)
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(GET)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"late")


def test_eof_after_buffered_events() -> None:
    """Buffered events come out before ConnectionClosed."""
    conn = _proxy_in_exchange()
    conn.receive_data(h("41 42 00 07 04 00 c8 ff ff 00 00 41 42 00 02 05 00"))
    conn.receive_data(b"")
    events = [conn.next_event() for _ in range(3)]
    assert events == [SendHeaders(200, b"", ()), EndResponse(False), ConnectionClosed()]


def test_eof_mid_exchange() -> None:
    """A close before END_RESPONSE is a remote error."""
    conn = _proxy_in_exchange()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="IN_EXCHANGE"):
        conn.next_event()


def test_eof_mid_packet() -> None:
    """A close inside a packet is a remote error, even between exchanges."""
    conn = AJPConnection(Role.PROXY)
    conn.receive_data(h("41 42 00"))
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a packet"):
        conn.next_event()


def test_eof_awaiting_cpong() -> None:
    """A close while waiting for CPONG is a remote error (the ping failed)."""
    conn = AJPConnection(Role.PROXY)
    conn.send(CPing())
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


# Container side.


def test_container_unsolicited_body() -> None:
    """A body packet nobody asked for is parsed as a message and rejected."""
    container = AJPConnection(Role.CONTAINER)
    container.receive_data(AJPConnection(Role.PROXY).send(GET))
    container.next_event()
    with pytest.raises(RemoteProtocolError):
        _feed(container, h("12 34 00 07 00 05 68 65 6c 6c 6f"))


def test_container_smuggled_forward_request() -> None:
    """An unasked 512-byte body packet, which Tomcat would read as a FORWARD_REQUEST, is rejected."""
    container = AJPConnection(Role.CONTAINER)
    container.receive_data(AJPConnection(Role.PROXY).send(GET))
    container.next_event()
    with pytest.raises(RemoteProtocolError):
        _feed(container, h("12 34 02 02 02 00") + b"\x02" * 512)


def test_container_body_larger_than_asked() -> None:
    """A body packet larger than the container asked for is a remote error."""
    pair = ConnectionPair()
    pair.send(CHUNKED_POST)
    pair.container.send(GetBodyChunk(2))
    with pytest.raises(RemoteProtocolError, match="only 2"):
        _feed(pair.container, h("12 34 00 05 00 03 61 62 63"))


def test_container_pauses_until_answer() -> None:
    """A container that owes a CPONG does not parse what follows until it answers."""
    pair = ConnectionPair()
    pair.container.receive_data(h("12 34 00 01 0a") + EXAMPLE_WIRE)
    assert pair.container.next_event() == CPing()
    assert pair.container.next_event() is NEED_DATA
    pair.container.send(CPong())
    assert isinstance(pair.container.next_event(), ForwardRequest)


def test_container_swallows_body_after_end() -> None:
    """A container that ended the response still reads the body packet it was owed."""
    container = AJPConnection(Role.CONTAINER)
    container.receive_data(AJPConnection(Role.PROXY).send(_post(3)))
    container.next_event()
    container.send(OK)
    container.send(EndResponse(True))
    assert container.state is State.DONE and not container.reusable
    assert _feed(container, h("12 34 00 05 00 03 61 62 63")) == RequestBody(b"abc")
    assert container.reusable
    container.start_next_cycle()


def test_container_shutdown() -> None:
    """SHUTDOWN leaves both ends in MUST_CLOSE."""
    pair = ConnectionPair()
    assert pair.send(Shutdown()) == h("12 34 00 01 07")
    assert pair.proxy.state is pair.container.state is State.MUST_CLOSE
    assert not pair.proxy.reusable


def test_container_ping() -> None:
    """PING leaves both ends in MUST_CLOSE."""
    pair = ConnectionPair()
    pair.send(Ping())
    assert pair.container.state is State.MUST_CLOSE


def test_container_decodes_context_and_servlet_path() -> None:
    """Attributes 0x01 and 0x02 are read and ignored."""
    payload = EXAMPLE_WIRE[4:-1] + h("01 00 01 63 00 02 ff ff ff")
    container = AJPConnection(Role.CONTAINER)
    event = _feed(container, b"\x12\x34" + len(payload).to_bytes(2, "big") + payload)
    assert event.route == b"node1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload, match",
    [
        (h("02 ff") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 00 ff"), "stored method"),
        (h("02 1c") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 00 ff"), "method code"),
        (h("02 02") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 01 a0 0f"), "0xa00f"),
        (h("02 02") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 00 0e"), "attribute"),
        (h("02 02") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 00"), "terminator"),
        (h("02 02") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 00 ff 00"), "trailing"),
        (h("02 02") + h("00 00 00") * 3 + h("ff ff 00 00 00 00 50 00 00 01 ff ff"), "null"),
    ],
    ids=["ff-no-stored", "unknown-code", "header-code", "attr-code", "no-ff", "trailing", "null"],
)
def test_container_rejects_forward_request(payload: bytes, match: str) -> None:
    """Malformed FORWARD_REQUESTs are remote errors for the container."""
    container = AJPConnection(Role.CONTAINER)
    with pytest.raises(RemoteProtocolError, match=match):
        _feed(container, b"\x12\x34" + len(payload).to_bytes(2, "big") + payload)


# Body data read in bulk (next_body_data).


def _body_stream(*chunks: bytes) -> bytes:
    """SEND_HEADERS, a SEND_BODY_CHUNK per chunk (b"" is a flush), END_RESPONSE, as a container sends them."""
    container = AJPConnection(Role.CONTAINER)
    container.receive_data(AJPConnection(Role.PROXY).send(GET))
    assert container.next_event() == GET
    data = container.send(OK)
    for chunk in chunks:
        data += container.send(SendBodyChunk(chunk))
    return data + container.send(EndResponse(True))


def test_next_body_data_reads_the_chunks_behind_the_first() -> None:
    """Chunks and flushes up to END_RESPONSE come in one call; END_RESPONSE stays for next_event."""
    conn = _proxy_in_exchange()
    conn.receive_data(_body_stream(b"ab", b"cd", b"", b"ef"))
    assert conn.next_event() == OK
    assert conn.next_event() == SendBodyChunk(b"ab")
    assert [bytes(d) for d in conn.next_body_data()] == [b"cd", b"ef"]
    assert conn.next_body_data() == []
    assert conn.next_event() == EndResponse(True)
    assert conn.state is State.DONE


def test_next_body_data_before_the_response_reads_nothing() -> None:
    """Before SEND_HEADERS (and for a container) nothing is consumed."""
    conn = _proxy_in_exchange()
    conn.receive_data(_body_stream(b"ab"))
    assert conn.next_body_data() == []
    assert conn.next_event() == OK
    container = AJPConnection(Role.CONTAINER)
    assert container.next_body_data() == []


def test_next_body_data_every_split_gives_the_same_body() -> None:
    """However the bytes are cut into reads, bulk reads and events give the whole body in order."""
    wire = _body_stream(b"a" * 10, b"", b"b" * 300, b"c", b"d" * 70)
    for cut in range(1, len(wire)):
        conn = _proxy_in_exchange()
        body = b""
        events = []
        for part in (wire[:cut], wire[cut:]):
            conn.receive_data(part)
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(type(event))
                if isinstance(event, SendBodyChunk):
                    body += bytes(event.data)
                    body += b"".join(bytes(d) for d in conn.next_body_data())
        assert body == b"a" * 10 + b"b" * 300 + b"c" + b"d" * 70, cut
        assert events[0] is SendHeaders and events[-1] is EndResponse, cut


def test_next_body_data_checks_like_next_event() -> None:
    """A chunk whose length disagrees with its packet is an error, and the connection is unusable."""
    conn = _proxy_in_exchange()
    good = _body_stream(b"ab", b"cd")
    # Break the second chunk's declared length (packet: 41 42 00 06 03 00 02 "cd" 00).
    second = good.index(b"\x41\x42\x00\x06\x03\x00\x02cd")
    bad = good[: second + 6] + b"\x05" + good[second + 7 :]
    conn.receive_data(bad)
    assert conn.next_event() == OK
    assert conn.next_event() == SendBodyChunk(b"ab")
    with pytest.raises(RemoteProtocolError, match="declares 5 bytes"):
        conn.next_body_data()
    assert conn.state is State.ERROR
