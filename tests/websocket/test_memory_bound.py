"""
Memory per tunnel, measured on a real proxy process (psutil) with real
sockets: a 100 MB message in 1 MiB fragments and a single frame declaring
100 MB, relayed to a streaming echo member and back, grow the proxy by less
than 20 MB; so do 20 tunnels at once, each with a frame declaring 100 MB.

The member (threads in this process) echoes each frame as it arrives, piece
by piece, so that it holds nothing either; the client masks with a zero key
(allowed: the mask is then a no-op), so neither end spends time on XOR.
Both ends check a CRC of every payload byte.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.interop.proxy_process import running_proxy, toml_config
from tests.interop.tomcat import free_port

MB = 1_000_000
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The payload pattern: 64 KiB, sent again and again.
CHUNK = bytes(range(256)) * 256
GROWTH_LIMIT = 20 * 1024 * 1024


class StreamingEcho:
    """
    A WebSocket member on 127.0.0.1 that sends each client frame back as it
    arrives (unmasked, same payload: the client's key is zero), and closes
    after echoing a close frame.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            pending, left, closing = b"", 0, False
            data = rest
            while True:
                if not data:
                    more = conn.recv(262144)
                    if not more:
                        return
                    data = pending + more if pending else more
                    pending = b""
                out: list[bytes | memoryview] = []
                view = memoryview(data)
                i, n = 0, len(data)
                while i < n:
                    if left:
                        take = min(left, n - i)
                        if not closing:
                            out.append(view[i : i + take])
                        left -= take
                        i += take
                        continue
                    if closing:
                        break
                    if n - i < 2:
                        pending = bytes(view[i:])
                        break
                    b0, b1 = data[i], data[i + 1]
                    length = b1 & 0x7F
                    ext = 2 if length == 126 else 8 if length == 127 else 0
                    if n - i < 2 + ext + 4:
                        pending = bytes(view[i:])
                        break
                    if ext:
                        length = int.from_bytes(data[i + 2 : i + 2 + ext], "big")
                    i += 6 + ext
                    left = length
                    if b0 & 0x0F == 0x8:  # the proxy's own close frame (masked): answer 1000
                        out.append(b"\x88\x02\x03\xe8")
                        closing = True
                        continue
                    assert data[i - 4 : i] == b"\0\0\0\0", "expected the client's zero mask key"
                    out.append(bytes([b0, b1 & 0x7F]) + data[i - 4 - ext : i - 4])
                conn.sendall(b"".join(out))
                if closing and not left:
                    return
                data = b""

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()


def _header(opcode: int, length: int, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\0\0\0\0"


def _extended(b1: int) -> int:
    """How many bytes of extended length follow a frame's second byte."""
    length = b1 & 0x7F
    return 2 if length == 126 else 8 if length == 127 else 0


def _send_payload(sock: socket.socket, size: int) -> int:
    """Send C{size} payload bytes of the pattern; their CRC."""
    crc = 0
    while size:
        piece = CHUNK if size >= len(CHUNK) else CHUNK[:size]
        sock.sendall(piece)
        crc = zlib.crc32(piece, crc)
        size -= len(piece)
    return crc


class Tunnel:
    """One client through the proxy: sends frames from one thread, reads the echo in another."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        key = base64.b64encode(b"0123456789abcdef")
        self.sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.sock.recv(4096)
            assert data, head
            head += data
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.leftover = head.partition(b"\r\n\r\n")[2]
        self.sent_crc = 0
        self.received_crc = 0
        self.received = 0
        self.error: BaseException | None = None

    def send(self, frames: list[tuple[int, int, bool]]) -> None:
        """Send C{(opcode, length, fin)} frames with pattern payloads."""
        for opcode, length, fin in frames:
            self.sock.sendall(_header(opcode, length, fin))
            self.sent_crc ^= _send_payload(self.sock, length)  # one CRC per frame, as received
        self.sock.sendall(_header(0x8, 2) + b"\x03\xe8")

    def receive(self, expected: int) -> None:
        """Read frames until the close frame: payload bytes counted, a CRC per frame."""
        try:
            data = self.leftover
            sock = self.sock
            while True:
                while len(data) < 2 or len(data) < 2 + _extended(data[1]):
                    more = sock.recv(262144)
                    assert more, "connection closed before the close frame"
                    data += more
                b0, b1 = data[0], data[1]
                assert not b1 & 0x80
                length = b1 & 0x7F
                ext = _extended(b1)
                if ext:
                    length = int.from_bytes(data[2 : 2 + ext], "big")
                data = data[2 + ext :]
                if b0 & 0x0F == 0x8:
                    return
                crc = 0
                while length:
                    if not data:
                        data = sock.recv(262144)
                        assert data, "connection closed inside a frame"
                    piece, data = data[:length], data[length:]
                    crc = zlib.crc32(piece, crc)
                    length -= len(piece)
                    self.received += len(piece)
                self.received_crc ^= crc
        except BaseException as e:
            self.error = e

    def run(self, frames: list[tuple[int, int, bool]]) -> threading.Thread:
        expected = sum(length for _, length, _ in frames)
        reader = threading.Thread(target=self.receive, args=(expected,), daemon=True)
        reader.start()
        sender = threading.Thread(target=self.send, args=(frames,), daemon=True)
        sender.start()
        return reader


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[psutil.Process]:
    member = StreamingEcho()
    port = free_port()
    text = toml_config(
        listen=[port],
        members=[{"url": f"ws://127.0.0.1:{member.port}", "route": "m1"}],
        balancer="ws",
        path="/ws",
    )
    directory: Path = tmp_path_factory.mktemp("proxy-ws-memory")
    with running_proxy(directory, text, [port]) as process:
        assert process.pid is not None
        proc = psutil.Process(process.pid)
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    member.stop()


def _rss(proc: psutil.Process) -> int:
    """The RSS of the proxy's processes (a supervisor and its workers, or one)."""
    return sum(p.memory_info().rss for p in [proc, *proc.children()])


def _cpu(proc: psutil.Process) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children()])


def _relay(proc: psutil.Process, tunnels: int, frames: list[tuple[int, int, bool]]) -> int:
    """Run C{tunnels} tunnels at once; the proxy's peak RSS growth in bytes."""
    port = proc.port  # type: ignore[attr-defined]
    warm = Tunnel(port)  # the first tunnel builds what every tunnel shares
    warm.run([(0x2, 1000, True)]).join(10)
    time.sleep(0.2)
    base = _rss(proc)
    peak = base
    cpu = _cpu(proc)
    clients = [Tunnel(port) for _ in range(tunnels)]
    readers = [c.run(frames) for c in clients]
    deadline = time.monotonic() + 120
    while any(r.is_alive() for r in readers):
        peak = max(peak, _rss(proc))
        assert time.monotonic() < deadline, "relay did not finish"
        time.sleep(0.02)
    expected = sum(length for _, length, _ in frames)
    # The processes measured are the ones that did the relaying.
    assert _cpu(proc) - cpu > 0.05 * tunnels * expected / (100 * MB)
    for c in clients:
        assert c.error is None, c.error
        assert c.received == expected
        assert c.received_crc == c.sent_crc
        c.sock.close()
    print(
        f"\n{tunnels} tunnel(s), {expected / MB:.0f} MB each way each: RSS {base / MB:.1f} MB, "
        f"peak growth {(peak - base) / MB:.1f} MB"
    )
    return peak - base


def test_a_100mb_message_in_fragments_and_a_100mb_frame(proxy: psutil.Process) -> None:
    fragments = [(0x2 if i == 0 else 0x0, 1024 * 1024, False) for i in range(95)]
    fragments.append((0x0, 100 * MB - 95 * 1024 * 1024, True))
    growth = _relay(proxy, 1, [*fragments, (0x2, 100 * MB, True)])
    assert growth < GROWTH_LIMIT


def test_20_tunnels_each_with_a_frame_declaring_100mb(proxy: psutil.Process) -> None:
    growth = _relay(proxy, 20, [(0x2, 100 * MB, True)])
    assert growth < GROWTH_LIMIT
