"""
Tomcat 10's own examples webapp (Debian's C{tomcat10-examples}) behind twisted_lb, configured
the way an Apache httpd user would: an AJP balancer with a secret and routes for
C{/examples}, and C{ProxyPass /examples/websocket/ balancer://ws/...} for the WebSocket
examples, over plain HTTP and HTTPS. What Tomcat saw is read from the examples' own pages
(C{snoop.jsp}, C{RequestHeaderExample}) and from each node's C{logs/attributes.log} (an
C{AccessLogValve} that logs the protocol, server name and TLS attributes, see
L{tests.interop.tomcat.ATTRIBUTE_LOG_FIELDS}).

Where Apache is right (issue 23), twisted_lb now does the same: pages under a C{ws://}
mapping are served by the same node over C{http://}; the client's protocol reaches Tomcat; a
request without C{Host} gets a server name; absolute-form targets are served (never
fetched); an C{Upgrade} on a page route is ignored; TLS attributes and the client's
certificate reach Tomcat; an HTTP/1.0 response says C{Connection: close}.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import string
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from twisted_lb.tls import make_self_signed

from .conftest import AJP_SECRET
from .proxy_process import ProxyProcess, free_port, running_proxy
from .tomcat import LOOPBACK, TomcatGroup, TomcatNode, http_request, make_self_signed_cert
from .wsclient import RawWebSocket

CHROMIUM = "/usr/bin/chromium"

CONFIG = """\
Listen $LOOPBACK:$HTTP

<VirtualHost $LOOPBACK:$HTTPS>
    ServerName examples.test
    Protocols h2 http/1.1
    SSLEngine on
    SSLCertificateFile $CERT
    SSLCertificateKeyFile $KEY
    SSLVerifyClient optional_no_ca
</VirtualHost>

<Proxy balancer://ajp>
    BalancerMember ajp://$LOOPBACK:$AJP1 route=tomcat1 secret=$SECRET
    BalancerMember ajp://$LOOPBACK:$AJP2 route=tomcat2 secret=$SECRET
    ProxySet stickysession=JSESSIONID|jsessionid
</Proxy>
<Proxy balancer://ws>
    BalancerMember ws://$LOOPBACK:$HTTP1 route=tomcat1
    BalancerMember ws://$LOOPBACK:$HTTP2 route=tomcat2
    ProxySet stickysession=JSESSIONID|jsessionid
</Proxy>

ProxyPass /examples/websocket/ balancer://ws/examples/websocket/
ProxyPassReverse /examples/websocket/ balancer://ws/examples/websocket/
ProxyPass /examples balancer://ajp/examples
ProxyPassReverse /examples balancer://ajp/examples
"""

SNOOP = "/examples/jsp/snp/snoop.jsp"


@attrs.define
class Examples:
    process: ProxyProcess
    http: int
    https: int
    nodes: TomcatGroup
    client_cert: Path
    client_key: Path

    def port(self, tls: bool) -> int:
        return self.https if tls else self.http

    def node(self, name: str) -> TomcatNode:
        return self.nodes[name]


@pytest.fixture(scope="module")
def examples(
    tomcat_pair: TomcatGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Examples]:
    t1, t2 = tomcat_pair
    directory = tmp_path_factory.mktemp("examples")
    cert, key = directory / "tls" / "cert.pem", directory / "tls" / "key.pem"
    make_self_signed_cert(cert, key)
    client_cert, client_key = directory / "client.pem", directory / "client-key.pem"
    make_self_signed(client_cert, client_key, "client.examples.test")
    http, https = free_port(), free_port()
    text = string.Template(CONFIG).substitute(
        LOOPBACK=LOOPBACK,
        HTTP=http,
        HTTPS=https,
        CERT=cert,
        KEY=key,
        AJP1=t1.ajp_port,
        AJP2=t2.ajp_port,
        HTTP1=t1.http_port,
        HTTP2=t2.http_port,
        SECRET=AJP_SECRET,
    )
    with running_proxy(directory, text, [http, https], name="site.conf") as process:
        ex = Examples(process, http, https, tomcat_pair, client_cert, client_key)
        for tls in (False, True):  # compile the JSP before the tests time anything
            assert http_request(ex.port(tls), SNOOP, tls=tls).status == 200
        yield ex


def _tls_context(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def raw(
    port: int, data: bytes, *, tls: bool = False, cert: Path | None = None, key: Path | None = None
) -> bytes:
    """Send C{data} on a new connection; everything the proxy answers until it closes."""
    sock: socket.socket = socket.create_connection((LOOPBACK, port), timeout=10)
    if tls:
        sock = _tls_context(cert, key).wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


def _head(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _snoop(body: bytes) -> dict[str, str]:
    text = body.decode("utf-8", "replace")
    fields = {}
    for label in ("Request Protocol", "Server name", "Server port", "Request URI", "Query string"):
        found = re.search(re.escape(label) + r":\s*([^<\s]*)", text)
        assert found, (label, text[:500])
        fields[label] = found.group(1)
    return fields


def _logged(node: TomcatNode, marker: str, timeout: float = 5.0) -> dict[str, str] | None:
    """The line of C{node}'s attribute log whose request line holds C{marker} (waits a bit)."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in node.attribute_log():
            if marker in entry.get("line", ""):
                return entry
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _logged_anywhere(nodes: TomcatGroup, marker: str, timeout: float = 5.0) -> dict[str, str]:
    """The attribute-log line for C{marker} on whichever node served it (waits a bit)."""
    deadline = time.monotonic() + timeout
    while True:
        for node in nodes:
            entry = _logged(node, marker, timeout=0)
            if entry is not None:
                return entry
        assert time.monotonic() < deadline, f"no node logged {marker}"
        time.sleep(0.05)


def _marker() -> str:
    return uuid.uuid4().hex[:12]


# -- 1. pages under the ws:// mapping, and their WebSocket, on one node -----------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("node", ["tomcat1", "tomcat2"])
def test_chat_page_and_its_websocket_on_the_session_node(
    examples: Examples, tls: bool, node: str
) -> None:
    """
    C{GET /examples/websocket/chat.xhtml} under the C{ws://} mapping is Tomcat's page (it was
    426), served over C{http://} by the node of the session's route, which also gets the
    chat's WebSocket; a message sent comes back.
    """
    other = "tomcat2" if node == "tomcat1" else "tomcat1"
    cookie = f"JSESSIONID=0123456789ABCDEF.{node}"
    mark = _marker()
    res = http_request(
        examples.port(tls),
        f"/examples/websocket/chat.xhtml?m={mark}",
        tls=tls,
        headers={"Cookie": cookie},
    )
    assert res.status == 200, (res.status, res.body[:300])
    assert b"Chat.connect" in res.body
    assert _logged(examples.node(node), mark) is not None
    assert _logged(examples.node(other), mark, timeout=0) is None
    mark = _marker()
    with RawWebSocket.connect(
        examples.port(tls),
        f"/examples/websocket/chat?m={mark}",
        tls=tls,
        headers=[("Cookie", cookie), ("Origin", f"http://{LOOPBACK}")],
    ) as ws:
        joined = ws.recv_text()
        assert "has joined" in joined, joined
        guest = joined.split()[1]
        ws.send_text(f"hello {mark}")
        while (text := ws.recv_text()) != f"{guest}: hello {mark}":
            assert "has joined" in text or "disconnected" in text, text
        ws.send_close()
    assert _logged(examples.node(node), mark) is not None
    assert _logged(examples.node(other), mark, timeout=0) is None


# -- 2. the client's protocol -----------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_client_protocol_reaches_tomcat(examples: Examples, tls: bool) -> None:
    port = examples.port(tls)
    for version in ("HTTP/1.0", "HTTP/1.1"):
        answer = raw(
            port,
            f"GET {SNOOP} {version}\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode(),
            tls=tls,
        )
        status, _, body = _head(answer)
        assert status == 200, answer[:300]
        assert _snoop(body)["Request Protocol"] == version


def test_http2_reaches_tomcat_as_http_2_0(examples: Examples) -> None:
    from twisted_lb.tls import h2_available

    if not h2_available():
        pytest.skip("the h2 package is not installed: HTTP/2 is not offered")
    from ..integration.test_https_frontend import h2_get

    negotiated, headers, body = h2_get(examples.https, SNOOP)
    assert negotiated == b"h2"
    assert headers[b":status"] == b"200"
    assert _snoop(body)["Request Protocol"] == "HTTP/2.0"


# -- 3. HTTP/1.0 without Host -------------------------------------------------------------------


def test_no_host_gets_the_listener_address(examples: Examples) -> None:
    """Plain listener, no ServerName: the address and port the client connected to."""
    status, headers, body = _head(raw(examples.http, f"GET {SNOOP} HTTP/1.0\r\n\r\n".encode()))
    assert status == 200
    snoop = _snoop(body)
    assert (snoop["Server name"], snoop["Server port"]) == (LOOPBACK, str(examples.http))


def test_no_host_gets_the_virtual_hosts_server_name(examples: Examples) -> None:
    """The HTTPS virtual host's ServerName examples.test."""
    answer = raw(examples.https, f"GET {SNOOP} HTTP/1.0\r\n\r\n".encode(), tls=True)
    status, _, body = _head(answer)
    assert status == 200
    snoop = _snoop(body)
    assert (snoop["Server name"], snoop["Server port"]) == ("examples.test", str(examples.https))


# -- 4. absolute-form targets -------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_absolute_form_is_served_with_the_targets_host(examples: Examples, tls: bool) -> None:
    """
    RFC 9112 3.2.2: the target's host replaces Host; the request is this proxy's own (the
    named host is never contacted, as Apache with ProxyRequests Off).
    """
    answer = raw(
        examples.port(tls),
        f"GET http://elsewhere.test:8888{SNOOP}?a=1 HTTP/1.1\r\nHost: a.test\r\n"
        "Connection: close\r\n\r\n".encode(),
        tls=tls,
    )
    status, _, body = _head(answer)
    assert status == 200, answer[:300]
    snoop = _snoop(body)
    assert snoop["Server name"] == "elsewhere.test"
    assert snoop["Server port"] == "8888"
    assert snoop["Request URI"] == SNOOP
    assert snoop["Query string"] == "a=1"
    answer = raw(
        examples.port(tls),
        b"GET ftp://elsewhere.test/examples/ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        tls=tls,
    )
    assert _head(answer)[0] == 400


# -- 5. Upgrade on a page route ---------------------------------------------------------------


def test_upgrade_on_the_ajp_route_is_ignored(examples: Examples) -> None:
    """RFC 9110 7.8: an Upgrade the route cannot honour is ignored; the page is served."""
    answer = raw(
        examples.http,
        f"GET {SNOOP} HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    status, headers, body = _head(answer)
    assert status == 200, answer[:300]
    assert "upgrade" not in headers
    assert _snoop(body)["Request Protocol"] == "HTTP/1.1"


# -- 6. TLS attributes --------------------------------------------------------------------------


@pytest.mark.parametrize("with_certificate", [True, False], ids=["certificate", "none"])
def test_tls_attributes_reach_tomcat(examples: Examples, with_certificate: bool) -> None:
    """
    Tomcat's jakarta.servlet.request.* TLS attributes, as mod_proxy_ajp gives them: cipher,
    key size, TLS session id, protocol, and the client's certificate chain when presented.
    """
    mark = _marker()
    cert = examples.client_cert if with_certificate else None
    answer = raw(
        examples.https,
        f"GET {SNOOP}?m={mark} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode(),
        tls=True,
        cert=cert,
        key=examples.client_key if cert else None,
    )
    assert _head(answer)[0] == 200, answer[:300]
    entry = _logged_anywhere(examples.nodes, mark)
    assert entry["protocol"] == "HTTP/1.1"
    assert re.fullmatch(r"TLS_\w+", entry["cipher"]), entry
    assert entry["key_size"] in ("128", "256"), entry
    assert re.fullmatch(r"[0-9A-F]{64}", entry["session_id"]), entry
    assert entry["secure_protocol"] == "TLSv1.3", entry
    if with_certificate:
        assert entry["certificates"].startswith("[Ljava.security.cert.X509Certificate;@"), entry
    else:
        assert entry["certificates"] == "-", entry


def test_plain_http_has_no_tls_attributes(examples: Examples) -> None:
    mark = _marker()
    assert http_request(examples.http, f"{SNOOP}?m={mark}").status == 200
    entry = _logged_anywhere(examples.nodes, mark)
    assert (entry["cipher"], entry["key_size"], entry["session_id"]) == ("-", "-", "-")


# -- 8. HTTP/1.0 and Connection: close --------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_http_1_0_response_says_close(examples: Examples, tls: bool) -> None:
    for extra in ("", "Connection: keep-alive\r\n"):
        answer = raw(
            examples.port(tls), f"GET {SNOOP} HTTP/1.0\r\nHost: a\r\n{extra}\r\n".encode(), tls=tls
        )
        status, headers, _ = _head(answer)
        assert status == 200
        assert headers.get("connection") == "close", headers


# -- What twisted_lb keeps doing differently from Apache ---------------------------------------


def test_examples_redirect_is_passed_on(examples: Examples) -> None:
    """Tomcat's own redirect of /examples to /examples/ reaches the client as Tomcat sent it."""
    res = http_request(examples.http, "/examples")
    assert res.status == 302
    assert res.header("Location") == "/examples/"


def test_separate_cookie_lines_reach_tomcat_separately(examples: Examples) -> None:
    """Two Cookie lines stay two (Apache joins them with ', ', which Tomcat reads otherwise)."""
    res = http_request(
        examples.http,
        "/examples/servlets/servlet/CookieExample",
        headers=[("Cookie", "a=1"), ("Cookie", "b=2")],
    )
    assert res.status == 200
    text = re.sub(r"<[^>]+>", " ", res.body.decode("utf-8", "replace"))
    cookies = re.findall(r"Cookie Name:\s*(\S+)\s+Cookie Value:\s*(\S+)", text)
    assert cookies == [("a", "1"), ("b", "2")], text


def test_hop_by_hop_fields_do_not_reach_tomcat(examples: Examples) -> None:
    answer = raw(
        examples.http,
        b"GET /examples/servlets/servlet/RequestHeaderExample HTTP/1.1\r\nHost: a\r\n"
        b"Connection: close, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
        b"Upgrade: h2c\r\nX-Kept: 2\r\n\r\n",
    )
    status, _, body = _head(answer)
    assert status == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace"))).lower()
    assert "x-kept 2" in text
    for name in ("connection", "x-foo", "keep-alive", " te ", "upgrade"):
        assert name not in text, (name, text)


def test_encoded_semicolon_stays_data(examples: Examples) -> None:
    """%3B is not a path-parameter delimiter: Tomcat's path info keeps it (Apache's: /a)."""
    res = http_request(examples.http, "/examples/servlets/servlet/RequestInfoExample/a%3Bb;c=d")
    assert res.status == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", res.body.decode("utf-8", "replace")))
    assert "Path Info: /a;b " in text, text


def test_dot_segments_are_refused(examples: Examples) -> None:
    for path in ("/examples/jsp/../index.html", "/examples/%2e%2e/manager/"):
        answer = raw(
            examples.http, f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
        )
        assert _head(answer)[0] == 400, (path, answer[:200])


# -- A real browser -----------------------------------------------------------------------------


def _require_browser() -> None:
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Python playwright is not installed"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("LB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LB_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_chromium_chats_through_the_proxy(examples: Examples, tls: bool, tmp_path: Path) -> None:
    """
    A real Chromium opens Tomcat's chat example through twisted_lb (page and WebSocket under
    one ProxyPass), sends a message and reads it back.
    """
    _require_browser()
    from playwright.sync_api import sync_playwright

    scheme = "https" if tls else "http"
    url = f"{scheme}://{LOOPBACK}:{examples.port(tls)}/examples/websocket/chat.xhtml"
    mark = _marker()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            ignore_https_errors=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = context.new_page()
            response = page.goto(url, timeout=15_000)
            assert response is not None and response.status == 200
            console = page.locator("#console")
            console.get_by_text("Info: WebSocket connection opened.").wait_for(timeout=10_000)
            page.fill("#chat", f"hello from chromium {mark}")
            page.press("#chat", "Enter")
            console.get_by_text(f"hello from chromium {mark}").wait_for(timeout=10_000)
            assert re.search(r"Guest\d+: hello from chromium " + mark, console.inner_text())
        finally:
            context.close()
