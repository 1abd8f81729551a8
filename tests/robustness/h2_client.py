"""
A blocking HTTP/2 client for the hostile-client tests: the h2 library
encodes what a well-behaved client sends (HPACK, SETTINGS), and raw frames
(hyperframe) carry what a hostile one sends. Run it in a thread: the proxy's
reactor, or the members', runs meanwhile.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import h2.config
import h2.connection
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)
from OpenSSL import SSL

from ..integration.support import tls_client

__all__ = ["H2Client", "timed_get"]


class H2Client:
    """
    One HTTP/2 connection over TLS to 127.0.0.1.

    @ivar goaway: the first GOAWAY the server sent, as C{(error code, last
        stream id)}, once read.
    @ivar closed: the server closed the connection (or reset it).
    @ivar responses: per stream, the C{:status} of its response headers.
    @ivar resets: per stream, the error code of the server's RST_STREAM.
    @ivar bodies: per stream, the body bytes received.
    @ivar ended: streams whose response ended (END_STREAM).
    """

    def __init__(self, port: int) -> None:
        self.conn = tls_client(port, alpn=[b"h2"])
        # Reads wait 0.2 s at a time (see read); a write to a server that
        # stopped reading gives up after 3 s.
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200_000))
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 3, 0))
        if self.conn.get_alpn_proto_negotiated() != b"h2":
            raise AssertionError("h2 was not negotiated")
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.h2.initiate_connection()
        self.authority = f"127.0.0.1:{port}".encode("ascii")
        self.goaway: tuple[int, int] | None = None
        self.closed = False
        self.responses: dict[int, int] = {}
        self.resets: dict[int, int] = {}
        self.bodies: dict[int, bytes] = {}
        self.ended: set[int] = set()
        #: per stream, when its response headers arrived (time.monotonic()).
        self.response_at: dict[int, float] = {}
        self._buffer = b""
        self.frames: list[Frame] = []
        #: Acknowledge the server's SETTINGS (not in the middle of a header block).
        self.ack_settings = True
        self._next_stream = 1
        self.send(self.h2.data_to_send())

    # -- sending -------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send C{data}; C{False} once the server closed the connection."""
        try:
            self.conn.sendall(data)
        except (SSL.Error, OSError):
            self.closed = True
            return False
        return True

    def next_stream(self) -> int:
        stream = self._next_stream
        self._next_stream += 2
        return stream

    def head_block(self, path: bytes, method: bytes = b"GET", extra: Any = ()) -> bytes:
        """The HPACK block of a request head (encoded now: blocks go out in this order)."""
        headers = [
            (b":method", method),
            (b":path", path),
            (b":authority", self.authority),
            (b":scheme", b"https"),
            *extra,
        ]
        return bytes(self.h2.encoder.encode(headers))

    def headers_frame(
        self, stream: int, block: bytes, end_stream: bool = True, end_headers: bool = True
    ) -> bytes:
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(stream, data=block, flags=flags).serialize()

    @staticmethod
    def continuation_frame(stream: int, data: bytes, end_headers: bool = False) -> bytes:
        return ContinuationFrame(
            stream, data=data, flags=["END_HEADERS"] if end_headers else []
        ).serialize()

    @staticmethod
    def data_frame(stream: int, data: bytes, end_stream: bool = False) -> bytes:
        return DataFrame(stream, data=data, flags=["END_STREAM"] if end_stream else []).serialize()

    @staticmethod
    def rst_frame(stream: int, error_code: int = 8) -> bytes:  # 8: CANCEL
        return RstStreamFrame(stream, error_code=error_code).serialize()

    def get(self, path: bytes) -> int:
        """Send a GET on a new stream; return the stream."""
        stream = self.next_stream()
        self.send(self.headers_frame(stream, self.head_block(path)))
        return stream

    # -- reading -------------------------------------------------------------

    def read(self, until: Any, timeout: float) -> bool:
        """
        Read frames until C{until()} is true, the connection closes, or
        C{timeout} seconds pass.

        @return: whether C{until()} became true.
        """
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return False
            if time.monotonic() >= deadline:
                return False
            try:
                data = self.conn.recv(65536)
            except SSL.WantReadError:  # the socket's read timeout passed
                continue
            except (SSL.Error, OSError):
                self.closed = True
                continue
            if not data:
                self.closed = True
                continue
            self._frames(data)
        return True

    def read_once(self) -> None:
        """Read what has arrived (at least one byte is there to read)."""
        try:
            data = self.conn.recv(65536)
        except SSL.WantReadError:
            return
        except (SSL.Error, OSError):
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                return
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            self.frames.append(frame)
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and self.ack_settings:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(frame, GoAwayFrame):
                if self.goaway is None:
                    self.goaway = (frame.error_code, frame.last_stream_id)
            elif isinstance(frame, RstStreamFrame):
                self.resets[frame.stream_id] = frame.error_code
            elif isinstance(frame, HeadersFrame):
                headers = dict(self.h2.decoder.decode(frame.data, raw=True))
                if b":status" in headers and int(headers[b":status"]) >= 200:
                    self.responses[frame.stream_id] = int(headers[b":status"])
                    self.response_at[frame.stream_id] = time.monotonic()
                if "END_STREAM" in frame.flags:
                    self.ended.add(frame.stream_id)
            elif isinstance(frame, DataFrame):
                self.bodies[frame.stream_id] = self.bodies.get(frame.stream_id, b"") + frame.data
                if "END_STREAM" in frame.flags:
                    self.ended.add(frame.stream_id)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


def timed_get(port: int, path: bytes = b"/app/normal") -> tuple[int | None, float]:
    """A well-behaved client's GET on a new connection: its status and how long it took."""
    started = time.monotonic()
    client = H2Client(port)
    try:
        stream = client.get(path)
        client.read(lambda: stream in client.ended, 5.0)
        return client.responses.get(stream), time.monotonic() - started
    finally:
        client.close()
