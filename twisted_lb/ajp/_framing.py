"""
AJP/1.3 packet framing: 2 bytes magic, 2 bytes payload length, payload.

L{PacketReader} is the receive buffer of one direction.  It checks the magic
and the declared length as soon as they are buffered, so an oversized packet
is rejected from its header alone, before its payload is waited for.
"""

from __future__ import annotations

from ._constants import HEADER_LENGTH
from ._wire import PACKET_HEADER
from .errors import RemoteProtocolError

_pack_header = PACKET_HEADER.pack
_unpack_header = PACKET_HEADER.unpack_from


def frame(magic: int, payload: bytes) -> bytes:
    """
    Wrap a payload in a packet header.

    @param magic: C{0x1234} (proxy to container) or C{0x4142} (container to
        proxy).
    @param payload: the complete payload.
    @return: the packet.
    """
    return _pack_header(magic, len(payload)) + payload


class PacketReader:
    """
    Reassemble packets of one direction from arbitrary segments.

    A segment is not copied while whole packets are read from it: their
    payloads are C{memoryview}s of the segment (which is immutable). Only a
    packet split across segments is gathered in a buffer, and its payload is
    returned as C{bytes}.

    @ivar _buffer: bytes of a packet split across segments (read first).
    @ivar _segment: the segment being read after the buffer, or C{None}.
    @ivar _offset: where the next packet starts in C{_segment}.
    """

    __slots__ = (
        "_buffer", "_segment", "_view", "_offset", "_magic", "_magic_bytes", "_max_payload",
        "_packet_size",
    )

    def __init__(self, magic: int, packet_size: int) -> None:
        """
        @param magic: the magic every packet must start with.
        @param packet_size: the largest packet (header included) accepted.
        """
        self._buffer = bytearray()
        self._segment: bytes | None = None
        self._view: memoryview | None = None
        self._offset = 0
        self._magic = magic
        self._magic_bytes = magic.to_bytes(2, "big")
        self._packet_size = packet_size
        self._max_payload = packet_size - HEADER_LENGTH

    def __len__(self) -> int:
        """
        @return: the number of buffered bytes.
        """
        size = len(self._buffer)
        if self._segment is not None:
            size += len(self._segment) - self._offset
        return size

    def feed(self, data: bytes) -> None:
        """
        Buffer received bytes.

        When a packet is split, only its rest is copied from C{data}; the
        packets after it are read from C{data} itself.

        @param data: the next segment.
        """
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        self._spill()
        buf = self._buffer
        offset = 0
        if buf:
            if len(buf) < HEADER_LENGTH:
                offset = min(HEADER_LENGTH - len(buf), len(data))
                buf += data[:offset]
                if len(buf) < HEADER_LENGTH:
                    return
            magic, length = _unpack_header(buf)
            missing = HEADER_LENGTH + length - len(buf)
            rest = len(data) - offset
            if magic != self._magic or length > self._max_payload or missing >= rest or missing < 0:
                # Malformed (next_payload says so), still incomplete, or more
                # than one packet already buffered: keep everything in order.
                buf += memoryview(data)[offset:]
                return
            buf += memoryview(data)[offset : offset + missing]
            offset += missing
        self._segment = data
        self._view = memoryview(data)
        self._offset = offset

    def _spill(self) -> None:
        """Move what is left of the segment into the buffer."""
        if self._segment is not None:
            self._buffer += self._view[self._offset :]  # type: ignore[index]
            self._segment = self._view = None

    def buffered(self) -> bytes:
        """
        @return: a copy of the buffered bytes.
        """
        if self._segment is not None:
            return bytes(self._buffer) + self._segment[self._offset :]
        return bytes(self._buffer)

    def next_payload(self, kind: int | None = None) -> bytes | memoryview | None:
        """
        Return the payload of the next complete packet.

        @param kind: when given, return (and consume) the packet only if its
            payload starts with this type byte; otherwise leave it buffered
            and return C{None}.
        @return: the payload (a C{memoryview} of the received segment when
            the packet came whole in it), or C{None} if no complete packet is
            buffered (or it is not of C{kind}).
        @raise RemoteProtocolError: if the buffered packet starts with the
            wrong magic or declares a payload longer than the packet size
            allows.
        """
        segment = self._segment
        if segment is not None and not self._buffer:
            offset = self._offset
            size = len(segment)
            if size - offset >= HEADER_LENGTH:
                magic, length = _unpack_header(segment, offset)
                if magic != self._magic:
                    raise self._bad_magic(segment[offset : offset + 2])
                if length > self._max_payload:
                    raise self._too_long(length)
                end = offset + HEADER_LENGTH + length
                if end <= size:
                    if kind is not None and (not length or segment[offset + HEADER_LENGTH] != kind):
                        return None
                    payload = self._view[offset + HEADER_LENGTH : end]  # type: ignore[index]
                    if end == size:
                        self._segment = self._view = None
                    else:
                        self._offset = end
                    return payload
            self._spill()
        buf = self._buffer
        available = len(buf)
        if available < HEADER_LENGTH:
            if available and not self._magic_bytes.startswith(buf[:2]):
                raise self._bad_magic(bytes(buf[:2]))
            return None
        magic, length = _unpack_header(buf)
        if magic != self._magic:
            raise self._bad_magic(bytes(buf[:2]))
        if length > self._max_payload:
            raise self._too_long(length)
        end = HEADER_LENGTH + length
        if available < end:
            return None
        if kind is not None and (not length or buf[HEADER_LENGTH] != kind):
            return None
        with memoryview(buf) as view:
            payload = view[HEADER_LENGTH:end].tobytes()
        del buf[:end]
        return payload

    def _too_long(self, length: int) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"packet of {length + HEADER_LENGTH} bytes received "
            f"but the packet size is only {self._packet_size}"
        )

    def _bad_magic(self, seen: bytes) -> RemoteProtocolError:
        """
        @param seen: the first bytes of the packet.
        @return: the error for a packet that does not start with the magic.
        """
        return RemoteProtocolError(
            f"invalid packet signature {seen.hex()}, expected {self._magic_bytes.hex()}"
        )
