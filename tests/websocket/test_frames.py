"""The frame scanner: frame boundaries and header rules, on bytes."""

from __future__ import annotations

import struct

import pytest

from twisted_lb.websocket.frames import CLOSE_FRAME, FrameScanner, rsv_rules


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = b"\x01\x02\x03\x04",
    rsv: int = 0,
) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", first, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, m | 126, n)
    else:
        head = struct.pack("!BBQ", first, m | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def scan_all(scanner: FrameScanner, data: bytes, step: int) -> bytes:
    """Feed C{data} C{step} bytes at a time; what may be passed on."""
    out = b""
    for i in range(0, len(data), step):
        buffer, end, stop = scanner.scan(data[i : i + step])
        assert stop is None
        out += buffer[:end]
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_frames_pass_unchanged_whatever_the_reads(step):
    data = (
        frame(1, b"hello")
        + frame(2, b"x" * 300)
        + frame(9, b"ping")
        + frame(1, b"a" * 70_000, fin=False)
        + frame(10, b"")
        + frame(0, b"b" * 10)
    )
    scanner = FrameScanner(masked=True)
    assert scan_all(scanner, data, step) == data
    assert not scanner.mid_frame


def test_a_header_cut_by_a_read_is_held_back():
    data = frame(2, b"z" * 1000, mask=None)
    scanner = FrameScanner(masked=False)
    buffer, end, stop = scanner.scan(data[:3])  # 2 + 2 bytes of header needed
    assert (end, stop) == (0, None)
    buffer, end, stop = scanner.scan(data[3:500])
    assert buffer[:end] == data[:500] and scanner.mid_frame
    buffer, end, stop = scanner.scan(data[500:])
    assert buffer[:end] == data[500:] and not scanner.mid_frame


def test_a_large_frame_passes_piece_by_piece():
    """A frame declaring 100 MB: each piece is passed on as it arrives."""
    scanner = FrameScanner(masked=True)
    head = struct.pack("!BBQ", 0x82, 0x80 | 127, 100_000_000) + b"\0\0\0\0"
    buffer, end, stop = scanner.scan(head + b"a" * 100)
    assert end == len(head) + 100 and stop is None
    assert scanner.mid_frame
    for _ in range(10):
        chunk = b"b" * 65536
        buffer, end, stop = scanner.scan(chunk)
        assert buffer is chunk and end == 65536


def test_close_frame_stops_the_scan_where_it_starts():
    data = frame(1, b"bye") + frame(8, b"\x03\xe8") + frame(1, b"after")
    scanner = FrameScanner(masked=True)
    buffer, end, stop = scanner.scan(data)
    assert stop is CLOSE_FRAME
    assert buffer[:end] == frame(1, b"bye")
    assert buffer[end:].startswith(frame(8, b"\x03\xe8"))


@pytest.mark.parametrize(
    ("data", "masked", "reason"),
    [
        (frame(1, b"x", mask=None), True, "unmasked frame from the client"),
        (frame(1, b"x"), False, "masked frame from the server"),
        (frame(1, b"x", rsv=0x40), True, "RSV bits"),
        (frame(3, b"x"), True, "reserved data opcode 3"),
        (frame(11, b"x"), True, "reserved control opcode 11"),
        (frame(9, b"x", fin=False), True, "fragmented control frame"),
        (frame(9, b"x" * 126), True, "control frame longer than 125"),
        (frame(0, b"x"), True, "continuation frame outside a message"),
        (frame(1, b"x", fin=False) + frame(1, b"y"), True, "new message inside"),
        (b"\x81\xfe\x00\x05" + b"\0" * 4 + b"hello", True, "not minimally encoded"),
        (b"\x81\xff" + struct.pack("!Q", 1 << 63) + b"\0" * 4, True, "over 2^63"),
    ],
)
def test_broken_headers_stop_with_1002(data, masked, reason):
    scanner = FrameScanner(masked=masked)
    buffer, end, stop = scanner.scan(data)
    assert stop is not None and stop.code == 1002 and reason in stop.reason
    # What came before the broken frame is passed on; the broken frame is not.
    before = frame(1, b"x", fin=False) if reason == "new message inside" else b""
    assert buffer[:end] == before


def test_permessage_deflate_allows_rsv1_on_a_messages_first_frame_only():
    rsv = rsv_rules(["permessage-deflate"])
    ok = frame(1, b"c", fin=False, rsv=0x40) + frame(0, b"d")
    buffer, end, stop = FrameScanner(masked=True, rsv=rsv).scan(ok)
    assert stop is None and end == len(ok)
    for bad in (
        frame(1, b"c", fin=False, rsv=0x40) + frame(0, b"d", rsv=0x40),
        frame(9, b"", rsv=0x40),
        frame(1, b"c", rsv=0x20),
    ):
        buffer, end, stop = FrameScanner(masked=True, rsv=rsv).scan(bad)
        assert stop is not None and stop.code == 1002


def test_unknown_extension_leaves_rsv_bits_to_the_ends():
    rsv = rsv_rules(["x-webkit-something"])
    data = frame(1, b"c", rsv=0x70) + frame(9, b"", rsv=0x10)
    assert FrameScanner(masked=True, rsv=rsv).scan(data)[1:] == (len(data), None)
    assert rsv_rules([]) == (0, 0, 0)


def test_message_size_limit_counts_every_fragment():
    scanner = FrameScanner(masked=True, max_message_size=100)
    ok = frame(2, b"a" * 60, fin=False) + frame(0, b"b" * 40) + frame(2, b"c" * 100)
    assert scanner.scan(ok)[1:] == (len(ok), None)
    buffer, end, stop = scanner.scan(
        frame(2, b"a" * 60, fin=False) + frame(9, b"p") + frame(0, b"b" * 41)
    )
    assert stop is not None and stop.code == 1009
    assert buffer[:end] == frame(2, b"a" * 60, fin=False) + frame(9, b"p")
