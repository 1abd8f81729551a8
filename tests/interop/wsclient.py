"""A minimal blocking RFC 6455 WebSocket client on a raw socket, for the interop tests.

It shows exactly what went over the wire (the 101 response's status and headers, every frame's
opcode), which a full client library hides. Client frames are masked; no extensions; every
wait is bounded by the socket timeout.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
from collections.abc import Sequence

import attrs

__all__ = ["CLOSE", "BINARY", "PING", "PONG", "TEXT", "RawWebSocket", "WebSocketError"]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketError(RuntimeError):
    """The handshake failed or the peer broke the protocol."""


@attrs.define(eq=False)
class RawWebSocket:
    """One client WebSocket connection.

    @ivar sock: the connected (possibly TLS) socket.
    @ivar status: the handshake response's status code (101 on success).
    @ivar headers: the handshake response's headers as C{(name, value)}, in order.
    @ivar leftover: bytes read past the handshake response (the start of the first frame).
    """

    sock: socket.socket
    status: int
    headers: list[tuple[str, str]]
    leftover: bytes = b""

    @classmethod
    def connect(
        cls,
        port: int,
        path: str = "/app/ws",
        *,
        host: str = "127.0.0.1",
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
        tls: bool = False,
        timeout: float = 10.0,
        require_101: bool = True,
    ) -> RawWebSocket:
        """Open a TCP (or TLS, unverified) connection and do the opening handshake.

        @param require_101: raise L{WebSocketError} unless the answer is a valid 101.
        """
        raw = socket.create_connection((host, port), timeout=timeout)
        sock: socket.socket = raw
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        lines += [f"{k}: {v}" for k, v in headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                raise WebSocketError(f"connection closed during the handshake: {data!r}")
            data += chunk
            if len(data) > 65536:
                sock.close()
                raise WebSocketError("handshake response too long")
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        parsed = []
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.append((name.strip(), value.strip()))
        ws = cls(sock, status, parsed, rest)
        if require_101:
            expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
            if status != 101 or ws.header("Sec-WebSocket-Accept") != expected:
                sock.close()
                raise WebSocketError(f"handshake failed: {head!r}")
        return ws

    def header(self, name: str) -> str | None:
        """The first value of a handshake response header (case-insensitive), or C{None}."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of a handshake response header (case-insensitive)."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    # -- frames ----------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        """Send one masked frame (C{rsv}: the RSV bits, e.g. 0x40 for a compressed message)."""
        first = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str) -> None:
        """Send a text message in one frame."""
        self.send_frame(TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Send a binary message in one frame."""
        self.send_frame(BINARY, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame."""
        self.send_frame(CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        if self.leftover:
            out += self.leftover[:n]
            self.leftover = self.leftover[n:]
        while len(out) < n:
            chunk = self.sock.recv(max(65536, n - len(out)))
            if not chunk:
                raise WebSocketError(f"connection closed after {len(out)} of {n} bytes")
            out += chunk
        if len(out) > n:
            self.leftover = bytes(out[n:]) + self.leftover
            del out[n:]
        return bytes(out)

    def recv_frame(self) -> tuple[bool, int, bytes]:
        """Read one frame: C{(fin, opcode, payload)}."""
        return self.recv_frame_rsv()[:3]  # type: ignore[return-value]

    def recv_frame_rsv(self) -> tuple[bool, int, bytes, int]:
        """Read one frame: C{(fin, opcode, payload, rsv)} (C{rsv}: the RSV bits, 0x70 masked)."""
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        mask = self._read_exact(4) if b1 & 0x80 else None
        payload = self._read_exact(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload, b0 & 0x70

    def recv_message(self) -> tuple[int, bytes]:
        """Read one whole message (joining fragments, answering pings): C{(opcode, payload)}.

        A close frame is returned as C{(CLOSE, payload)}.
        """
        opcode = None
        parts: list[bytes] = []
        while True:
            fin, op, payload = self.recv_frame()
            if op == PING:
                self.send_frame(PONG, payload)
                continue
            if op == PONG:
                continue
            if op == CLOSE:
                return CLOSE, payload
            if op != CONTINUATION:
                opcode = op
            parts.append(payload)
            if fin:
                assert opcode is not None
                return opcode, b"".join(parts)

    def recv_text(self) -> str:
        """Read one message and require it to be text."""
        opcode, payload = self.recv_message()
        if opcode != TEXT:
            raise WebSocketError(f"expected a text message, got opcode {opcode}: {payload!r}")
        return payload.decode("utf-8")

    @staticmethod
    def parse_close(payload: bytes) -> tuple[int | None, str]:
        """Split a close frame's payload into C{(code, reason)}."""
        if len(payload) < 2:
            return None, ""
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")

    def close(self) -> None:
        """Close the socket (no closing handshake)."""
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
