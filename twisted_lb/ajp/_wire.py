"""
AJP/1.3 data types: byte, boolean, integer and string.

Encoders append their output to a list of C{bytes} parts (joined once per
message with C{b"".join}).  Decoders take a buffer (C{bytes} or a
C{memoryview} of unsigned bytes) and an offset, and return C{(value,
new_offset)}; they raise L{RemoteProtocolError} when the buffer ends before
the value does.

A string is a 2-byte big-endian length C{n}, C{n} bytes and a C{0x00}
terminator; the length C{0xFFFF} is the I{null} string, followed by nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ._constants import MAX_STRING_LENGTH
from .errors import LocalProtocolError, RemoteProtocolError

#: What the decoders accept.
Buffer = bytes | memoryview
#: The C{append} method of a list of parts.
Append = Callable[[bytes], None]

U16 = struct.Struct(">H")
#: Packet header: magic, payload length.
PACKET_HEADER = struct.Struct(">HH")

pack_u16 = U16.pack
_unpack_u16 = U16.unpack_from

NULL_STRING = b"\xff\xff"
EMPTY_STRING = b"\x00\x00\x00"
_NUL = b"\x00"
_TRUE = b"\x01"
_FALSE = b"\x00"


def _truncated(what: str, offset: int) -> RemoteProtocolError:
    """
    Build the error for a value that runs past the end of its packet.

    @param what: the name of the value being read.
    @param offset: where it starts in the payload.
    @return: the exception to raise.
    """
    return RemoteProtocolError(f"truncated {what} at payload offset {offset}")


def put_byte(append: Append, value: int) -> None:
    """
    Append a byte.

    @param append: the C{append} method of the parts list.
    @param value: 0..255.
    @raise LocalProtocolError: if C{value} is out of range.
    """
    if not 0 <= value <= 0xFF:
        raise LocalProtocolError(f"byte out of range: {value!r}")
    append(bytes((value,)))


def put_bool(append: Append, value: bool) -> None:
    """
    Append a boolean as exactly C{0x01} or C{0x00}.

    @param append: the C{append} method of the parts list.
    @param value: the truth value.
    """
    append(_TRUE if value else _FALSE)


def put_int(append: Append, value: int) -> None:
    """
    Append an integer (2 bytes, big-endian, unsigned).

    @param append: the C{append} method of the parts list.
    @param value: 0..65535.
    @raise LocalProtocolError: if C{value} is out of range or not an integer.
    """
    try:
        append(pack_u16(value))
    except struct.error as e:
        raise LocalProtocolError(f"integer out of range: {value!r}") from e


def put_bytes(append: Append, value: bytes) -> None:
    """
    Append a string that may not be null.

    @param append: the C{append} method of the parts list.
    @param value: the raw bytes.
    @raise LocalProtocolError: if the value is not bytes or is 65535 bytes
        or longer.
    """
    if not isinstance(value, bytes):
        raise LocalProtocolError(f"AJP strings are bytes, not {type(value).__name__}")
    n = len(value)
    if n > MAX_STRING_LENGTH:
        raise LocalProtocolError(f"string of {n} bytes is too long for AJP")
    append(pack_u16(n))
    append(value)
    append(_NUL)


def put_string(append: Append, value: bytes | None) -> None:
    """
    Append a string, or the null string for C{None}.

    @param append: the C{append} method of the parts list.
    @param value: the raw bytes, or C{None}.
    @raise LocalProtocolError: as L{put_bytes}.
    """
    if value is None:
        append(NULL_STRING)
    else:
        put_bytes(append, value)


def read_byte(buf: Buffer, offset: int) -> tuple[int, int]:
    """
    Read a byte.

    @param buf: the payload.
    @param offset: where the byte is.
    @return: C{(value, offset + 1)}.
    @raise RemoteProtocolError: if the payload ends first.
    """
    if offset >= len(buf):
        raise _truncated("byte", offset)
    return buf[offset], offset + 1


def read_bool(buf: Buffer, offset: int) -> tuple[bool, int]:
    """
    Read a boolean; any nonzero byte is true (robustness), senders use 1.

    @param buf: the payload.
    @param offset: where the boolean is.
    @return: C{(value, offset + 1)}.
    @raise RemoteProtocolError: if the payload ends first.
    """
    if offset >= len(buf):
        raise _truncated("boolean", offset)
    return buf[offset] != 0, offset + 1


def read_int(buf: Buffer, offset: int) -> tuple[int, int]:
    """
    Read an integer (2 bytes, big-endian, unsigned).

    @param buf: the payload.
    @param offset: where the integer is.
    @return: C{(value, offset + 2)}.
    @raise RemoteProtocolError: if the payload ends first.
    """
    end = offset + 2
    if end > len(buf):
        raise _truncated("integer", offset)
    return _unpack_u16(buf, offset)[0], end


def read_string(buf: Buffer, offset: int) -> tuple[bytes | None, int]:
    """
    Read a string, checking its NUL terminator.

    @param buf: the payload.
    @param offset: where the string's length is.
    @return: C{(value, new_offset)}; C{value} is C{None} for the null string.
    @raise RemoteProtocolError: if the payload ends first or the terminator
        is not C{0x00}.
    """
    start = offset + 2
    if start > len(buf):
        raise _truncated("string length", offset)
    n = _unpack_u16(buf, offset)[0]
    if n == 0xFFFF:
        return None, start
    stop = start + n
    if stop >= len(buf):
        raise _truncated("string", offset)
    if buf[stop] != 0:
        raise RemoteProtocolError(f"string at payload offset {offset} is not NUL-terminated")
    return bytes(buf[start:stop]), stop + 1


def read_bytes(buf: Buffer, offset: int) -> tuple[bytes, int]:
    """
    Read a string where a null string is taken as the empty string.

    Tomcat itself reads a null header value or reason as empty, so a decoder
    accepting it is no less strict than the container.

    @param buf: the payload.
    @param offset: where the string's length is.
    @return: C{(value, new_offset)}.
    @raise RemoteProtocolError: as L{read_string}.
    """
    value, offset = read_string(buf, offset)
    return (b"" if value is None else value), offset


def expect_end(buf: Buffer, offset: int, what: str) -> None:
    """
    Check that a message used its whole payload.

    @param buf: the payload.
    @param offset: where the message ended.
    @param what: the message name, for the error text.
    @raise RemoteProtocolError: if bytes remain.
    """
    if offset != len(buf):
        raise RemoteProtocolError(f"{len(buf) - offset} trailing byte(s) inside a {what} packet")
