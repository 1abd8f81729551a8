"""Tests of the Tomcat harness itself, talking straight to the nodes (no balancer)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest

from .conftest import AJP_SECRET
from .tomcat import (
    EXAMPLES_DOCBASE,
    HttpResult,
    TomcatGroup,
    TomcatNode,
    build_webapp,
    find_catalina_home,
    http_request,
    wait_for_replication,
)
from .wsclient import BINARY, CLOSE, TEXT, RawWebSocket


def pattern(n: int) -> bytes:
    """The /big body: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def session_cookie(res: HttpResult) -> str:
    value = res.cookie("JSESSIONID")
    assert value, f"no JSESSIONID in {res.headers}"
    return value


# ------------------------------------------------------------------------------------------
# A minimal AJP/1.3 client (just enough to check the connector's address, secret and replies)

_AJP_RESPONSE_HEADERS = {
    0xA001: "Content-Type",
    0xA002: "Content-Language",
    0xA003: "Content-Length",
    0xA004: "Date",
    0xA005: "Last-Modified",
    0xA006: "Location",
    0xA007: "Set-Cookie",
    0xA008: "Set-Cookie2",
    0xA009: "Servlet-Engine",
    0xA00A: "Status",
    0xA00B: "WWW-Authenticate",
}


def _ajp_string(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    raw = value.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw + b"\x00"


def ajp_get(
    port: int,
    path: str,
    query: str | None = None,
    secret: str | None = AJP_SECRET,
    content_length_zero: bool = False,
) -> tuple[int, list[tuple[str, str]], bytes, bool, int]:
    """GET over AJP: return C{(status, headers, body, reuse, body chunks requested)}."""
    headers = [("host", f"127.0.0.1:{port}"), ("x-ajp-test", "1")]
    if content_length_zero:
        headers.append(("content-length", "0"))
    payload = b"\x02\x02"  # FORWARD_REQUEST, method GET
    payload += _ajp_string("HTTP/1.1") + _ajp_string(path)
    payload += _ajp_string("127.0.0.1") + _ajp_string(None) + _ajp_string("localhost")
    payload += struct.pack("!H", 80) + b"\x00" + struct.pack("!H", len(headers))
    for name, value in headers:
        payload += _ajp_string(name) + _ajp_string(value)
    if query is not None:
        payload += b"\x05" + _ajp_string(query)
    if secret is not None:
        payload += b"\x0c" + _ajp_string(secret)
    payload += b"\xff"
    packet = b"\x12\x34" + struct.pack("!H", len(payload)) + payload
    status, out_headers, body, requested = 0, [], b"", 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(packet)
        stream = s.makefile("rb")
        while True:
            head = stream.read(4)
            assert head[:2] == b"AB", head
            (length,) = struct.unpack("!H", head[2:])
            data = stream.read(length)
            kind = data[0]
            if kind == 4:  # SEND_HEADERS
                status = struct.unpack("!H", data[1:3])[0]
                pos = 3
                (n,) = struct.unpack("!H", data[pos : pos + 2])
                pos += 2 + n + 1  # the message (Tomcat puts the status number there)
                (count,) = struct.unpack("!H", data[pos : pos + 2])
                pos += 2
                for _ in range(count):
                    (code,) = struct.unpack("!H", data[pos : pos + 2])
                    if code >= 0xA000:
                        name = _AJP_RESPONSE_HEADERS[code]
                        pos += 2
                    else:
                        name = data[pos + 2 : pos + 2 + code].decode()
                        pos += 2 + code + 1
                    (n,) = struct.unpack("!H", data[pos : pos + 2])
                    out_headers.append((name, data[pos + 2 : pos + 2 + n].decode()))
                    pos += 2 + n + 1
            elif kind == 3:  # SEND_BODY_CHUNK
                (n,) = struct.unpack("!H", data[1:3])
                body += data[3 : 3 + n]
            elif kind == 5:  # END_RESPONSE
                return status, out_headers, body, bool(data[1]), requested
            elif kind == 6:  # GET_BODY_CHUNK: no body (more), so an empty data packet
                requested += 1
                s.sendall(b"\x12\x34\x00\x00")
            else:
                raise AssertionError(f"unexpected AJP packet {data[:20]!r}")


# ------------------------------------------------------------------------------------------
# Discovery and build


def test_find_catalina_home(catalina_home: Path) -> None:
    assert find_catalina_home() == catalina_home
    assert (catalina_home / "bin" / "catalina.sh").is_file()


def test_webapp_is_cached(tomcat_webapp: Path, catalina_home: Path) -> None:
    t0 = time.monotonic()
    again = build_webapp(tomcat_webapp.parent, catalina_home)
    assert again == tomcat_webapp
    assert time.monotonic() - t0 < 2
    assert (tomcat_webapp / "WEB-INF" / "classes" / "lbtest" / "EchoServlet.class").is_file()
    assert (tomcat_webapp / "static" / "1k.txt").stat().st_size == 1024
    # Sources live in the repository; compiled classes never do.
    here = Path(__file__).resolve().parent
    assert not list(here.rglob("*.class"))


# ------------------------------------------------------------------------------------------
# Plain pair over HTTP


def test_echo_reports_node_and_any_method(tomcat_pair: TomcatGroup) -> None:
    for node in tomcat_pair:
        body = b'{"op": "replace"}' * 100
        res = node.get(
            "/app/echo/extra?x=1&y=%20z",
            method="PATCH",
            headers=[("X-Multi", "one"), ("X-Multi", "two"), ("Content-Type", "text/plain")],
            body=body,
        )
        assert res.status == 200
        doc = res.json()
        assert doc["node"] == node.name
        assert doc["method"] == "PATCH"
        assert doc["requestURI"] == "/app/echo/extra"
        assert doc["queryString"] == "x=1&y=%20z"
        assert doc["protocol"] == "HTTP/1.1"
        assert doc["scheme"] == "http" and doc["isSecure"] is False
        assert doc["serverPort"] == node.http_port
        assert doc["remoteAddr"] == "127.0.0.1" and doc["localAddr"] == "127.0.0.1"
        assert doc["body_length"] == len(body)
        assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert ["x-multi", "one"] in [[k.lower(), v] for k, v in doc["headers"]]
        assert ["x-multi", "two"] in [[k.lower(), v] for k, v in doc["headers"]]
        assert doc["session"] is None
    custom = tomcat_pair[0].get("/app/echo", method="PURGE").json()
    assert custom["method"] == "PURGE"
    head = tomcat_pair[0].get("/app/echo", method="HEAD")
    assert head.status == 200 and head.body == b""


def test_echo_escapes_json(tomcat_pair: TomcatGroup) -> None:
    # Header values are ISO-8859-1; the JSON is pure ASCII with \\u escapes. (Tomcat answers
    # 400 to control characters such as DEL in a header value, so none is sent here.)
    value = 'q"uo\\te\tta b\xe9/\xff'
    res = tomcat_pair[0].get("/app/echo", headers={"X-Odd": value})
    doc = json.loads(res.body.decode("ascii"))
    assert b"\\u00e9" in res.body and b"\\t" in res.body
    assert ["x-odd", value] in [[k.lower(), v] for k, v in doc["headers"]]


def test_cookies(tomcat_pair: TomcatGroup) -> None:
    res = tomcat_pair[0].get("/app/cookies")
    assert res.status == 200
    assert res.header_values("Set-Cookie") == ["a=1", "b=2; Path=/app", "c=3; HttpOnly"]


@pytest.mark.parametrize("chunked", [False, True])
def test_big_is_byte_exact(tomcat_pair: TomcatGroup, chunked: bool) -> None:
    n = 1_000_000
    res = tomcat_pair[1].get(f"/app/big?bytes={n}" + ("&chunked=1" if chunked else ""))
    assert res.status == 200
    if chunked:
        assert res.header("Transfer-Encoding") == "chunked"
        assert res.header("Content-Length") is None
    else:
        assert res.header("Content-Length") == str(n)
    assert len(res.body) == n
    assert res.body == pattern(n)


def test_static_and_jsp(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[0]
    res = node.get("/app/static/1k.txt")
    assert res.status == 200 and len(res.body) == 1024
    assert res.header("Content-Length") == "1024"
    first = node.get("/app/session.jsp")
    cookie = session_cookie(first)
    second = node.get("/app/session.jsp", headers={"Cookie": f"JSESSIONID={cookie}"})
    assert second.body.decode().strip() == f"node=tomcat1 counter=2 session={cookie}"


def test_status_redirect_slow(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[0]
    for code in (204, 304, 404):
        res = node.get(f"/app/status?code={code}")
        assert res.status == code and res.body == b""
    res = node.get("/app/status?code=503&header=Retry-After:7")
    assert res.status == 503 and res.header("Retry-After") == "7"
    assert res.body == b"status 503 from tomcat1\n"
    assert res.reason == ""  # Tomcat sends no reason phrase
    res = node.get("/app/status?code=500&throw=1")
    assert res.status == 500 and b"thrown on purpose" in res.body
    res = node.get("/app/redirect?to=/app/echo%3Fa%3Db")
    assert res.status == 302
    assert res.header("Location") == f"http://127.0.0.1:{node.http_port}/app/echo?a=b"
    t0 = time.monotonic()
    res = node.get("/app/slow?ms=300")
    assert res.status == 200 and res.json()["slept_ms"] == 300
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(socket.timeout):
        node.get("/app/slow?ms=2000", timeout=0.5)


def test_examples_deployed(tomcat_pair: TomcatGroup) -> None:
    if not EXAMPLES_DOCBASE.is_dir():
        pytest.skip("tomcat10-examples not installed")
    assert tomcat_pair[0].get("/examples/").status == 200
    assert tomcat_pair[0].get("/examples/websocket/index.xhtml").status == 200


def test_session_counter_and_route(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[0]
    res = node.get("/app/session")
    doc = res.json()
    assert doc["counter"] == 1 and doc["node"] == "tomcat1"
    cookie = session_cookie(res)
    assert cookie.endswith(".tomcat1") and cookie == doc["session"]
    for expected in (2, 3):
        doc = node.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"}).json()
        assert doc["counter"] == expected and doc["session"] == cookie
    # Without replication the other node knows nothing of it: a brand-new session.
    other = tomcat_pair[1].get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"})
    assert other.json()["counter"] == 1
    assert session_cookie(other).endswith(".tomcat2")
    assert session_cookie(other).split(".")[0] != cookie.split(".")[0]


# ------------------------------------------------------------------------------------------
# AJP connector


def test_ajp_cping_and_forward_request(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[1]
    with socket.create_connection(("127.0.0.1", node.ajp_port), timeout=5) as s:
        s.sendall(b"\x12\x34\x00\x01\x0a")  # CPING
        assert s.recv(5) == b"AB\x00\x01\x09"  # CPONG
    # Without a Content-Length, Tomcat asks for a body chunk (GET_BODY_CHUNK) as soon as the
    # servlet reads its input; the client must answer with an empty data packet.
    status, headers, body, reuse, requested = ajp_get(node.ajp_port, "/app/echo", query="via=ajp")
    assert status == 200 and reuse and requested == 1
    doc = json.loads(body)
    assert doc["node"] == "tomcat2" and doc["queryString"] == "via=ajp"
    # The server_name field of the packet loses to the Host header.
    assert doc["protocol"] == "HTTP/1.1" and doc["serverName"] == "127.0.0.1"
    assert doc["serverPort"] == node.ajp_port
    assert ["x-ajp-test", "1"] in doc["headers"]
    status, _, _, _, requested = ajp_get(node.ajp_port, "/app/echo", content_length_zero=True)
    assert status == 200 and requested == 0
    status, headers, body, _, _ = ajp_get(node.ajp_port, "/app/session")
    assert status == 200
    cookies = [v for k, v in headers if k == "Set-Cookie"]
    assert cookies and cookies[0].startswith("JSESSIONID=") and ".tomcat2;" in cookies[0]


def test_ajp_wrong_secret_is_403(tomcat_pair: TomcatGroup) -> None:
    for secret in ("wrong", None):
        status, _, _, reuse, _ = ajp_get(tomcat_pair[0].ajp_port, "/app/echo", secret=secret)
        assert status == 403 and not reuse


# ------------------------------------------------------------------------------------------
# Cluster (the second seed: replication + JvmRouteBinderValve)


def test_cluster_session_continues_on_other_node(tomcat_cluster: TomcatGroup) -> None:
    one, two = tomcat_cluster
    first = one.get("/app/session")
    cookie = session_cookie(first)
    assert cookie.endswith(".tomcat1") and first.json()["counter"] == 1
    doc = one.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"}).json()
    assert doc["counter"] == 2
    moved = two.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"})
    assert moved.json()["counter"] == 3 and moved.json()["node"] == "tomcat2"
    new_cookie = session_cookie(moved)
    assert new_cookie == cookie.rsplit(".", 1)[0] + ".tomcat2"
    again = two.get("/app/session", headers={"Cookie": f"JSESSIONID={new_cookie}"})
    assert again.json()["counter"] == 4 and again.cookie("JSESSIONID") is None


def test_cluster_failover_after_kill(tomcat_cluster: TomcatGroup) -> None:
    one, two = tomcat_cluster
    cookie = session_cookie(one.get("/app/session"))
    one.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"})
    one.kill()
    assert not one.running
    res = two.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"})
    assert res.json()["counter"] == 3
    assert session_cookie(res).endswith(".tomcat2")
    t0 = time.monotonic()
    one.start(timeout=30)
    wait_for_replication(tomcat_cluster.nodes, timeout=30)
    assert time.monotonic() - t0 < 30
    # The restarted node received the session by state transfer.
    back = one.get("/app/session", headers={"Cookie": f"JSESSIONID={session_cookie(res)}"})
    assert back.json()["counter"] == 4 and session_cookie(back).endswith(".tomcat1")


def test_cluster_websocket_follows_session(tomcat_cluster: TomcatGroup) -> None:
    one, two = tomcat_cluster
    cookie = session_cookie(one.get("/app/session"))
    with RawWebSocket.connect(two.http_port, headers=[("Cookie", f"JSESSIONID={cookie}")]) as ws:
        hello = json.loads(ws.recv_text())
        assert hello["node"] == "tomcat2"
        rebound = cookie.rsplit(".", 1)[0] + ".tomcat2"
        assert hello["session"] == rebound
        assert any(v.startswith(f"JSESSIONID={rebound}") for v in ws.header_values("Set-Cookie"))


# ------------------------------------------------------------------------------------------
# HTTPS pair (the first seed)


def test_https_nodes_answer_over_tls(tomcat_https_pair: TomcatGroup) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    assert tomcat_https_pair.names == ["hosta", "hostb"]
    for node in tomcat_https_pair:
        assert node.https_port is not None
        res = http_request(node.https_port, "/app/echo", tls=True)
        doc = res.json()
        assert doc["node"] == node.name
        assert doc["scheme"] == "https" and doc["isSecure"] is True
        assert doc["attributes"]["org.apache.tomcat.util.net.secure_protocol_version"].startswith(
            "TLS"
        )
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", node.https_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        assert cert.subject == cert.issuer
        assert "CN=localhost" in cert.subject.rfc4514_string()
        on_disk = x509.load_pem_x509_certificate(node.cert_file.read_bytes())
        assert der == on_disk.public_bytes(Encoding.DER)
        # Verification with the default trust store must fail: it is self-signed.
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", node.https_port), timeout=5) as raw:
                ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
        # The plain HTTP connector stays available (used for readiness).
        assert node.get("/app/echo").json()["scheme"] == "http"


def test_wss_on_https_node(tomcat_https_pair: TomcatGroup) -> None:
    node = tomcat_https_pair["hostb"]
    assert node.https_port is not None
    with RawWebSocket.connect(node.https_port, tls=True, subprotocols=["superchat"]) as ws:
        assert ws.header("Sec-WebSocket-Protocol") == "superchat"
        hello = json.loads(ws.recv_text())
        assert hello == {
            "node": "hostb",
            "session": None,
            "subprotocol": "superchat",
            "query": None,
        }
        ws.send_text("over tls")
        assert ws.recv_text() == "over tls"


# ------------------------------------------------------------------------------------------
# WebSocket


def test_websocket_greeting_echo_and_close(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[0]
    cookie = session_cookie(node.get("/app/session"))
    with RawWebSocket.connect(
        node.http_port,
        "/app/ws?room=1",
        headers=[("Cookie", f"JSESSIONID={cookie}")],
        subprotocols=["chat", "other"],
    ) as ws:
        assert ws.status == 101
        assert ws.header("Sec-WebSocket-Protocol") == "chat"
        hello = json.loads(ws.recv_text())
        assert hello == {
            "node": "tomcat1",
            "session": cookie,
            "subprotocol": "chat",
            "query": "room=1",
        }
        ws.send_text("héllo")
        assert ws.recv_text() == "héllo"
        blob = os.urandom(70_000)
        ws.send_binary(blob)
        assert ws.recv_message() == (BINARY, blob)
        ws.send_text("close:4001:bye now")
        opcode, payload = ws.recv_message()
        assert opcode == CLOSE
        assert RawWebSocket.parse_close(payload) == (4001, "bye now")


def test_websocket_without_session_or_subprotocol(tomcat_pair: TomcatGroup) -> None:
    with RawWebSocket.connect(tomcat_pair[1].http_port) as ws:
        assert ws.header("Sec-WebSocket-Protocol") is None
        opcode, payload = ws.recv_message()
        assert opcode == TEXT
        assert json.loads(payload) == {
            "node": "tomcat2",
            "session": None,
            "subprotocol": None,
            "query": None,
        }
        ws.send_close(1000, "done")
        opcode, payload = ws.recv_message()
        assert opcode == CLOSE and RawWebSocket.parse_close(payload)[0] == 1000


# ------------------------------------------------------------------------------------------
# Process control


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_kill_then_start(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[1]
    pid = node.pid
    assert pid is not None
    node.kill()
    assert _gone(pid) and not node.running and node.pid is None
    with pytest.raises(OSError):
        http_request(node.http_port, "/app/echo", timeout=2)
    t0 = time.monotonic()
    node.start(timeout=30)
    assert time.monotonic() - t0 < 30
    assert node.get("/app/echo").json()["node"] == "tomcat2"
    assert node.pid != pid


def test_stop_leaves_no_process_and_forgets_sessions(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[0]
    cookie = session_cookie(node.get("/app/session"))
    pid = node.pid
    assert pid is not None
    node.stop()
    assert _gone(pid) and not node.running
    assert not node.pid_file.exists()
    node.start(timeout=30)
    # StandardManager persistence is off: a restarted plain node forgets its sessions.
    res = node.get("/app/session", headers={"Cookie": f"JSESSIONID={cookie}"})
    assert res.json()["counter"] == 1


def test_pause_and_resume(tomcat_pair: TomcatGroup) -> None:
    node = tomcat_pair[1]
    node.pause()
    try:
        assert node.paused and node.running
        with pytest.raises((socket.timeout, http.client.HTTPException, OSError)):
            node.get("/app/echo", timeout=0.7)
    finally:
        node.resume()
    assert not node.paused
    assert node.get("/app/echo", timeout=10).json()["node"] == "tomcat2"


def test_restore_fixture_restarts_dead_nodes(tomcat_pair: TomcatGroup) -> None:
    """Kill a node and leave it dead: the next test must find it running again."""
    tomcat_pair[0].kill()


def test_restore_fixture_did_restart(tomcat_pair: TomcatGroup) -> None:
    assert all(n.running for n in tomcat_pair)
    assert tomcat_pair[0].get("/app/echo").json()["node"] == "tomcat1"


def test_node_validation(tomcat_webapp: Path) -> None:
    with pytest.raises(ValueError):
        TomcatNode("bad name", tomcat_webapp)
    with pytest.raises(ValueError):
        TomcatNode("ok", tomcat_webapp, packet_size=4096)
