"""
Where WebSocket frames begin and end (RFC 6455 section 5.2), for a relay
that passes frames on as they arrive instead of assembling messages.

A L{FrameScanner} reads the bytes one side of a tunnel sends. It looks at
each frame's header only: the payload is never copied, unmasked or
inflated, so the bytes can be written to the other side exactly as they
came, a piece of a large frame as soon as it arrives. It checks the rules a
frame header must follow (masking direction, opcodes, fragmentation, RSV
bits only where an extension gave them a meaning, control frames short and
whole, minimal length encoding) and, optionally, the size of a message.

It stops at a close frame (the close handshake is the WebSocket library's
business) and at the first broken header, with the close code the protocol
prescribes. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CLOSE_FRAME",
    "FrameScanner",
    "Stop",
    "rsv_rules",
]

_CONTINUATION, _TEXT, _BINARY, _CLOSE = 0x0, 0x1, 0x2, 0x8
_RSV1 = 0x40
_ALL_RSV = 0x70

#: Close codes (RFC 6455 section 7.4.1).
PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009


class Stop:
    """
    Why a scan stopped before the end of the bytes: a close frame starts
    there (L{code} is C{None}), or a frame header broke a rule (L{code} is
    the close code to fail the connection with, L{reason} says why).
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Stop({self.code!r}, {self.reason!r})"


#: The stop at a close frame.
CLOSE_FRAME = Stop(None, "close frame")


def rsv_rules(extensions: Iterable[str]) -> tuple[int, int, int]:
    """
    The RSV bits allowed on the first frame of a data message, on its
    continuation frames and on control frames, once the two ends agreed on
    C{extensions} (their names, in lower case).

    C{permessage-deflate} gives RSV1 a meaning on a message's first frame
    only (RFC 7692 section 6); an extension this proxy does not know may use
    any RSV bit anywhere, and the two ends that agreed on it check them.
    """
    names = {name for name in extensions if name}
    if not names:
        return 0, 0, 0
    if names <= {"permessage-deflate"}:
        return _RSV1, 0, 0
    return _ALL_RSV, _ALL_RSV, _ALL_RSV


class FrameScanner:
    """
    The frames one side of a tunnel sends, scanned as bytes arrive.

    @ivar mid_frame: whether the bytes passed on so far end inside a frame
        (a frame of the other side's own must not be written now).
    """

    __slots__ = (
        "_masked",
        "_rsv_first",
        "_rsv_rest",
        "_rsv_control",
        "_max",
        "_left",
        "_held",
        "_in_message",
        "_size",
        "_small_header",
        "_small_max",
    )

    def __init__(
        self,
        *,
        masked: bool,
        rsv: tuple[int, int, int] = (0, 0, 0),
        max_message_size: int = 0,
    ) -> None:
        """
        @param masked: whether every frame must be masked (a client's frames)
            or none may be (a server's).
        @param rsv: the RSV bits allowed, from L{rsv_rules}.
        @param max_message_size: the largest message in bytes (the sum of
            its frames' payloads); 0 for no limit.
        """
        self._masked = 0x80 if masked else 0
        self._rsv_first, self._rsv_rest, self._rsv_control = rsv
        self._max = max_message_size
        self._left = 0  # payload bytes of the current frame still to come
        self._held = b""  # the start of a frame header cut by the end of a read
        self._in_message = False
        self._size = 0
        # The fast path's frame: a whole text or binary message with a
        # one-byte length (and a mask key, from a client) within the limit.
        self._small_header = 6 if masked else 2
        self._small_max = min(125, max_message_size) if max_message_size else 125

    @property
    def mid_frame(self) -> bool:
        return self._left > 0

    def scan(self, data: bytes) -> tuple[bytes, int, Stop | None]:
        """
        Scan the bytes that just arrived.

        @return: C{(buffer, end, stop)}: C{buffer[:end]} may be passed on as
            it is (C{buffer} is C{data}, or C{data} after the start of a
            header held back from the last call). With C{stop} C{None}, what
            follows C{end} is the start of a header, held back until the
            rest arrives. Otherwise a close frame or a broken header starts
            at C{end}, and this scanner must not be fed again.
        """
        if self._held:
            data = self._held + data
            self._held = b""
        n = len(data)
        i = self._left
        if i >= n:
            self._left = i - n
            return data, n, None
        self._left = 0
        masked = self._masked
        # The common frame, a whole small text or binary message, masked as
        # it must be, is checked in one test; anything else takes the rules
        # one by one below.
        small_header = self._small_header
        small_max = self._small_max
        while n - i >= 2:
            b0 = data[i]
            b1 = data[i + 1]
            length = b1 & 0x7F
            if (
                (b0 == 0x81 or b0 == 0x82)
                and b1 & 0x80 == masked
                and length <= small_max
                and not self._in_message
            ):
                if n - i < small_header:
                    break
                i += small_header + length
                continue
            header = (2 if length < 126 else 4 if length == 126 else 10) + (4 if b1 & 0x80 else 0)
            if n - i < header:
                break
            if length == 126:
                length = (data[i + 2] << 8) | data[i + 3]
                if length < 126:
                    return data, i, Stop(PROTOCOL_ERROR, "frame length not minimally encoded")
            elif length == 127:
                length = int.from_bytes(data[i + 2 : i + 10], "big")
                if length < 65536:
                    return data, i, Stop(PROTOCOL_ERROR, "frame length not minimally encoded")
                if length >> 63:
                    return data, i, Stop(PROTOCOL_ERROR, "frame length over 2^63")
            if b1 & 0x80 != masked:
                return (
                    data,
                    i,
                    Stop(
                        PROTOCOL_ERROR,
                        "unmasked frame from the client"
                        if masked
                        else "masked frame from the server",
                    ),
                )
            opcode = b0 & 0x0F
            rsv = b0 & 0x70
            if opcode & 0x8:
                if not b0 & 0x80:
                    return data, i, Stop(PROTOCOL_ERROR, "fragmented control frame")
                if length > 125:
                    return data, i, Stop(PROTOCOL_ERROR, "control frame longer than 125 bytes")
                if opcode > 0xA:
                    return data, i, Stop(PROTOCOL_ERROR, f"reserved control opcode {opcode}")
                if rsv & ~self._rsv_control:
                    return data, i, Stop(PROTOCOL_ERROR, "RSV bits set on a control frame")
                if opcode == _CLOSE:
                    return data, i, CLOSE_FRAME
            else:
                if opcode == _CONTINUATION:
                    if not self._in_message:
                        return data, i, Stop(PROTOCOL_ERROR, "continuation frame outside a message")
                    if rsv & ~self._rsv_rest:
                        return (
                            data,
                            i,
                            Stop(PROTOCOL_ERROR, "RSV bits set with no extension to mean them"),
                        )
                elif opcode <= _BINARY:
                    if self._in_message:
                        return (
                            data,
                            i,
                            Stop(PROTOCOL_ERROR, "new message inside a fragmented message"),
                        )
                    if rsv & ~self._rsv_first:
                        return (
                            data,
                            i,
                            Stop(PROTOCOL_ERROR, "RSV bits set with no extension to mean them"),
                        )
                    self._size = 0
                else:
                    return data, i, Stop(PROTOCOL_ERROR, f"reserved data opcode {opcode}")
                self._in_message = not b0 & 0x80
                if self._max:
                    self._size += length
                    if self._size > self._max:
                        return data, i, Stop(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
            i += header + length
        if i > n:  # inside the payload of the last frame
            self._left = i - n
            return data, n, None
        if i < n:
            self._held = data[i:]
        return data, i, None
