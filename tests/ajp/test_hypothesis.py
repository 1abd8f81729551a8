"""
Property tests of the AJP codec, both roles: arbitrary, mutated and
truncated input only ever raises L{AJPProtocolError}, terminates, and makes
the codec allocate in proportion to its input (never what a length field
claims); generated events and whole exchanges survive a round trip.
"""

from __future__ import annotations

import struct
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ajp.helpers import ConnectionPair
from tests.ajp.vectors import CHUNKED_POST, GET, OK, VECTORS, Vector
from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    AJPProtocolError,
    ConnectionClosed,
    CPing,
    CPong,
    EndResponse,
    Event,
    ForwardRequest,
    GetBodyChunk,
    RequestBody,
    Role,
    SendBodyChunk,
    SendHeaders,
)
from twisted_lb.ajp._constants import METHOD_CODES, REQUEST_HEADER_CODES, RESPONSE_HEADER_CODES

_settings = settings(max_examples=200, deadline=None)

_PRELUDES: list[tuple[Event, ...]] = [(), (GET,), (CHUNKED_POST,), (GET, OK)]


def _consume(conn: AJPConnection, data: bytes, eof: bool) -> None:
    """
    Feed bytes and parse until the connection needs data or is closed.

    @param conn: the connection.
    @param data: the bytes.
    @param eof: whether to signal end of file afterwards.
    """
    try:
        conn.receive_data(data)
        if eof:
            conn.receive_data(b"")
        for _ in range(len(data) + 2):
            event = conn.next_event()
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                return
        raise AssertionError("next_event() does not terminate")
    except AJPProtocolError:
        pass


def _prepared(role: Role, prelude_index: int) -> AJPConnection:
    """
    @param role: the role of the connection to return.
    @param prelude_index: which prelude to run first.
    @return: that end of a pair that ran the prelude.
    """
    pair = ConnectionPair()
    pair.run(_PRELUDES[prelude_index])
    return pair.conn(role)


def _packets(magic: int) -> st.SearchStrategy[bytes]:
    """
    @param magic: the packet magic.
    @return: well-framed packets with arbitrary payloads, often starting with
        a real message type.
    """
    payload = st.one_of(
        st.binary(max_size=60),
        st.tuples(st.sampled_from([2, 3, 4, 5, 6, 7, 8, 9, 10]), st.binary(max_size=60)).map(
            lambda t: bytes((t[0],)) + t[1]
        ),
    )
    return st.lists(payload, max_size=6).map(
        lambda ps: b"".join(struct.pack(">HH", magic, len(p)) + p for p in ps)
    )


@_settings
@given(st.binary(max_size=200), st.sampled_from(list(Role)), st.integers(0, 3), st.booleans())
def test_random_bytes(data: bytes, role: Role, prelude: int, eof: bool) -> None:
    """Random bytes fed to either role raise nothing but AJPProtocolError."""
    _consume(_prepared(role, prelude), data, eof)


@_settings
@given(st.data(), st.sampled_from(list(Role)), st.integers(0, 3), st.booleans())
def test_random_packets(data: st.DataObject, role: Role, prelude: int, eof: bool) -> None:
    """Well-framed packets with random payloads raise nothing but AJPProtocolError."""
    magic = 0x4142 if role is Role.PROXY else 0x1234
    _consume(_prepared(role, prelude), data.draw(_packets(magic)), eof)


_text = st.binary(max_size=24)
_coded_request_names = sorted(set(REQUEST_HEADER_CODES) - {b"content-length"})
_request_header_name = st.one_of(
    st.sampled_from(_coded_request_names),
    _text.filter(
        lambda n: n.lower() not in REQUEST_HEADER_CODES and n.lower() != b"transfer-encoding"
    ),
)
_pairs = st.lists(st.tuples(_text, _text), max_size=4).map(tuple)

_forward_requests = st.builds(
    ForwardRequest,
    method=st.one_of(st.sampled_from(sorted(METHOD_CODES)), st.binary(min_size=1, max_size=12)),
    req_uri=_text,
    protocol=_text,
    remote_addr=_text,
    remote_host=st.none() | _text,
    server_name=_text,
    server_port=st.integers(0, 0xFFFF),
    is_ssl=st.booleans(),
    headers=st.lists(st.tuples(_request_header_name, _text), max_size=8).map(tuple),
    query_string=st.none() | _text,
    route=st.none() | _text,
    secret=st.none() | _text,
    remote_user=st.none() | _text,
    auth_type=st.none() | _text,
    ssl_cert=st.none() | _text,
    ssl_cipher=st.none() | _text,
    ssl_session=st.none() | _text,
    ssl_key_size=st.none() | st.integers(0, 0xFFFF),
    request_attributes=_pairs,
)

_send_headers = st.builds(
    SendHeaders,
    status=st.integers(0, 0xFFFF),
    reason=_text,
    headers=st.lists(
        st.tuples(st.one_of(st.sampled_from(sorted(RESPONSE_HEADER_CODES)), _text), _text),
        max_size=8,
    ).map(tuple),
)


@_settings
@given(_forward_requests)
def test_forward_request_round_trip(request: ForwardRequest) -> None:
    """A generated FORWARD_REQUEST is received exactly as it was sent."""
    ConnectionPair().send(request)


@_settings
@given(_send_headers)
def test_send_headers_round_trip(headers: SendHeaders) -> None:
    """A generated SEND_HEADERS is received exactly as it was sent."""
    pair = ConnectionPair()
    pair.send(GET)
    pair.send(headers)


@_settings
@given(st.lists(st.binary(max_size=9000), max_size=3))
def test_send_body_chunk_round_trip(chunks: list[bytes]) -> None:
    """Generated SEND_BODY_CHUNKs, split to fit the packet, are received as sent."""
    pair = ConnectionPair()
    pair.run([GET, OK])
    for chunk in chunks:
        for i in range(0, max(len(chunk), 1), 8184):
            pair.send(SendBodyChunk(chunk[i : i + 8184]))


def _receiver(vector: Vector) -> AJPConnection:
    """
    @param vector: a golden vector.
    @return: the connection that would receive it, prelude done.
    """
    pair = ConnectionPair()
    pair.run(vector.prelude)
    return pair.peer(Role.PROXY if vector.wire[0] == 0x12 else Role.CONTAINER)


@_settings
@given(st.sampled_from(VECTORS), st.data())
def test_flipped_byte(vector: Vector, data: st.DataObject) -> None:
    """A vector with one byte changed raises nothing but AJPProtocolError."""
    index = data.draw(st.integers(0, len(vector.wire) - 1))
    xor = data.draw(st.integers(1, 255))
    wire = bytearray(vector.wire)
    wire[index] ^= xor
    _consume(_receiver(vector), bytes(wire), data.draw(st.booleans()))


@_settings
@given(st.sampled_from(VECTORS), st.data())
def test_truncated_payload(vector: Vector, data: st.DataObject) -> None:
    """A vector whose payload is cut short (length field fixed up) is rejected cleanly."""
    cut = data.draw(st.integers(0, max(0, len(vector.wire) - 5)))
    payload = vector.wire[4 : 4 + cut]
    wire = vector.wire[:2] + struct.pack(">H", len(payload)) + payload
    _consume(_receiver(vector), wire, data.draw(st.booleans()))


@_settings
@given(st.sampled_from(VECTORS), st.data())
def test_truncated_stream(vector: Vector, data: st.DataObject) -> None:
    """A vector cut short followed by end of file raises nothing but AJPProtocolError."""
    cut = data.draw(st.integers(0, len(vector.wire) - 1))
    _consume(_receiver(vector), vector.wire[:cut], True)


_MAGIC_BYTES = {Role.PROXY: b"AB", Role.CONTAINER: b"\x12\x34"}


@_settings
@given(st.sampled_from(list(Role)), st.integers(0, 3), st.integers(8189, 0xFFFF), st.binary(max_size=64))
def test_declared_length_beyond_packet_size(role: Role, prelude: int, length: int, tail: bytes) -> None:
    """A header claiming more than the packet size is refused from the header alone."""
    conn = _prepared(role, prelude)
    conn.receive_data(_MAGIC_BYTES[role] + struct.pack(">H", length) + tail)
    try:
        event = conn.next_event()
    except AJPProtocolError:
        return
    raise AssertionError(f"accepted a packet header claiming {length} bytes: {event!r}")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(Role)), st.integers(0, 3), st.data())
def test_allocation_bounded_by_input(role: Role, prelude: int, data: st.DataObject) -> None:
    """
    Parsing never allocates much more than the bytes it was given: lengths
    inside packets (strings, header counts, chunk sizes) are checked against
    the packet before anything is built from them.
    """
    magic = 0x4142 if role is Role.PROXY else 0x1234
    wire = data.draw(st.one_of(_packets(magic), st.binary(max_size=400)))
    # Inflate one length-looking field so that it claims far more than is there.
    if len(wire) > 8:
        at = data.draw(st.integers(5, len(wire) - 2))
        wire = wire[:at] + b"\xff\xfe" + wire[at + 2 :]
    conn = _prepared(role, prelude)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        _consume(conn, wire, True)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 + 8 * len(wire), (peak, len(wire))


_body_chunks = st.lists(st.binary(min_size=1, max_size=300), max_size=3)


@_settings
@given(
    st.lists(
        st.tuples(st.booleans(), _body_chunks, _send_headers, _body_chunks),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_whole_exchanges_round_trip(
    exchanges: list[tuple[bool, list[bytes], SendHeaders, list[bytes]]], last_reuse: bool
) -> None:
    """
    Several exchanges on one connection (CPING/CPONG, a chunked request body
    asked for chunk by chunk, headers, body chunks, END_RESPONSE) are
    received message for message as sent, both roles agreeing on the state.
    """
    pair = ConnectionPair()
    for i, (cping, body, headers, response) in enumerate(exchanges):
        if i:
            pair.proxy.start_next_cycle()
            pair.container.start_next_cycle()
        if cping:
            pair.run([CPing(), CPong()])
        pair.send(CHUNKED_POST)
        for chunk in body:
            pair.send(GetBodyChunk(8186))
            pair.send(RequestBody(chunk))
        pair.send(GetBodyChunk(8186))
        pair.send(RequestBody(b""))
        pair.send(headers)
        for chunk in response:
            pair.send(SendBodyChunk(chunk))
        pair.send(EndResponse(last_reuse if i == len(exchanges) - 1 else True))
    assert pair.proxy.reusable is last_reuse
