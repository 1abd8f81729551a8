"""
Tests for the AJP data types in L{twisted_lb.ajp._wire}.
"""

from __future__ import annotations

import pytest

from twisted_lb.ajp import LocalProtocolError, RemoteProtocolError
from twisted_lb.ajp._wire import (
    expect_end,
    put_bool,
    put_byte,
    put_int,
    put_string,
    read_bool,
    read_byte,
    read_bytes,
    read_int,
    read_string,
)


def _put(putter, value) -> bytes:  # type: ignore[no-untyped-def]
    """
    Run one encoder and join its output.
    """
    parts: list[bytes] = []
    putter(parts.append, value)
    return b"".join(parts)


def test_string_encoding() -> None:
    """A string is a 2-byte length, the bytes and a NUL."""
    assert _put(put_string, b"HTTP/1.1") == b"\x00\x08HTTP/1.1\x00"


def test_empty_string_encoding() -> None:
    """The empty string is 00 00 00."""
    assert _put(put_string, b"") == b"\x00\x00\x00"


def test_null_string_encoding() -> None:
    """None is the null string FF FF with no terminator."""
    assert _put(put_string, None) == b"\xff\xff"


def test_string_too_long() -> None:
    """A string of 65535 bytes cannot be told from the null string and is refused."""
    with pytest.raises(LocalProtocolError):
        _put(put_string, b"x" * 0xFFFF)


def test_string_must_be_bytes() -> None:
    """A str is refused: AJP strings are raw bytes."""
    with pytest.raises(LocalProtocolError):
        _put(put_string, "text")


def test_int_encoding() -> None:
    """An integer is 2 bytes big-endian."""
    assert _put(put_int, 443) == b"\x01\xbb"


@pytest.mark.parametrize("value", [-1, 65536])
def test_int_out_of_range(value: int) -> None:
    """Integers outside 0..65535 are refused."""
    with pytest.raises(LocalProtocolError):
        _put(put_int, value)


def test_bool_encoding() -> None:
    """Booleans are sent as exactly 1 or 0."""
    assert _put(put_bool, True) == b"\x01"
    assert _put(put_bool, False) == b"\x00"


def test_byte_encoding() -> None:
    """A byte is one byte, and 256 is refused."""
    assert _put(put_byte, 0xFF) == b"\xff"
    with pytest.raises(LocalProtocolError):
        _put(put_byte, 256)


def test_read_string() -> None:
    """A string decodes to bytes and the offset after its NUL."""
    value, offset = read_string(b"\x00\x03abc\x00rest", 0)
    assert (value, offset) == (b"abc", 6)
    assert type(value) is bytes


def test_read_string_from_memoryview() -> None:
    """Decoding from a memoryview still returns bytes."""
    value, _ = read_string(memoryview(b"\x00\x03abc\x00"), 0)
    assert type(value) is bytes and value == b"abc"


def test_read_null_string() -> None:
    """FF FF decodes to None and consumes two bytes only."""
    assert read_string(b"\xff\xff\x00", 0) == (None, 2)


def test_read_bytes_null_is_empty() -> None:
    """read_bytes takes the null string as empty."""
    assert read_bytes(b"\xff\xff", 0) == (b"", 2)


def test_read_string_without_nul() -> None:
    """A string whose terminator is not 0x00 is a remote error."""
    with pytest.raises(RemoteProtocolError, match="NUL"):
        read_string(b"\x00\x03abcX", 0)


def test_read_string_missing_terminator() -> None:
    """A string that ends where its NUL should be is truncated."""
    with pytest.raises(RemoteProtocolError, match="truncated"):
        read_string(b"\x00\x03abc", 0)


def test_read_string_truncated_length() -> None:
    """A string length cut in half is truncated."""
    with pytest.raises(RemoteProtocolError, match="truncated"):
        read_string(b"\x00", 0)


def test_read_int() -> None:
    """An integer decodes big-endian."""
    assert read_int(b"\x1f\xfa", 0) == (8186, 2)


def test_read_int_truncated() -> None:
    """An integer with one byte missing is truncated."""
    with pytest.raises(RemoteProtocolError, match="truncated integer"):
        read_int(b"\x00\x01\x1f", 2)


def test_read_bool_nonzero_is_true() -> None:
    """Any nonzero boolean byte reads as true."""
    assert read_bool(b"\x02", 0) == (True, 1)
    assert read_bool(b"\x00", 0) == (False, 1)


def test_read_bool_and_byte_truncated() -> None:
    """Reading a boolean or byte past the end is truncated."""
    with pytest.raises(RemoteProtocolError):
        read_bool(b"", 0)
    with pytest.raises(RemoteProtocolError):
        read_byte(b"\x01", 1)


def test_expect_end() -> None:
    """Bytes left after a message are trailing garbage."""
    expect_end(b"abc", 3, "TEST")
    with pytest.raises(RemoteProtocolError, match="trailing"):
        expect_end(b"abcd", 3, "TEST")
