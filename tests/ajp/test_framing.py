"""
Tests for packet framing (L{twisted_lb.ajp._framing}) and for the message
decoders applied to whole payloads.
"""

from __future__ import annotations

import pytest

from tests.ajp.vectors import VECTORS, h
from twisted_lb.ajp import RemoteProtocolError, SendBodyChunk
from twisted_lb.ajp._decode import decode_container_message, decode_request_body
from twisted_lb.ajp._framing import PacketReader, frame


def test_frame() -> None:
    """frame() prepends the magic and the payload length."""
    assert frame(0x4142, b"\x09") == h("41 42 00 01 09")


def test_reader_returns_payloads() -> None:
    """
    Two packets in one segment come out as two payloads, read-only views of
    the segment (not copied); the reader holds nothing after them.
    """
    segment = h("41 42 00 01 09 41 42 00 02 05 01")
    reader = PacketReader(0x4142, 8192)
    reader.feed(segment)
    first = reader.next_payload()
    assert first == b"\x09" and type(first) is memoryview
    assert first.readonly and first.obj is segment
    assert len(reader) == 6
    assert reader.next_payload() == b"\x05\x01"
    assert reader.next_payload() is None
    assert len(reader) == 0


@pytest.mark.parametrize("split", [None, 2, 7])
def test_reader_next_payload_of_a_kind(split: int | None) -> None:
    """With a kind, a packet of another type (or an empty one) is left in place, in both buffers."""
    wire = h("41 42 00 01 03 41 42 00 00 41 42 00 02 05 01")
    reader = PacketReader(0x4142, 8192)
    first = None
    if split is None:
        reader.feed(wire)
    else:
        reader.feed(wire[:split])
        first = reader.next_payload(3)
        assert (first is None) == (split < 5)  # the first packet is 5 bytes
        reader.feed(wire[split:])
    if first is None:
        first = reader.next_payload(3)
    assert first == b"\x03"
    assert reader.next_payload(3) is None  # empty payload: no type byte
    assert reader.next_payload() == b""
    assert reader.next_payload(3) is None
    assert len(reader) == 6
    assert reader.next_payload(5) == b"\x05\x01"
    assert len(reader) == 0


def test_reader_split_packet_then_whole_packets() -> None:
    """A packet split across segments is gathered (as bytes); whole ones after it are views."""
    reader = PacketReader(0x4142, 8192)
    reader.feed(h("41 42 00 03 01"))
    assert reader.next_payload() is None
    assert len(reader) == 5
    reader.feed(h("02 03 41 42 00 01 07 41 42"))
    first = reader.next_payload()
    assert first == b"\x01\x02\x03" and type(first) is bytes
    assert reader.next_payload() == b"\x07"
    assert reader.next_payload() is None
    assert reader.buffered() == b"\x41\x42"
    reader.feed(h("00 01 08"))
    assert reader.next_payload() == b"\x08"
    assert len(reader) == 0


def test_reader_copies_only_the_rest_of_a_split_packet() -> None:
    """After a split packet is completed, the packets behind it are views of the new segment."""
    reader = PacketReader(0x4142, 8192)
    reader.feed(h("41 42 00 03 01"))
    assert reader.next_payload() is None
    segment = h("02 03 41 42 00 01 07")
    reader.feed(segment)
    assert len(reader) == 12
    assert reader.buffered() == h("41 42 00 03 01 02 03 41 42 00 01 07")
    assert reader.next_payload() == b"\x01\x02\x03"
    second = reader.next_payload()
    assert type(second) is memoryview and second.obj is segment and second == b"\x07"


def test_reader_header_split_in_two() -> None:
    reader = PacketReader(0x4142, 8192)
    for piece in (h("41"), h("42 00"), h("02 05 06 41 42 00 00")):
        reader.feed(piece)
    assert reader.next_payload() == b"\x05\x06"
    assert reader.next_payload() == b""
    assert reader.next_payload() is None


def test_reader_feed_while_a_segment_is_unread() -> None:
    """Bytes fed while whole packets are still unread are kept in order."""
    reader = PacketReader(0x4142, 8192)
    reader.feed(h("41 42 00 01 01 41 42 00 01 02"))
    assert reader.next_payload() == b"\x01"
    reader.feed(h("41 42 00 01 03"))
    assert [bytes(reader.next_payload() or b"") for _ in range(2)] == [b"\x02", b"\x03"]
    assert reader.next_payload() is None


def test_reader_segmentation() -> None:
    """Every strict prefix of a packet gives None, the whole packet its payload."""
    reader = PacketReader(0x1234, 8192)
    packet = VECTORS[0].wire
    for i in range(len(packet) - 1):
        reader.feed(packet[i : i + 1])
        assert reader.next_payload() is None
    reader.feed(packet[-1:])
    assert reader.next_payload() == packet[4:]


def test_reader_empty_payload() -> None:
    """A zero-length payload (the end-of-body packet) is returned as b''."""
    reader = PacketReader(0x1234, 8192)
    reader.feed(h("12 34 00 00"))
    assert reader.next_payload() == b""


@pytest.mark.parametrize("data", [h("41"), h("41 41"), h("12 34 00 01 09")])
def test_reader_wrong_magic(data: bytes) -> None:
    """A wrong magic is rejected as soon as its first differing byte arrives."""
    reader = PacketReader(0x1234 if data[0] == 0x41 else 0x4142, 8192)
    reader.feed(data)
    with pytest.raises(RemoteProtocolError, match="signature"):
        reader.next_payload()


def test_reader_oversize_from_header() -> None:
    """A declared payload above packet_size - 4 is rejected from the header alone."""
    reader = PacketReader(0x4142, 8192)
    reader.feed(h("41 42 1f fd"))  # 8189 + 4 > 8192
    with pytest.raises(RemoteProtocolError, match="8193 bytes"):
        reader.next_payload()


def test_reader_largest_payload() -> None:
    """A packet of exactly packet_size bytes is accepted."""
    reader = PacketReader(0x4142, 8192)
    reader.feed(h("41 42 1f fc") + b"\x00" * 8188)
    assert len(reader.next_payload() or b"") == 8188


def test_reader_max_packet_size() -> None:
    """With a 65536-byte packet size, a 65532-byte payload is accepted."""
    reader = PacketReader(0x4142, 65536)
    reader.feed(h("41 42 ff fc") + b"\x00" * 0xFFFC)
    assert len(reader.next_payload() or b"") == 0xFFFC


def test_send_body_chunk_without_nul_tolerated() -> None:
    """A SEND_BODY_CHUNK lacking only its trailing NUL is accepted."""
    assert decode_container_message(h("03 00 02 68 69")) == SendBodyChunk(b"hi")


@pytest.mark.parametrize(
    "payload",
    [
        h("03 00 02 68 69 00 00"),  # one byte too many
        h("03 00 03 68 69"),  # declared length runs past the payload
        h("03 00 02 68 69 01"),  # terminator is not NUL
        h("03 00"),  # truncated length
    ],
)
def test_send_body_chunk_length_mismatch(payload: bytes) -> None:
    """A SEND_BODY_CHUNK whose length disagrees with its payload is rejected."""
    with pytest.raises(RemoteProtocolError):
        decode_container_message(payload)


def test_request_body_zero_length_field() -> None:
    """A body payload holding a zero data length is the end of the body too."""
    assert decode_request_body(h("00 00")).data == b""


@pytest.mark.parametrize("payload", [h("00"), h("00 05 68 69"), h("00 01 68 69")])
def test_request_body_length_mismatch(payload: bytes) -> None:
    """A body payload whose data length disagrees with its size is rejected."""
    with pytest.raises(RemoteProtocolError):
        decode_request_body(payload)


@pytest.mark.parametrize(
    "payload",
    [h(""), h("01"), h("63"), h("05"), h("05 01 00"), h("06 1f"), h("09 00")],
    ids=["empty", "type-1", "type-99", "end-short", "end-long", "gbc-short", "cpong-long"],
)
def test_bad_container_payloads(payload: bytes) -> None:
    """Empty, unknown-type, truncated and over-long container messages are rejected."""
    with pytest.raises(RemoteProtocolError):
        decode_container_message(payload)
