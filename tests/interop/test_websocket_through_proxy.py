"""
WebSocket through twisted_lb to real Tomcat, compared with Tomcat directly:
the examples webapp's echo endpoints behind a balancer of C{ws://} members,
a raw client on both paths (it shows every frame, its RSV bits and the 101's
headers).

- permessage-deflate: the client's offer reaches Tomcat, Tomcat's answer
  reaches the client, compressed frames pass both ways untouched;
- Tomcat's 101 headers reach the client;
- fragmented messages, pings between fragments, invalid UTF-8 (1007), an
  unmasked frame (1002) and close codes end the same way through the proxy
  as directly.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .proxy_process import free_port, running_proxy, toml_config
from .tomcat import TomcatGroup
from .wsclient import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, RawWebSocket

ECHO = "/examples/websocket/echoAnnotation"
DEFLATE = "permessage-deflate; client_max_window_bits"

Connect = Callable[..., RawWebSocket]


@pytest.fixture(scope="module")
def ws_proxy(tomcat_pair: TomcatGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """twisted_lb with the examples' WebSocket endpoints of both nodes behind C{/examples/websocket}."""
    port = free_port()
    members = [
        {"url": f"ws://127.0.0.1:{node.http_port}/examples/websocket", "route": node.route}
        for node in tomcat_pair
    ]
    text = toml_config(listen=[port], members=members, balancer="ws", path="/examples/websocket")
    directory: Path = tmp_path_factory.mktemp("proxy-ws")
    with running_proxy(directory, text, [port]):
        yield port


@pytest.fixture(params=["direct", "proxy"])
def connect(request: pytest.FixtureRequest, tomcat_pair: TomcatGroup, ws_proxy: int) -> Connect:
    """Open a raw WebSocket to Tomcat's first node, directly or through the proxy."""
    port = tomcat_pair[0].http_port if request.param == "direct" else ws_proxy
    cookie = [("Cookie", f"JSESSIONID=0.{tomcat_pair[0].route}")]

    def open_(
        path: str = ECHO, headers: list[tuple[str, str]] | None = None, **kw: object
    ) -> RawWebSocket:
        return RawWebSocket.connect(port, path, headers=cookie + (headers or []), **kw)  # type: ignore[arg-type]

    return open_


class Deflate:
    """permessage-deflate (RFC 7692) for a raw client: one compressor and one decompressor."""

    def __init__(self) -> None:
        self._out = zlib.compressobj(wbits=-15)
        self._in = zlib.decompressobj(wbits=-15)

    def compress(self, data: bytes) -> bytes:
        out = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def decompress(self, data: bytes) -> bytes:
        return self._in.decompress(data + b"\x00\x00\xff\xff")


def close_code(ws: RawWebSocket) -> int | None:
    """Read until the close frame; its code (None when the connection just ended)."""
    try:
        while True:
            opcode, payload = ws.recv_message()
            if opcode == CLOSE:
                return RawWebSocket.parse_close(payload)[0]
    except (OSError, RuntimeError):
        return None


def test_permessage_deflate_end_to_end(connect: Connect) -> None:
    """Negotiated with Tomcat; compressed messages (RSV1) intact both ways, several in a row."""
    with connect(headers=[("Sec-WebSocket-Extensions", DEFLATE)]) as ws:
        agreed = ws.header("Sec-WebSocket-Extensions")
        assert agreed is not None and agreed.startswith("permessage-deflate"), ws.headers
        deflate = Deflate()
        for text in ["hello " * 200, "é" * 3000, "third " * 50]:
            ws.send_frame(TEXT, deflate.compress(text.encode()), rsv=0x40)
            fin, opcode, payload, rsv = ws.recv_frame_rsv()
            parts, first_rsv = [payload], rsv
            while not fin:
                fin, _, payload, _ = ws.recv_frame_rsv()
                parts.append(payload)
            assert opcode == TEXT and first_rsv == 0x40  # Tomcat compressed its echo
            assert deflate.decompress(b"".join(parts)).decode() == text
        ws.send_close(1000)
        assert close_code(ws) == 1000


def test_no_extension_when_none_offered(connect: Connect) -> None:
    with connect() as ws:
        assert ws.header("Sec-WebSocket-Extensions") is None
        ws.send_text("plain")
        assert ws.recv_text() == "plain"


def test_tomcats_101_headers_reach_the_client(tomcat_pair: TomcatGroup, ws_proxy: int) -> None:
    """Every end-to-end header of Tomcat's 101 (not the handshake's own) reaches the client."""
    skip = {"connection", "upgrade", "sec-websocket-accept", "date"}
    seen = []
    for port in (tomcat_pair[0].http_port, ws_proxy):
        with RawWebSocket.connect(
            port, ECHO, headers=[("Cookie", f"JSESSIONID=0.{tomcat_pair[0].route}")]
        ) as ws:
            seen.append(sorted((k.lower(), v) for k, v in ws.headers if k.lower() not in skip))
    direct, proxied = seen
    names = {name for name, _ in direct}
    # The examples webapp's HttpHeaderSecurityFilter answers the upgrade with these.
    assert {"x-frame-options", "x-content-type-options"} <= names, direct
    assert proxied == direct


def test_fragments_and_pings_between_them(connect: Connect) -> None:
    with connect() as ws:
        ws.send_frame(TEXT, b"one, ", fin=False)
        ws.send_frame(PING, b"ping 1")
        ws.send_frame(CONTINUATION, b"two, ", fin=False)
        ws.send_frame(PING, b"ping 2")
        ws.send_frame(CONTINUATION, b"three", fin=True)
        # Tomcat echoes each fragment as it comes (a partial-message endpoint),
        # and answers each ping between them.
        pongs, text, opcodes, done = [], b"", [], False
        while not (done and len(pongs) == 2):
            fin, opcode, payload = ws.recv_frame()
            if opcode == PONG:
                pongs.append(payload)
            else:
                opcodes.append(opcode)
                text += payload
                done = fin
        assert pongs == [b"ping 1", b"ping 2"]
        assert text == b"one, two, three"
        assert opcodes[0] == TEXT and set(opcodes[1:]) <= {CONTINUATION}
        blob = bytes(range(256)) * 300
        ws.send_frame(BINARY, blob[:1000], fin=False)
        ws.send_frame(CONTINUATION, blob[1000:], fin=True)
        assert ws.recv_message() == (BINARY, blob)


def test_invalid_utf8_is_1007(connect: Connect) -> None:
    with connect() as ws:
        ws.send_frame(TEXT, b"bad \xff\xfe text")
        assert close_code(ws) == 1007


def test_unmasked_frame_is_1002(connect: Connect) -> None:
    with connect() as ws:
        ws.sock.sendall(b"\x81\x05hello")
        assert close_code(ws) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 4001])
def test_client_close_code_comes_back(connect: Connect, code: int) -> None:
    with connect() as ws:
        ws.send_text("before")
        assert ws.recv_text() == "before"
        ws.send_frame(CLOSE, struct.pack("!H", code) + b"bye")
        assert close_code(ws) == code
