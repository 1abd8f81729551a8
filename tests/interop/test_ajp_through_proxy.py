"""Real Tomcat 10 behind twisted_lb over AJP/1.3 (issue "Foundation", item 7).

One proxy process (C{twistd -n lbproxy}) with a plain and an HTTPS listener balances a pair of
Tomcat nodes over AJP with the connectors' secret; every test talks HTTP(S) to the proxy and
checks what the servlet saw (C{/app/echo}) and what came back, byte for byte.

Every test runs twice: against Tomcat's default AJP connector (NIO, C{tomcat_pair}) and against
its NIO2 connector (C{tomcat_pair_nio2}), which docs/performance.md recommends behind twisted_lb.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from .conftest import AJP_SECRET
from .proxy_process import (
    ProxyClient,
    ProxyProcess,
    free_port,
    running_proxy,
    toml_config,
    upstream_connections,
)
from .tomcat import TomcatGroup, http_request, make_self_signed_cert

#: The Tomcat AJP body packet: 8192 - 4 (header) - 2 (chunk length) bytes of data.
ONE_PACKET = 8186


class Proxy:
    """The proxy under test and its ports."""

    def __init__(self, process: ProxyProcess, http_port: int, https_port: int) -> None:
        self.process = process
        self.http_port = http_port
        self.https_port = https_port

    def client(self, tls: bool = False) -> ProxyClient:
        return ProxyClient(self.https_port if tls else self.http_port, tls=tls)


def _pair_members(pair: TomcatGroup, secret: str = AJP_SECRET) -> list[dict[str, object]]:
    # Apache's concatenation: member path + rest after the route's path, so the member URL
    # carries the context (as in the second seed: ajp://host:8010/share for /share).
    return [{"url": f"{node.ajp_url}/app", "route": node.route, "secret": secret} for node in pair]


def _tls_files(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        make_self_signed_cert(cert, key)
    return cert, key


#: The pair of nodes (a fixture of conftest) for each of Tomcat's AJP connectors.
_PAIRS = {"nio": "tomcat_pair", "nio2": "tomcat_pair_nio2"}


@pytest.fixture(scope="module", params=sorted(_PAIRS))
def ajp_connector(request: pytest.FixtureRequest) -> str:
    """The AJP connector of this round: Tomcat's NIO (its default) or NIO2."""
    return str(request.param)


@pytest.fixture(scope="module")
def ajp_pair(ajp_connector: str, request: pytest.FixtureRequest) -> TomcatGroup:
    """The Tomcat pair whose AJP connector is C{ajp_connector}."""
    return cast(TomcatGroup, request.getfixturevalue(_PAIRS[ajp_connector]))


@pytest.fixture(scope="module")
def proxy(ajp_pair: TomcatGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    directory = tmp_path_factory.mktemp("proxy-ajp")
    cert, key = _tls_files(directory)
    http_port, https_port = free_port(), free_port()
    text = toml_config(
        listen=[http_port],
        tls_listen=[https_port],
        cert=cert,
        key=key,
        members=_pair_members(ajp_pair),
        balancer_options={"stickysession": "JSESSIONID|jsessionid"},
    )
    with running_proxy(directory, text, [http_port, https_port]) as process:
        yield Proxy(process, http_port, https_port)


@pytest.fixture(params=[False, True], ids=["http", "https"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _body_pattern(n: int) -> bytes:
    return (
        bytes(i % 251 for i in range(n)) if n < 4096 else (bytes(range(251)) * (n // 251 + 1))[:n]
    )


# --------------------------------------------------------------------------------------------
# Request line, headers, client address, TLS


def test_query_string_and_utf8_path(proxy: Proxy, tls: bool) -> None:
    client = proxy.client(tls)
    res = client.get("/app/echo/%C3%A9t%C3%A9/x%20y?a=1&b=%C3%A9&c=&a=2")
    assert res.status == 200, res.body
    doc = res.json()
    assert doc["requestURI"] == "/app/echo/%C3%A9t%C3%A9/x%20y"
    assert doc["pathInfo"] == "/\u00e9t\u00e9/x y"
    assert doc["queryString"] == "a=1&b=%C3%A9&c=&a=2"
    # No query at all: Tomcat reports null, not "".
    assert client.get("/app/echo").json()["queryString"] is None
    client.close()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_every_method(proxy: Proxy, method: str) -> None:
    client = proxy.client()
    body = b"payload" if method in ("POST", "PUT", "PATCH") else None
    res = client.request(method, "/app/echo?m=1", body=body)
    assert res.status == 200, res.body
    doc = res.json()
    assert doc["method"] == method
    if body is not None:
        assert doc["body_length"] == len(body)
        assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    client.close()


def test_trace_is_tomcats_405(proxy: Proxy) -> None:
    """allowTrace is false on the nodes: Tomcat itself refuses TRACE, the proxy passes it on."""
    client = proxy.client()
    res = client.request("TRACE", "/app/echo")
    assert res.status == 405
    assert b"TRACE method is not allowed" in res.body  # Tomcat's own error page
    assert b"Apache Tomcat" in res.body
    assert res.header("Allow") == "OPTIONS"
    client.close()


def test_request_headers_and_client_address(proxy: Proxy, tls: bool) -> None:
    client = proxy.client(tls)
    res = client.get(
        "/app/echo",
        headers={
            "X-Custom": "one",
            "Accept-Language": "fr-CH, fr;q=0.9",
            "User-Agent": "interop/1.0",
            "Cookie": "a=1; b=2",
        },
    )
    assert res.status == 200
    doc = res.json()
    headers = [(k.lower(), v) for k, v in doc["headers"]]
    assert ("x-custom", "one") in headers
    assert ("accept-language", "fr-CH, fr;q=0.9") in headers
    assert ("user-agent", "interop/1.0") in headers
    assert ("host", f"127.0.0.1:{client.port}") in headers
    assert sorted(doc["cookies"]) == [["a", "1"], ["b", "2"]]
    assert doc["remoteAddr"] == "127.0.0.1"
    assert doc["remotePort"] == client.local_port
    assert doc["serverName"] == "127.0.0.1"
    assert doc["serverPort"] == client.port
    client.close()


def test_secure_flag_follows_the_listener(proxy: Proxy, tls: bool) -> None:
    client = proxy.client(tls)
    doc = client.get("/app/echo").json()
    assert doc["isSecure"] is tls
    assert doc["scheme"] == ("https" if tls else "http")
    assert doc["requestURL"].startswith(f"{'https' if tls else 'http'}://127.0.0.1:{client.port}/")
    if tls:
        assert doc["attributes"].get("jakarta.servlet.request.cipher_suite")
    client.close()


# --------------------------------------------------------------------------------------------
# Request bodies


@pytest.mark.parametrize(
    "size",
    [0, 1, ONE_PACKET, 8 * 1024 + 1, 1024 * 1024],
    ids=["0", "1", "one-packet", "8KiB+1", "1MiB"],
)
def test_post_body_byte_exact(proxy: Proxy, tls: bool, size: int) -> None:
    body = _body_pattern(size)
    client = proxy.client(tls)
    res = client.request(
        "POST", "/app/echo", body=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert res.status == 200, res.body[:500]
    doc = res.json()
    assert doc["body_length"] == size
    assert doc["contentLength"] == size
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    client.close()


def test_chunked_upload(proxy: Proxy, tls: bool) -> None:
    pieces = [_body_pattern(n) for n in (1, 100, ONE_PACKET, 70000, 3)]
    client = proxy.client(tls)
    res = client.request(
        "POST",
        "/app/echo",
        body=iter(pieces),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"},
        chunked=True,
    )
    assert res.status == 200, res.body[:500]
    whole = b"".join(pieces)
    doc = res.json()
    assert doc["body_length"] == len(whole)
    assert doc["body_sha256"] == hashlib.sha256(whole).hexdigest()
    client.close()


# --------------------------------------------------------------------------------------------
# Responses


def test_status_line_has_a_reason_phrase(proxy: Proxy) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", proxy.http_port), timeout=10) as s:
        s.sendall(b"GET /app/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"
    res = proxy.client().get("/app/status?code=404")
    assert (res.status, res.reason) == (404, "Not Found")


def test_several_set_cookie_headers_are_kept(proxy: Proxy, tls: bool) -> None:
    res = proxy.client(tls).get("/app/cookies")
    assert res.status == 200
    assert res.header_values("Set-Cookie") == ["a=1", "b=2; Path=/app", "c=3; HttpOnly"]


def test_204_and_304(proxy: Proxy) -> None:
    client = proxy.client()
    res = client.get("/app/status?code=204")
    assert (res.status, res.body) == (204, b"")
    res = client.get("/app/status?code=304&header=ETag:%22v1%22")
    assert (res.status, res.body) == (304, b"")
    assert res.header("ETag") == '"v1"'
    # The connection is still usable after both bodiless responses.
    assert client.get("/app/echo").status == 200
    client.close()


def test_head_keeps_content_length(proxy: Proxy) -> None:
    client = proxy.client()
    res = client.request("HEAD", "/app/big?bytes=12345")
    assert res.status == 200
    assert res.body == b""
    assert res.header("Content-Length") == "12345"
    assert client.get("/app/echo").status == 200
    client.close()


def test_404_and_tomcats_500(proxy: Proxy) -> None:
    client = proxy.client()
    res = client.get("/app/no-such-thing")
    assert res.status == 404
    assert b"HTTP Status 404" in res.body  # Tomcat's page, passed through
    res = client.get("/app/status?code=500&throw=1")
    assert res.status == 500
    assert b"HTTP Status 500" in res.body and b"thrown on purpose" in res.body
    assert res.header("Content-Length") == str(len(res.body))
    res = client.get("/app/status?code=500")
    assert res.status == 500
    assert res.body.startswith(b"status 500 from tomcat")
    client.close()


def test_20mb_streamed_response(proxy: Proxy, tls: bool) -> None:
    size = 20 * 1024 * 1024
    client = proxy.client(tls)
    t0 = time.monotonic()
    res = client.get(f"/app/big?bytes={size}")
    elapsed = time.monotonic() - t0
    assert res.status == 200
    assert res.header("Content-Length") == str(size)
    assert len(res.body) == size
    expected = (bytes(range(251)) * (size // 251 + 1))[:size]
    assert res.body == expected
    print(f"\n20 MiB through the proxy ({'https' if tls else 'http'}): {elapsed:.2f} s")
    client.close()


def test_response_without_content_length(proxy: Proxy, tls: bool) -> None:
    """Tomcat streams a response of unknown length (chunked on HTTP, plain body chunks on AJP)."""
    size = 2 * 1024 * 1024 + 7
    client = proxy.client(tls)
    res = client.get(f"/app/big?bytes={size}&chunked=1")
    assert res.status == 200
    assert res.header("Content-Length") is None
    assert res.body == (bytes(range(251)) * (size // 251 + 1))[:size]
    assert client.get("/app/echo").status == 200
    client.close()


# --------------------------------------------------------------------------------------------
# Connections


def test_the_pair_runs_the_connector_of_this_round(ajp_pair: TomcatGroup, ajp_connector: str) -> None:
    for node in ajp_pair:
        assert f'ProtocolHandler ["ajp-{ajp_connector}-' in node.catalina_out.read_text()


def _count_connections(
    proxy: Proxy, pair: TomcatGroup, requests: int, keep_alive: bool
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    pid = proxy.process.pid
    assert pid is not None
    ajp_ports = [node.ajp_port for node in pair]
    time.sleep(0.2)  # let the previous test's connections settle
    before = upstream_connections(pid, ajp_ports)
    seen: set[tuple[int, int]] = set()
    client = proxy.client()
    for i in range(requests):
        if keep_alive:
            res = client.get(f"/app/echo?i={i}")
        else:
            res = http_request(proxy.http_port, f"/app/echo?i={i}")
        assert res.status == 200
        seen |= upstream_connections(pid, ajp_ports)
    client.close()
    new = seen - before
    print(
        f"\n{requests} requests ({'keep-alive' if keep_alive else 'a new client connection each'}):"
        f" {len(seen)} AJP connections seen, {len(new)} new ({len(before)} pooled before)"
    )
    return seen, new


def test_ajp_connections_are_reused(proxy: Proxy, ajp_pair: TomcatGroup) -> None:
    """Sequential requests share the pooled AJP connections (one per member is enough)."""
    seen, new = _count_connections(proxy, ajp_pair, 40, keep_alive=True)
    # No reuse would show up as one new connection per request.
    assert len(seen) <= 4 and len(new) <= 2, (seen, new)


def test_ajp_connections_are_reused_when_clients_close(
    proxy: Proxy, ajp_pair: TomcatGroup
) -> None:
    log_start = len(proxy.process.log())
    seen, new = _count_connections(proxy, ajp_pair, 40, keep_alive=False)
    assert len(seen) <= 4 and len(new) <= 2, (seen, new)
    assert "client went away" not in proxy.process.log()[log_start:]


def test_wrong_secret_is_a_502_not_tomcats_403(
    tomcat_pair: TomcatGroup, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("proxy-bad-secret")
    port = free_port()
    text = toml_config(
        listen=[port],
        members=_pair_members(tomcat_pair, secret="not-the-secret"),
        balancer_options={"stickysession": "JSESSIONID|jsessionid"},
    )
    with running_proxy(directory, text, [port]) as process:
        res = http_request(port, "/app/echo")
        assert res.status == 502
        assert b"403" not in res.body and b"Forbidden" not in res.body
        deadline = time.monotonic() + 5
        while "secret" not in process.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "secret" in process.log()
