"""The two Apache setups the project was created from, run unchanged in meaning against Tomcat.

Each test writes the seed's Apache configuration (``/work/shared/seeds/000_*.txt`` and
``001_*.txt``) as a ``.conf`` file and starts ``twistd -n lbproxy --config site.conf``. The
templates below are the seed text verbatim; only these were filled in:

  - host names, ports and file paths (the seeds' ``localhost:8010``, ``<hosta-address>:6443``,
    ``/etc/ssl/certs/...``), and the virtual hosts' ``*`` by ``127.0.0.1`` so that nothing
    listens beyond loopback (``*`` itself is covered by the reader's unit tests);
  - the closing tags the blog pages lost (``</Proxy>``, ``</VirtualHost>``) and the
    ``Redirect`` URLs the first seed's page lost;
  - the one addition Tomcat forces in the second seed: ``secret=`` on the ``BalancerMember``
    lines (see L{SEED_001});
  - in the first seed the WebSocket members' scheme ``ws://`` became ``wss://`` (see
    L{SEED_000}).

Run with ``pytest -s`` to see the measured WebSocket echo throughput.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import string
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from .conftest import AJP_SECRET
from .proxy_process import ProxyClient, ProxyProcess, free_port, running_proxy
from .tomcat import LOOPBACK, TomcatGroup, http_request, make_self_signed_cert
from .wsclient import BINARY, CLOSE, TEXT, RawWebSocket

# --------------------------------------------------------------------------------------------
# The seeds' configurations


#: The second seed (Alfresco Share behind mod_proxy_balancer + mod_proxy_ajp), as the blog
#: shows it inside ``<VirtualHost *:80>``. ``$VHOST`` is the virtual host's address,
#: ``$MEMBER1``/``$MEMBER2`` the nodes' AJP ``host:port``.
#:
#: ``secret=$SECRET`` is the only meaningful addition: the seed's Tomcat (2014) ran its AJP
#: connector without a secret, but since Tomcat 9.0.31 / 8.5.51 (Ghostcat, CVE-2020-1938) an AJP
#: connector has ``secretRequired="true"`` and refuses to start without ``secret``, and refuses
#: (403) requests that do not carry it. So the Apache side of that setup today needs
#: ``secret=`` on each ``BalancerMember`` (mod_proxy_ajp has it since httpd 2.4.42) -- nothing
#: else changes.
SEED_001 = """\
<VirtualHost $VHOST>



<Proxy balancer://app>

   BalancerMember ajp://$MEMBER1/share route=tomcat1 secret=$SECRET

   BalancerMember ajp://$MEMBER2/share route=tomcat2 secret=$SECRET

</Proxy>

ProxyRequests Off

ProxyPassReverse /share balancer://app

ProxyPass /share balancer://app stickysession=JSESSIONID|jsessionid


ServerName localhost
</VirtualHost>
"""

#: The first seed (XTAM nodes behind mod_ssl + mod_proxy_balancer + WebSocket tunnel).
#: ``$VHOST_HTTP``/``$VHOST_HTTPS`` are the virtual hosts' addresses, ``$PUBLIC`` the HTTPS
#: virtual host's URL (what the page's ``Redirect`` lines lost), ``$HOSTA``/``$HOSTB`` the nodes'
#: HTTPS connectors (the seed's ``<hosta-address>:6443``).
#:
#: WebSocket members: the seed writes ``ws://<hosta-address>:6443`` -- plain WebSocket to the
#: nodes' HTTPS port, which cannot work (a cleartext upgrade request to a TLS port). Apache never
#: noticed because the ``/`` rule shadows the WebSocket rule there, so the upgrade went through
#: the HTTPS balancer (mod_proxy_http upgrades since 2.4.47). twisted_lb uses the longest prefix,
#: so the WebSocket balancer is used and its members must be reachable: we keep the seed's port
#: and say ``wss://`` (TLS, with the same ``SSLProxyCheckPeer* off`` as the HTTPS members), the
#: change that keeps the seed's intent (the nodes' HTTPS connector serves WebSocket too). The
#: alternative, ``ws://`` to each node's plain HTTP connector, would keep the scheme and change
#: the port.
SEED_000 = """\
<VirtualHost $VHOST_HTTP>
   Redirect / $PUBLIC/
   Redirect /xtam/ $PUBLIC/xtam/
</VirtualHost>
<VirtualHost $VHOST_HTTPS>
   SSLEngine on
   SSLProxyEngine on

   # followed 2 directives were set for being able to use self-signed certificates on farm nodes
   SSLProxyCheckPeerCN off
   SSLProxyCheckPeerName off


   <Proxy balancer://xtam-https-balancer>
       BalancerMember https://$HOSTA route=hosta
       BalancerMember https://$HOSTB route=hostb
       ProxySet lbmethod=byrequests
       ProxySet stickysession=JSESSIONID
   </Proxy>

   <Proxy balancer://xtam-ws-balancer>
       BalancerMember wss://$HOSTA route=hosta
       BalancerMember wss://$HOSTB route=hostb
       ProxySet lbmethod=byrequests
       ProxySet stickysession=JSESSIONID
   </Proxy>

   ProxyPass / balancer://xtam-https-balancer/
   ProxyPassReverse / balancer://xtam-https-balancer/

   ProxyPass /xtam/websocket-tunnel balancer://xtam-ws-balancer/xtam/websocket-tunnel
   ProxyPassReverse /xtam/websocket-tunnel balancer://xtam-ws-balancer/xtam/websocket-tunnel

   SSLCertificateFile $CERT
   SSLCertificateKeyFile $KEY
</VirtualHost>
"""


def fill(template: str, **values: object) -> str:
    """The template with every C{$NAME} replaced (all must be given, all must be used)."""
    text = string.Template(template).substitute({k: str(v) for k, v in values.items()})
    unused = [k for k in values if f"${k}" not in template]
    assert not unused, unused
    return text


def verifying(seed_000_text: str) -> str:
    """The first seed with backend certificate checks on: the two ``SSLProxyCheckPeer* off``
    lines removed and ``SSLProxyVerify require`` added."""
    lines = seed_000_text.splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.strip().startswith("SSLProxyCheckPeer")]
    assert len(lines) - len(kept) == 2
    text = "".join(kept).replace(
        "   SSLProxyEngine on\n", "   SSLProxyEngine on\n   SSLProxyVerify require\n"
    )
    assert "SSLProxyVerify require" in text
    return text


@attrs.define
class Proxy:
    process: ProxyProcess
    port: int
    tls: bool = False
    redirect_port: int | None = None

    def client(self, **kwargs: object) -> ProxyClient:
        return ProxyClient(self.port, tls=self.tls, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[object]]:
    """Context managers of the proxies started by this module, exited at its end."""
    stack: list[object] = []
    try:
        yield stack
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)  # type: ignore[attr-defined]


def _start(proxies: list[object], directory: Path, text: str, ports: list[int]) -> ProxyProcess:
    cm = running_proxy(directory, text, ports, name="site.conf")
    process = cm.__enter__()
    proxies.append(cm)
    return process


def _route(session_id: str | None) -> str | None:
    return session_id.rpartition(".")[2] if session_id and "." in session_id else None


def _new_session_on(proxy: Proxy, path: str, node: str, tries: int = 10) -> ProxyClient:
    """A client whose session, created through the proxy at C{path}, lives on C{node}."""
    for _ in range(tries):
        client = proxy.client(adopt_cookies=True)
        res = client.get(path)
        assert res.status == 200, res.body[:300]
        if res.json()["node"] == node:
            assert _route(client.cookies.get("JSESSIONID")) == node
            return client
        client.close()
    raise AssertionError(f"no session landed on {node} in {tries} tries")


# ============================================================================================
# Seed 001: AJP balancer, sticky sessions, transparent failover


@pytest.fixture(scope="module")
def seed_001(
    tomcat_cluster: TomcatGroup, tmp_path_factory: pytest.TempPathFactory, proxies: list[object]
) -> Proxy:
    t1, t2 = tomcat_cluster
    port = free_port()
    text = fill(
        SEED_001,
        VHOST=f"{LOOPBACK}:{port}",
        MEMBER1=f"{LOOPBACK}:{t1.ajp_port}",
        MEMBER2=f"{LOOPBACK}:{t2.ajp_port}",
        SECRET=AJP_SECRET,
    )
    process = _start(proxies, tmp_path_factory.mktemp("seed-001"), text, [port])
    return Proxy(process, port)


def test_seed_001_sticky_session_keeps_counting(seed_001: Proxy) -> None:
    for node in ("tomcat1", "tomcat2"):
        client = _new_session_on(seed_001, "/share/session", node)
        session = client.cookies["JSESSIONID"]
        for i in range(50):
            doc = client.get("/share/session").json()
            assert (doc["node"], doc["session"], doc["counter"]) == (node, session, i + 2)
        # The same session in the URL (;jsessionid=, no cookie) sticks too.
        client.cookies.clear()
        for i in range(10):
            res = client.get(f"/share/session;jsessionid={session}")
            doc = res.json()
            assert (doc["node"], doc["session"], doc["counter"]) == (node, session, i + 52)
        client.close()


def test_seed_001_redirect_gets_the_public_address(seed_001: Proxy) -> None:
    """``ProxyPassReverse /share balancer://app``: an absolute redirect from a member (built by
    Tomcat from what the proxy sent over AJP) comes back with the proxy's address."""
    res = http_request(seed_001.port, "/share/redirect?to=/share/echo")
    assert res.status == 302, res.body[:300]
    assert res.header("Location") == f"http://{LOOPBACK}:{seed_001.port}/share/echo"


def test_seed_001_failover_when_tomcat1_dies_under_load(
    tomcat_cluster: TomcatGroup, seed_001: Proxy
) -> None:
    """The blog's story: tomcat1 is killed (SIGKILL by PID) while its users click on; they
    carry on on tomcat2 with the same session (no logout), and their cookie names tomcat2."""
    t1, _ = tomcat_cluster
    clients = [_new_session_on(seed_001, "/share/session", "tomcat1") for _ in range(3)]
    bases = [c.cookies["JSESSIONID"].rpartition(".")[0] for c in clients]
    results: list[list[dict[str, Any]]] = [[] for _ in clients]
    failed: list[str] = []
    stop = threading.Event()

    def load(i: int) -> None:
        while not stop.is_set():
            try:
                res = clients[i].get("/share/session")
                if res.status == 200:
                    results[i].append(res.json())
                else:
                    failed.append(f"status {res.status}: {res.body[:200]!r}")
            except Exception as e:  # noqa: BLE001 - every failure is counted
                failed.append(repr(e))

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        killed_after = [len(r) for r in results]
        t1.kill()
        time.sleep(2.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        for c in clients:
            c.close()
    total = sum(len(r) for r in results) + len(failed)
    print(f"\nseed 001 failover: {total} GETs by {len(clients)} clients, {len(failed)} failed")
    assert not failed, failed[:5]
    for i, client in enumerate(clients):
        docs = results[i]
        counters = [d["counter"] for d in docs]
        steps = {b - a for a, b in itertools.pairwise(counters)}
        # +2 at most: a request tomcat1 served but could not answer is replayed on tomcat2.
        assert steps <= {1, 2}, counters
        assert killed_after[i] > 5 and len(docs) > killed_after[i] + 5
        assert docs[-1]["node"] == "tomcat2"
        cookie = client.cookies["JSESSIONID"]
        assert cookie.rpartition(".")[0] == bases[i]
        assert _route(cookie) == "tomcat2"
        assert docs[-1]["session"] == cookie
    # (The autouse fixture restarts tomcat1 and waits for replication after this test.)


# ============================================================================================
# Seed 000: HTTPS in front of HTTPS members, WebSocket tunnel


@attrs.define
class Seed000:
    proxy: Proxy
    text: str
    #: The seed's text for other listening ports: C{conf(http_port, https_port)}.
    conf: Callable[[int, int], str]


@pytest.fixture(scope="module")
def seed_000(
    tomcat_https_pair: TomcatGroup,
    tmp_path_factory: pytest.TempPathFactory,
    proxies: list[object],
) -> Seed000:
    a, b = tomcat_https_pair
    directory = tmp_path_factory.mktemp("seed-000")
    cert, key = directory / "tls" / "cert-name.crt", directory / "tls" / "private_key.key"
    make_self_signed_cert(cert, key)

    def conf(http_port: int, https_port: int) -> str:
        return fill(
            SEED_000,
            VHOST_HTTP=f"{LOOPBACK}:{http_port}",
            VHOST_HTTPS=f"{LOOPBACK}:{https_port}",
            PUBLIC=f"https://{LOOPBACK}:{https_port}",
            HOSTA=f"{LOOPBACK}:{a.https_port}",
            HOSTB=f"{LOOPBACK}:{b.https_port}",
            CERT=cert,
            KEY=key,
        )

    http_port, https_port = free_port(), free_port()
    text = conf(http_port, https_port)
    process = _start(proxies, directory, text, [http_port, https_port])
    return Seed000(Proxy(process, https_port, tls=True, redirect_port=http_port), text, conf)


def test_seed_000_port_80_redirects_to_https(seed_000: Seed000) -> None:
    public = f"https://{LOOPBACK}:{seed_000.proxy.port}"
    assert seed_000.proxy.redirect_port is not None
    for path in ("/", "/xtam/", "/xtam/session?a=1&b=2"):
        res = http_request(seed_000.proxy.redirect_port, path)
        # Apache's Redirect without a status is a 302 (temporary), kept by the reader.
        assert res.status == 302, (path, res.status, res.body[:200])
        assert res.header("Location") == public + path
    # And the target is served.
    res = http_request(seed_000.proxy.port, "/xtam/echo", tls=True)
    assert res.status == 200 and res.json()["scheme"] == "https"


def test_seed_000_shadowed_ws_rule_is_warned_about_and_used(seed_000: Seed000) -> None:
    log = seed_000.proxy.process.log()
    assert re.search(
        r"Apache checks ProxyPass rules in file order, so /xtam/websocket-tunnel \(line \d+\) "
        r"is shadowed by / \(line \d+\)",
        log,
    ), log[-3000:]
    # The longest prefix wins: /xtam/websocket-tunnel is the WebSocket balancer's. A plain GET
    # there goes to a node of that balancer over https:// (as Apache 2.4.47+ sends it), where
    # Tomcat has no page: its 404...
    res = http_request(seed_000.proxy.port, "/xtam/websocket-tunnel", tls=True)
    assert res.status == 404, (res.status, res.body[:300])
    assert "Tomcat" in res.body.decode("utf-8", "replace"), res.body[:300]
    # ... and an upgrade succeeds (the HTTPS balancer at / would refuse it with 400).
    with FastWebSocket.connect(seed_000.proxy.port, "/xtam/websocket-tunnel", tls=True) as ws:
        assert json.loads(ws.recv_text())["node"] in ("hosta", "hostb")
    # Its neighbours are still the HTTPS balancer's.
    res = http_request(seed_000.proxy.port, "/xtam/websocket-tunnelx", tls=True)
    assert res.status == 404  # Tomcat's answer: no such servlet


@pytest.mark.parametrize("node", ["hosta", "hostb"])
def test_seed_000_websocket_follows_the_https_session(seed_000: Seed000, node: str) -> None:
    client = _new_session_on(seed_000.proxy, "/xtam/session", node)
    session = client.cookies["JSESSIONID"]
    # The session continues over HTTPS through the proxy.
    doc = client.get("/xtam/session").json()
    assert (doc["node"], doc["session"], doc["counter"]) == (node, session, 2)
    client.close()
    for _ in range(3):
        with FastWebSocket.connect(
            seed_000.proxy.port,
            "/xtam/websocket-tunnel",
            tls=True,
            headers=[("Cookie", f"JSESSIONID={session}")],
        ) as ws:
            greeting = json.loads(ws.recv_text())
            assert (greeting["node"], greeting["session"]) == (node, session)
            ws.send_text("hello " + node)
            assert ws.recv_text() == "hello " + node


def _mixed_messages(count: int, rng: random.Random) -> list[tuple[int, bytes]]:
    """C{count} messages, text and binary, from 0 bytes to exactly 1 MiB (every frame length
    encoding's edges included), most small, some large; ~30 MB in all."""
    mib = 1024 * 1024
    edges = [0, 1, 125, 126, 127, 65535, 65536, 65537, mib - 1, mib]
    sizes = edges + [
        int(2 ** rng.uniform(0, 20)) if rng.random() < 0.35 else rng.randint(1, 2048)
        for _ in range(count - len(edges))
    ]
    rng.shuffle(sizes)
    text_pool = ("Grüße, ¿qué tal? €25 — 日本語 🎉 plain ascii text. " * 30000).encode()
    binary_pool = rng.randbytes(2 * mib)
    messages = []
    for i, size in enumerate(sizes):
        if i % 2:
            start = rng.randrange(0, len(binary_pool) - size + 1)
            messages.append((BINARY, binary_pool[start : start + size]))
        else:
            start = rng.randrange(0, len(text_pool) - size - 4)
            chunk = text_pool[start : start + size].decode("utf-8", "ignore").encode("utf-8")
            messages.append((TEXT, chunk))
    return messages


def echo_pipelined(ws: RawWebSocket, messages: list[tuple[int, bytes]], window: int) -> None:
    """Send C{messages}, keeping at most C{window} bytes unanswered (a larger message only goes
    out alone), and check each echo in order, byte for byte."""
    sent = received = outstanding = 0
    while received < len(messages):
        if sent < len(messages) and (
            outstanding == 0 or outstanding + len(messages[sent][1]) <= window
        ):
            ws.send_frame(*messages[sent])
            outstanding += len(messages[sent][1])
            sent += 1
            continue
        opcode, payload = ws.recv_message()
        expected = messages[received]
        assert (opcode, len(payload)) == (expected[0], len(expected[1])), received
        assert payload == expected[1], f"message {received} differs"
        outstanding -= len(payload)
        received += 1


def test_seed_000_websocket_echo_1000_mixed_messages(seed_000: Seed000) -> None:
    messages = _mixed_messages(1000, random.Random(1000))
    total = sum(len(m) for _, m in messages)
    with FastWebSocket.connect(
        seed_000.proxy.port, "/xtam/websocket-tunnel", tls=True, timeout=30
    ) as ws:
        json.loads(ws.recv_text())
        t0 = time.monotonic()
        echo_pipelined(ws, messages, window=256 * 1024)
        elapsed = time.monotonic() - t0
        ws.send_close()
        assert ws.recv_message()[0] == CLOSE
    print(
        f"\nseed 000: 1000 mixed messages ({total / 1e6:.1f} MB each way, largest "
        f"{max(len(m) for _, m in messages)} B) echoed through wss in {elapsed:.2f} s"
    )


def test_seed_000_verification_on_refuses_self_signed_members(
    seed_000: Seed000, tmp_path_factory: pytest.TempPathFactory, proxies: list[object]
) -> None:
    http_port, https_port = free_port(), free_port()
    text = verifying(seed_000.conf(http_port, https_port))
    process = _start(proxies, tmp_path_factory.mktemp("seed-000-verify"), text, [https_port])
    res = http_request(https_port, "/xtam/echo", tls=True)
    assert res.status == 502, (res.status, res.body[:300])
    log = process.log()
    lines = [ln for ln in log.splitlines() if "certificate verify failed" in ln]
    print("\n" + "\n".join(lines[:2]))
    assert lines, log[-3000:]
    # The WebSocket members are checked as well.
    ws = RawWebSocket.connect(https_port, "/xtam/websocket-tunnel", tls=True, require_101=False)
    ws.close()
    assert ws.status == 502, ws.headers


def test_seed_000_member_redirect_gets_the_public_address(
    seed_000: Seed000, tomcat_https_pair: TomcatGroup
) -> None:
    public = f"https://{LOOPBACK}:{seed_000.proxy.port}"
    ports = {n.name: n.https_port for n in tomcat_https_pair}
    client = seed_000.proxy.client()
    seen = set()
    for _ in range(4):
        res = client.get("/xtam/redirect?to=/xtam/echo")
        assert res.status == 302, res.body[:300]
        node = res.header("X-Node")
        seen.add(node)
        # Tomcat wrote https://127.0.0.1:<its port>/xtam/echo; ProxyPassReverse made it ours.
        assert res.header("Location") == f"{public}/xtam/echo", (node, ports)
    assert seen == {"hosta", "hostb"}
    res = client.get("/xtam/echo")
    assert res.status == 200 and res.json()["requestURI"] == "/xtam/echo"
    client.close()


# --------------------------------------------------------------------------------------------
# Throughput


def _throughput(port: int, n: int = 2000) -> tuple[float, float]:
    """Messages per second for C{n} 32-byte text messages over wss to C{port}: one at a time
    (request/response), and pipelined (all sent, then all read)."""
    payloads = [f"m{i:05d}".ljust(32, "x").encode() for i in range(n)]
    with FastWebSocket.connect(port, "/xtam/websocket-tunnel", tls=True, timeout=30) as ws:
        json.loads(ws.recv_text())
        t0 = time.monotonic()
        for p in payloads:
            ws.send_frame(TEXT, p)
            assert ws.recv_message() == (TEXT, p)
        rr = n / (time.monotonic() - t0)
        t0 = time.monotonic()
        for p in payloads:
            ws.send_frame(TEXT, p)
        for p in payloads:
            assert ws.recv_message() == (TEXT, p)
        pipelined = n / (time.monotonic() - t0)
    return rr, pipelined


def test_seed_000_websocket_throughput(seed_000: Seed000, tomcat_https_pair: TomcatGroup) -> None:
    node = tomcat_https_pair["hosta"]
    assert node.https_port is not None
    _throughput(seed_000.proxy.port, 200)  # warm-up
    _throughput(node.https_port, 200)
    proxied = _throughput(seed_000.proxy.port)
    direct = _throughput(node.https_port)
    print(
        f"\nWebSocket echo, 2000 x 32 B over TLS, messages/s:\n"
        f"  through twisted_lb (wss -> wss): request/response {proxied[0]:.0f}, "
        f"pipelined {proxied[1]:.0f}\n"
        f"  direct to Tomcat (wss):          request/response {direct[0]:.0f}, "
        f"pipelined {direct[1]:.0f}"
    )
    assert min(proxied) > 50


# --------------------------------------------------------------------------------------------
# A faster client mask (wsclient's per-byte loop is too slow for 1 MiB frames)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class FastWebSocket(RawWebSocket):
    """L{RawWebSocket} masking whole frames at once."""

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        key = os.urandom(4)
        self.sock.sendall(header + key + _mask(payload, key))
