"""
Request bodies streamed from a client to a member, sans-IO.

A client's body is decoded as it arrives (L{LengthDecoder} for a
C{Content-Length}, L{ChunkedDecoder} for C{Transfer-Encoding: chunked}) and
fed to a L{StreamedBody}, which a backend reads as the member asks for it
(AJP: a body packet per C{GET_BODY_CHUNK}; HTTP: a body producer). The
buffer between the two is bounded: past C{high_water} bytes the client is
paused until the member has read half of them. Nothing is written to disk.

Nothing here does I/O or imports Twisted: the client channel feeds bytes in
and the backends pull them out; both are told by callbacks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = [
    "BodyError",
    "ChunkedDecoder",
    "LengthDecoder",
    "StreamedBody",
    "PREFETCH",
    "HIGH_WATER",
]

#: Body bytes held before the request is sent to a member (unless the body
#: ends first): a small body goes out whole with its head, and a client too
#: slow to send even this much meets the body deadline before any member is
#: bothered (as Apache's C{mod_proxy} reads ahead before it connects).
PREFETCH = 64 * 1024
#: Body bytes held for a member that reads slower than the client sends:
#: past this the client's connection is paused.
HIGH_WATER = 256 * 1024

#: A chunk-size line (size, extensions) may be at most this long, and the
#: trailer section at most this long in all.
_MAX_LINE = 4096
_MAX_TRAILERS = 16 * 1024
_HEX = frozenset(b"0123456789abcdefABCDEF")


class BodyError(Exception):
    """The client's body framing is broken; the connection cannot go on."""


class LengthDecoder:
    """
    The body of a request with a C{Content-Length}: exactly that many bytes.

    @ivar done: whether the whole body was received.
    """

    __slots__ = ("_left", "done")

    def __init__(self, length: int) -> None:
        self._left = length
        self.done = length == 0

    def feed(self, data: bytes) -> tuple[list[bytes], bytes]:
        """
        Decode C{data}.

        @return: the body bytes in it, and what follows the body (the next
            request's bytes, only once L{done}).
        """
        left = self._left
        if len(data) < left:
            self._left = left - len(data)
            return [data], b""
        self._left = 0
        self.done = True
        return ([data[:left]] if left else []), data[left:]


class ChunkedDecoder:
    """
    A chunked body (RFC 9112 7.1), strictly: hexadecimal sizes, CRLF line
    ends, chunk extensions and trailer fields read and dropped, each line
    bounded. Anything else is a L{BodyError}.

    @ivar done: whether the last chunk and the trailer section were read.
    """

    __slots__ = ("_state", "_line", "_left", "_trailers", "done")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._line = b""
        self._left = 0
        self._trailers = 0
        self.done = False

    def feed(self, data: bytes) -> tuple[list[bytes], bytes]:
        """
        Decode C{data}.

        @return: the body bytes in it, and what follows the body (the next
            request's bytes, only once L{done}).
        @raise BodyError: the framing is broken.
        """
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end and not self.done:
            state = self._state
            if state == self._DATA:
                take = min(self._left, end - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = self._DATA_END
                continue
            line, pos = self._take_line(data, pos)
            if line is None:
                break
            if state == self._SIZE:
                self._size_line(line)
            elif state == self._DATA_END:
                if line:
                    raise BodyError("chunk data longer than its size")
                self._state = self._SIZE
            else:
                self._trailers += len(line) + 2
                if self._trailers > _MAX_TRAILERS:
                    raise BodyError("trailer section too large")
                if not line:
                    self.done = True
        return out, data[pos:] if self.done else b""

    def _take_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """The next CRLF-ended line from C{pos} (with what was held), or C{None}."""
        i = data.find(b"\n", pos)
        if i < 0:
            self._line += data[pos:]
            if len(self._line) > _MAX_LINE:
                raise BodyError("chunk line too long")
            return None, len(data)
        line = self._line + data[pos:i]
        self._line = b""
        if len(line) > _MAX_LINE:
            raise BodyError("chunk line too long")
        if not line.endswith(b"\r") or b"\r" in line[:-1]:
            raise BodyError("chunk line not ended by CRLF")
        return line[:-1], i + 1

    def _size_line(self, line: bytes) -> None:
        size = line.split(b";", 1)[0].rstrip(b" \t")
        if not size or len(size) > 16 or not _HEX.issuperset(size):
            raise BodyError("bad chunk size")
        self._left = int(size, 16)
        self._state = self._DATA if self._left else self._TRAILER


class StreamedBody:
    """
    A request body on its way from the client to a member.

    The client side calls L{feed}, L{end} or L{fail}; a backend calls
    L{read} and, when it returns C{None}, L{when_readable}. The client side
    sets L{pause_client} and L{resume_client}, which keep the bytes held
    here under C{high_water}.

    @ivar length: the C{Content-Length}, or C{None} for a chunked body (an
        unknown length to the member).
    @ivar received: body bytes received from the client so far.
    @ivar sent: body bytes a backend has read so far; once above 0 the
        request is never sent to another member.
    @ivar ended: whether the client sent the whole body.
    @ivar error: why the body cannot be completed, or C{None}.
    """

    __slots__ = (
        "length",
        "received",
        "sent",
        "ended",
        "error",
        "paused",
        "pause_client",
        "resume_client",
        "_chunks",
        "_offset",
        "_held",
        "_high",
        "_prefetch",
        "_readable",
        "_prefetched",
        "_discarding",
    )

    def __init__(
        self, length: int | None, *, prefetch: int = PREFETCH, high_water: int = HIGH_WATER
    ) -> None:
        self.length = length
        self.received = 0
        self.sent = 0
        self.ended = False
        self.error: str | None = None
        #: Whether the client's connection is paused by this body.
        self.paused = False
        self.pause_client: Callable[[], object] | None = None
        self.resume_client: Callable[[], object] | None = None
        self._chunks: deque[bytes] = deque()
        #: How much of the first piece in L{_chunks} was read already.
        self._offset = 0
        self._held = 0
        self._high = high_water
        self._prefetch = prefetch
        self._readable: Callable[[], object] | None = None
        self._prefetched: Callable[[], object] | None = None
        self._discarding = False

    # -- the client side -------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Body bytes from the client."""
        if not data or self.error is not None:
            return
        self.received += len(data)
        if self._discarding:
            return
        self._chunks.append(data)
        self._held += len(data)
        if self._held >= self._prefetch:
            self._fire_prefetched()
        if self._held >= self._high and not self.paused:
            self.paused = True
            if self.pause_client is not None:
                self.pause_client()
        self._fire_readable()

    def end(self) -> None:
        """The client sent the whole body."""
        if self.error is None and not self.ended:
            self.ended = True
            self._fire_prefetched()
            self._fire_readable()

    def fail(self, reason: str) -> None:
        """The body will never be complete (the client left, a limit, bad framing)."""
        if self.error is not None or self.ended:
            return
        self.error = reason
        self._drop_held()
        self._prefetched = None
        self._fire_readable()

    def discard(self) -> None:
        """Nobody will read the rest (the answer is complete): drop it as it comes."""
        self._discarding = True
        self._drop_held()
        self._readable = None
        self._resume()

    # -- the member side -------------------------------------------------

    @property
    def complete(self) -> bool:
        """Whether the client sent the whole body."""
        return self.ended

    def when_prefetched(self, callback: Callable[[], object]) -> None:
        """
        Call C{callback()} once C{prefetch} bytes are held or the body ended
        (at once if so already); never if the body fails first.
        """
        if self.ended or self._held >= self._prefetch:
            callback()
        elif self.error is None:
            self._prefetched = callback

    def read(self, limit: int) -> bytes | None:
        """
        At most C{limit} body bytes: C{b""} at the end of the body, C{None}
        when none are here yet (see L{when_readable}).

        @raise BodyError: the body will never be complete (L{error}).
        """
        if not self._chunks:
            if self.error is not None:
                raise BodyError(self.error)
            return b"" if self.ended else None
        chunks = self._chunks
        first = chunks[0]
        offset = self._offset
        if len(first) - offset > limit:
            # Part of the first piece: a view moves along it (no copy of the rest).
            end = offset + limit
            data = bytes(memoryview(first)[offset:end])
            self._offset = end
        else:
            chunks.popleft()
            data = first[offset:] if offset else first
            self._offset = 0
            size = len(data)
            if chunks and size < limit:
                parts = [data]
                while chunks and size + len(chunks[0]) <= limit:
                    size += len(chunks[0])
                    parts.append(chunks.popleft())
                if chunks and size < limit:
                    self._offset = limit - size
                    parts.append(chunks[0][: self._offset])
                data = b"".join(parts)
        self._held -= len(data)
        self.sent += len(data)
        if self.paused and self._held <= self._high // 2:
            self._resume()
        return data

    def when_readable(self, callback: Callable[[], object]) -> None:
        """Call C{callback()} once L{read} would not return C{None}."""
        if self._chunks or self.ended or self.error is not None:
            callback()
        else:
            self._readable = callback

    # -- internals -------------------------------------------------------

    def _drop_held(self) -> None:
        """Forget the bytes held for the member (none will be read)."""
        self._chunks.clear()
        self._offset = 0
        self._held = 0

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.resume_client is not None:
                self.resume_client()

    def _fire_readable(self) -> None:
        callback, self._readable = self._readable, None
        if callback is not None:
            callback()

    def _fire_prefetched(self) -> None:
        callback, self._prefetched = self._prefetched, None
        if callback is not None:
            callback()
