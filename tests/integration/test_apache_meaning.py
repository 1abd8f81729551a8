"""
Apache httpd files keep their meaning end to end: each test writes a file
in the style of a real deployment, reads it with the Apache reader and
sends real requests through the proxy it describes.
"""

from __future__ import annotations

import os
import socket
import tempfile
import textwrap

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.config import read_apache
from twisted_lb.service import ProxyService

from .support import Node


def raw_request(port: int, data: bytes) -> defer.Deferred[bytes]:
    """Send C{data} to 127.0.0.1:C{port}; the first bytes of the answer."""

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            return s.recv(65536)

    return deferToThread(talk)


class ApacheSite:
    """An Apache file for the test, read and served on real sockets."""

    def __init__(self, test: TestCase, text: str) -> None:
        directory = tempfile.mkdtemp()
        test.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        self.path = os.path.join(directory, "httpd.conf")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        self.config, self.warnings = read_apache(self.path)
        self.service = ProxyService(self.config, reactor)

    async def start(self) -> list[int]:
        """Start the proxy; the ports of its listeners, in the file's order."""
        self.service.startService()
        ports = []
        for listening in self.service.listening:
            port = await listening._waitingForPort
            ports.append(port.getHost().port)
        return ports


class TraceEnableTests(TestCase):
    """TraceEnable Off (Debian's security.conf) answers TRACE with 405."""

    timeout = 30

    def setUp(self) -> None:
        self.node = Node("node1")
        self.addCleanup(self.node.stop)

    @defer.inlineCallbacks
    def serve(self, trace: str) -> defer.Generator[defer.Deferred[object], object, int]:
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            {trace}
            <Proxy balancer://app>
                BalancerMember {self.node.url} route=node1
            </Proxy>
            ProxyPass / balancer://app/
            """,
        )
        self.addCleanup(site.service.stopService)
        [port] = yield defer.Deferred.fromCoroutine(site.start())
        return port

    @defer.inlineCallbacks
    def test_trace_refused(self):
        port = yield self.serve("TraceEnable Off")
        answer = yield raw_request(port, b"TRACE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 405"), answer[:60])
        # Other methods still pass.
        answer = yield raw_request(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])

    @defer.inlineCallbacks
    def test_trace_with_a_body_refused(self):
        """A TRACE with a body (the streamed-body lane) is refused all the same."""
        port = yield self.serve("TraceEnable Off")
        answer = yield raw_request(
            port, b"TRACE /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 405"), answer[:60])

    @defer.inlineCallbacks
    def test_trace_passed_by_default(self):
        port = yield self.serve("")
        answer = yield raw_request(port, b"TRACE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(answer.startswith(b"HTTP/1.1 405"), answer[:60])


def _header(answer: bytes, name: bytes) -> list[bytes]:
    head = answer.split(b"\r\n\r\n", 1)[0]
    prefix = name.lower() + b":"
    return [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(prefix)
    ]


def _node_of(answer: bytes) -> str:
    import json

    body = answer.split(b"\r\n\r\n", 1)[1]
    if body[:1] != b"{":  # chunked
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return json.loads(body)["node"]


class RouteCookieTests(TestCase):
    """
    Apache's sticky-session idiom for members without jvmRoute: the proxy
    sets its own ROUTEID cookie when the route changes, and follows it.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        for node in self.nodes:
            self.addCleanup(node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            Header add Set-Cookie "ROUTEID=.%{{BALANCER_WORKER_ROUTE}}e; path=/" env=BALANCER_ROUTE_CHANGED
            Header always set X-Frame-Options SAMEORIGIN
            Header set X-Served-By "%{{BALANCER_WORKER_NAME}}e"
            RequestHeader set X-Forwarded-Proto "https"
            RequestHeader unset X-Secret
            <Proxy balancer://app>
                BalancerMember {self.nodes[0].url} route=1
                BalancerMember {self.nodes[1].url} route=2
                ProxySet stickysession=ROUTEID
            </Proxy>
            ProxyPass / balancer://app/
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def get(self, cookie: bytes = b"", method: bytes = b"GET") -> defer.Deferred[bytes]:
        extra = b"Cookie: " + cookie + b"\r\n" if cookie else b""
        body = b"Content-Length: 2\r\n\r\n{}" if method == b"POST" else b"\r\n"
        return raw_request(
            self.port,
            method
            + b" /echo HTTP/1.1\r\nHost: x\r\nX-Secret: s\r\nConnection: close\r\n"
            + extra
            + body,
        )

    @defer.inlineCallbacks
    def test_sticky_by_route_cookie_and_failover(self):
        """A new session gets ROUTEID; it keeps the member; a failover moves and re-sets it."""
        for method in (b"GET", b"POST"):  # the fast lane and twisted.web's
            answer = yield self.get(method=method)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
            [cookie] = _header(answer, b"set-cookie")
            self.assertIn(cookie, (b"ROUTEID=.1; path=/", b"ROUTEID=.2; path=/"))
            self.assertEqual(_header(answer, b"x-frame-options"), [b"SAMEORIGIN"])
            first = _node_of(answer)
            route = cookie.split(b";")[0]
            self.assertEqual(route, b"ROUTEID=." + first[-1:].encode())
            for _ in range(4):
                answer = yield self.get(route, method)
                self.assertEqual(_node_of(answer), first)
                self.assertEqual(_header(answer, b"set-cookie"), [])
                served_by = self.nodes[int(first[-1]) - 1].url.encode()
                self.assertEqual(_header(answer, b"x-served-by"), [served_by])
        # The member of the session goes away: the next request moves, with a new cookie.
        yield self.nodes[int(first[-1]) - 1].stop()
        answer = yield self.get(route)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
        self.assertNotEqual(_node_of(answer), first)
        other = b"2" if first.endswith("1") else b"1"
        self.assertEqual(_header(answer, b"set-cookie"), [b"ROUTEID=." + other + b"; path=/"])

    @defer.inlineCallbacks
    def test_request_headers_edited(self):
        """RequestHeader set and unset reach the member."""
        import json

        answer = yield self.get()
        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        headers = json.loads(body)["headers"]
        self.assertIn(["x-forwarded-proto", "https"], headers)
        self.assertNotIn("x-secret", [n for n, _ in headers])

    @defer.inlineCallbacks
    def test_always_reaches_error_responses(self):
        """Header always set is on the proxy's own 503; plain Header set is not."""
        for node in self.nodes:
            yield node.stop()
        for method in (b"GET", b"POST"):
            answer = yield self.get(method=method)
            self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer[:80])
            self.assertEqual(_header(answer, b"x-frame-options"), [b"SAMEORIGIN"])
            self.assertEqual(_header(answer, b"x-served-by"), [])
            self.assertEqual(_header(answer, b"set-cookie"), [])


class AccessTests(TestCase):
    """Require and Order/Allow/Deny answer 403 to clients they do not let in."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            Header always set X-Frame-Options DENY
            <Proxy balancer://app>
                BalancerMember {self.node.url} route=node1
                Require all granted
            </Proxy>
            ProxyPass / balancer://app/
            ProxyPass /intranet balancer://app/intranet
            <Location /intranet>
                Require ip 10.0.0.0/8
            </Location>
            <Location /admin>
                Order deny,allow
                Deny from all
                Allow from 192.168.1.0/24
            </Location>
            <Location /local>
                Require local
            </Location>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def request(self, path: bytes, method: bytes = b"GET") -> defer.Deferred[bytes]:
        body = b"Content-Length: 2\r\n\r\n{}" if method == b"POST" else b"\r\n"
        return raw_request(
            self.port,
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + body,
        )

    @defer.inlineCallbacks
    def test_refused_and_allowed(self):
        """From 127.0.0.1: 403 where the rules say so (on both lanes), 200 elsewhere."""
        for method in (b"GET", b"POST"):
            for path in (
                b"/intranet/echo",
                b"/admin",
                b"/admin/x",
                b"/%61dmin/x",
                b"/admin;jsessionid=1/x",
            ):
                answer = yield self.request(path, method)
                self.assertTrue(answer.startswith(b"HTTP/1.1 403"), (method, path, answer[:60]))
                self.assertEqual(_header(answer, b"x-frame-options"), [b"DENY"])
            for path in (b"/echo", b"/administrator", b"/local/echo"):
                answer = yield self.request(path, method)
                self.assertFalse(answer.startswith(b"HTTP/1.1 403"), (method, path, answer[:60]))


class VirtualHostTests(TestCase):
    """Two name-based virtual hosts on one port: one socket, routes chosen by Host."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        for node in self.nodes:
            self.addCleanup(node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                ServerName www.example.com
                ProxyPass / {self.nodes[0].url}/
            </VirtualHost>
            <VirtualHost 127.0.0.1:0>
                ServerName api.example.com
                ServerAlias *.api.example.com
                ProxyPass / {self.nodes[1].url}/
                <Location /private>
                    Require all denied
                </Location>
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def request(self, host: bytes, path: bytes = b"/echo", method: bytes = b"GET"):
        body = b"Content-Length: 2\r\n\r\n{}" if method == b"POST" else b"\r\n"
        return raw_request(
            self.port,
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: "
            + host
            + b"\r\nConnection: close\r\n"
            + body,
        )

    @defer.inlineCallbacks
    def test_routes_by_host(self):
        """Each name reaches its own member, on both lanes; other names get the first host."""
        for method in (b"GET", b"POST"):
            for host, node in (
                (b"www.example.com", "node1"),
                (b"API.example.com:80", "node2"),
                (b"eu.api.example.com", "node2"),
                (b"other.example.net", "node1"),
                (b"127.0.0.1", "node1"),
            ):
                answer = yield self.request(host, method=method)
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), (host, answer[:60]))
                self.assertEqual(_node_of(answer), node, host)
            # The second host's access rules are its own.
            answer = yield self.request(b"api.example.com", b"/private/x", method)
            self.assertTrue(answer.startswith(b"HTTP/1.1 403"), answer[:60])
            answer = yield self.request(b"www.example.com", b"/private/x", method)
            self.assertFalse(answer.startswith(b"HTTP/1.1 403"), answer[:60])


class TLSProtocolTests(TestCase):
    """SSLProtocol and SSLCipherSuite decide what the HTTPS listener offers, for real."""

    timeout = 30

    @defer.inlineCallbacks
    def serve(self, lines: str):
        from pathlib import Path

        from twisted_lb.tls import make_self_signed

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        make_self_signed(directory / "cert.pem", directory / "key.pem")
        node = Node("node1")
        self.addCleanup(node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                SSLEngine on
                SSLCertificateFile {directory}/cert.pem
                SSLCertificateKeyFile {directory}/key.pem
                {lines}
                ProxyPass / {node.url}/
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [port] = yield defer.Deferred.fromCoroutine(site.start())
        return port

    def handshake(self, port: int, max_version: int | None) -> defer.Deferred[str]:
        from OpenSSL import SSL

        from .support import tls_client

        def run() -> str:
            try:
                conn = tls_client(port, max_version=max_version)
            except SSL.Error:
                return "refused"
            try:
                return conn.get_protocol_version_name()
            finally:
                conn.sock_shutdown(2)
                conn.close()

        return deferToThread(run)

    @defer.inlineCallbacks
    def test_tls13_only_refuses_tls12(self):
        """SSLProtocol -all +TLSv1.3: a TLS 1.2 client is refused, a TLS 1.3 one served."""
        from OpenSSL import SSL

        port = yield self.serve("SSLProtocol -all +TLSv1.3")
        result = yield self.handshake(port, SSL.TLS1_2_VERSION)
        self.assertEqual(result, "refused")
        result = yield self.handshake(port, None)
        self.assertEqual(result, "TLSv1.3")

    @defer.inlineCallbacks
    def test_tls12_only_and_default(self):
        """SSLProtocol TLSv1.2 offers 1.2 only; without SSLProtocol 1.2 clients are served."""
        from OpenSSL import SSL

        port = yield self.serve("SSLProtocol TLSv1.2\n                SSLCipherSuite ECDHE+AESGCM")
        result = yield self.handshake(port, None)
        self.assertEqual(result, "TLSv1.2")
        port = yield self.serve("")
        result = yield self.handshake(port, SSL.TLS1_2_VERSION)
        self.assertEqual(result, "TLSv1.2")


class RewriteTests(TestCase):
    """The mod_rewrite subset and redirects, on real sockets."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        from .test_websocket import WSNode

        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        self.ws = WSNode("ws1")
        self.addCleanup(self.ws.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                ServerName app.example.com
                Header always set X-Site app
                RewriteEngine On
                RewriteCond %{{HTTP:Upgrade}} websocket [NC]
                RewriteCond %{{HTTP:Connection}} upgrade [NC]
                RewriteRule ^/?(.*) "{self.ws.url}/$1" [P,L]
                RewriteCond %{{HTTPS}} off
                RewriteCond %{{REQUEST_URI}} ^/secure
                RewriteRule (.*) https://%{{HTTP_HOST}}$1 [R=301,L]
                RewriteCond %{{REQUEST_METHOD}} ^(PUT|DELETE)$
                RewriteRule ^/readonly/ - [F]
                RewriteRule ^/app$ /app/ [R]
                RewriteRule ^/shop/(.*)$ /app/$1 [PT,QSA]
                <Proxy balancer://app>
                    BalancerMember {self.node.url} route=node1
                </Proxy>
                RewriteRule ^/legacy/(.*)$ balancer://app/$1 [P,QSA]
                ProxyPass /app/ balancer://app/
                ProxyPass /secure balancer://app/
                ProxyPass /readonly/ balancer://app/
                <Location /legacy/private>
                    Require all denied
                </Location>
                RedirectMatch 301 ^/old/(.*)$ /app/$1
                Redirect permanent /docs https://docs.example.com/manual
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def request(self, line: bytes, extra: bytes = b"") -> defer.Deferred[bytes]:
        return raw_request(
            self.port,
            line + b" HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n" + extra + b"\r\n",
        )

    @defer.inlineCallbacks
    def test_redirects(self):
        """[R=301] with %{HTTP_HOST}, [R], RedirectMatch and Redirect give their Location."""
        for line, status, location in (
            (b"GET /secure/x?a=1", b"301", b"https://app.example.com/secure/x?a=1"),
            (b"GET /app", b"302", b"/app/"),
            (b"GET /old/page?q=2", b"301", b"/app/page?q=2"),
            (b"GET /docs/install", b"301", b"https://docs.example.com/manual/install"),
        ):
            answer = yield self.request(line)
            self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), (line, answer[:60]))
            self.assertEqual(_header(answer, b"location"), [location], line)

    @defer.inlineCallbacks
    def test_forbidden_and_proxy(self):
        """[F] under its conditions; [P] to a balancer with the query kept."""
        answer = yield self.request(b"DELETE /readonly/x")
        self.assertTrue(answer.startswith(b"HTTP/1.1 403"), answer[:60])
        answer = yield self.request(b"GET /readonly/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
        answer = yield self.request(b"GET /legacy/echo?a=1")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
        self.assertEqual(_node_of(answer), "node1")
        # The host's Header lines reach answers proxied by a rule too.
        self.assertEqual(_header(answer, b"x-site"), [b"app"])
        # A <Location> guards the requested path also when a rule proxies it (as Apache).
        answer = yield self.request(b"GET /legacy/private/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 403"), answer[:60])
        answer = yield self.request(b"GET /legacy/%70rivate/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 403"), answer[:60])
        # [PT]: /shop/echo is routed as /app/echo (ProxyPass /app/ -> the member's /echo).
        import json

        answer = yield self.request(b"GET /shop/echo?b=2")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        echo = json.loads(body)
        self.assertEqual((echo["uri"], echo["query"]), ("/echo", "b=2"))

    @defer.inlineCallbacks
    def test_upgrade_split(self):
        """The WebSocket guide's idiom: an upgrade goes to the ws member, a page to the page member."""
        answer = yield self.request(
            b"GET /chat",
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 101"), answer[:80])
        self.assertEqual(self.ws.requests[-1].path, "/chat")
        answer = yield self.request(b"GET /app/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
        self.assertEqual(_node_of(answer), "node1")


class BasicAuthTests(TestCase):
    """AuthType Basic with an htpasswd file: 401 without credentials, 200 with them."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        import bcrypt

        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        directory = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        users = os.path.join(directory, "htpasswd")
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).replace(b"$2b$", b"$2y$", 1)
        with open(users, "wb") as f:
            f.write(b"alice:" + hashed + b"\n")
            f.write(b"bob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")  # pw
            f.write(b"carol:$apr1$oOgdeThn$AP5uzEbsFWetWg01n4EUH0\n")  # pw2
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <Proxy balancer://app>
                BalancerMember {self.node.url} route=node1
            </Proxy>
            ProxyPass / balancer://app/
            <Location /private>
                AuthType Basic
                AuthName "Private area"
                AuthUserFile {users}
                Require valid-user
            </Location>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def request(self, path: bytes, credentials: bytes | None = None, method: bytes = b"GET"):
        import base64

        extra = b""
        if credentials is not None:
            extra = b"Authorization: Basic " + base64.b64encode(credentials) + b"\r\n"
        body = b"Content-Length: 2\r\n\r\n{}" if method == b"POST" else b"\r\n"
        return raw_request(
            self.port,
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + body,
        )

    @defer.inlineCallbacks
    def test_login(self):
        """Every htpasswd hash kind logs in; wrong or no credentials get 401 with the realm."""
        for method in (b"GET", b"POST"):
            for credentials in (None, b"alice:wrong", b"mallory:x", b"nocolon"):
                answer = yield self.request(b"/private/echo", credentials, method)
                self.assertTrue(answer.startswith(b"HTTP/1.1 401"), (credentials, answer[:60]))
                self.assertEqual(
                    _header(answer, b"www-authenticate"), [b'Basic realm="Private area"']
                )
            for credentials in (b"alice:s3cret", b"bob:pw", b"carol:pw2"):
                answer = yield self.request(b"/private/echo", credentials, method)
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), (credentials, answer[:60]))
            answer = yield self.request(b"/echo", None, method)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])


class ClientCertificateTests(TestCase):
    """SSLVerifyClient require: no certificate, no connection; a good one reaches AJP members."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        from pathlib import Path

        from twisted_lb.tls import make_self_signed

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        make_self_signed(directory / "cert.pem", directory / "key.pem")
        # A self-signed client certificate is its own CA.
        make_self_signed(directory / "client.pem", directory / "client-key.pem", "client")
        self.directory = directory
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                SSLEngine on
                SSLCertificateFile {directory}/cert.pem
                SSLCertificateKeyFile {directory}/key.pem
                SSLVerifyClient require
                SSLCACertificateFile {directory}/client.pem
                ProxyPass / {self.node.url}/
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def get(self, with_certificate: bool) -> defer.Deferred[bytes | str]:
        from OpenSSL import SSL

        def run() -> bytes | str:
            context = SSL.Context(SSL.TLS_CLIENT_METHOD)
            if with_certificate:
                context.use_certificate_file(str(self.directory / "client.pem"))
                context.use_privatekey_file(str(self.directory / "client-key.pem"))
            import struct

            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.setblocking(True)  # pyOpenSSL blocks on a blocking socket; SO_RCVTIMEO bounds it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
            conn = SSL.Connection(context, sock)
            conn.set_connect_state()
            data = b""
            try:
                conn.do_handshake()
                conn.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (SSL.ZeroReturnError, SSL.SysCallError):
                pass  # the end of the answer (with or without close_notify)
            except (SSL.Error, OSError) as e:
                return f"refused: {e!r}"
            finally:
                sock.close()
            return data if data else "refused: no answer"

        return deferToThread(run)

    @defer.inlineCallbacks
    def test_client_certificate(self):
        """Without a certificate the TLS connection fails; with one, Tomcat's attribute gets it."""
        answer = yield self.get(with_certificate=False)
        self.assertIsInstance(answer, str)
        answer = yield self.get(with_certificate=True)
        self.assertIsInstance(answer, bytes, answer)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
        import json

        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        pem = (self.directory / "client.pem").read_text()
        self.assertEqual(json.loads(body)["ssl_cert"].strip(), pem.strip())


class HTTP2Tests(TestCase):
    """Header edits and access rules on the HTTP/2 lane (twisted.web's H2Connection)."""

    timeout = 30

    @defer.inlineCallbacks
    def test_header_edits_and_access_over_h2(self):
        from pathlib import Path

        from twisted.trial.unittest import SkipTest

        from twisted_lb.tls import h2_available, make_self_signed

        from .test_https_frontend import h2_get

        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        make_self_signed(directory / "cert.pem", directory / "key.pem")
        node = Node("node1")
        self.addCleanup(node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                Protocols h2 http/1.1
                SSLEngine on
                SSLCertificateFile {directory}/cert.pem
                SSLCertificateKeyFile {directory}/key.pem
                Header always set Strict-Transport-Security "max-age=63072000"
                Header set X-Scheme "%{{REQUEST_SCHEME}}e"
                <Proxy balancer://app>
                    BalancerMember {node.url} route=node1
                </Proxy>
                ProxyPass / balancer://app/
                <Location /admin>
                    Require ip 10.0.0.0/8
                </Location>
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [port] = yield defer.Deferred.fromCoroutine(site.start())
        negotiated, headers, _ = yield deferToThread(h2_get, port, "/echo")
        self.assertEqual(negotiated, b"h2")
        self.assertEqual(headers[b":status"], b"200")
        self.assertEqual(headers[b"strict-transport-security"], b"max-age=63072000")
        self.assertEqual(headers[b"x-scheme"], b"https")
        _, headers, _ = yield deferToThread(h2_get, port, "/admin/x")
        self.assertEqual(headers[b":status"], b"403")
        self.assertEqual(headers[b"strict-transport-security"], b"max-age=63072000")


class EncodedSlashTests(TestCase):
    """
    AllowEncodedSlashes NoDecode with ProxyPass … nocanon (Jenkins' setup):
    that route passes %2F to the member as written; every other route still
    refuses it, and a dot segment hidden behind an encoded slash never
    reaches a member.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            AllowEncodedSlashes NoDecode
            ProxyPass /jenkins {self.node.url}/jenkins nocanon
            ProxyPass /other {self.node.url}/other
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def get(self, path: bytes) -> defer.Deferred[bytes]:
        return raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)

    @defer.inlineCallbacks
    def test_passed_as_written_on_the_nocanon_route(self):
        answer = yield self.get(b"/jenkins/job/a%2Fb/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
        import json

        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        self.assertEqual(json.loads(body)["uri"], "/jenkins/job/a%2Fb/echo")

    @defer.inlineCallbacks
    def test_refused_elsewhere(self):
        for path in (
            b"/other/a%2Fb/echo",
            b"/nowhere/a%2Fb",
            b"/jenkins/a%2F..%2Fb/echo",
            b"/jenkins/a%2F%2E%2E/echo",
            b"/jenkins/a%5Cb/echo",
            b"/jenkins/../echo",
        ):
            answer = yield self.get(path)
            self.assertTrue(answer.startswith(b"HTTP/1.1 400"), (path, answer[:80]))


class ProtocolsTests(TestCase):
    """
    Apache speaks HTTP/2 on a TLS virtual host only when its Protocols lists
    h2: a client offering h2 and http/1.1 gets what Apache would give it.
    """

    timeout = 30

    @defer.inlineCallbacks
    def negotiated(self, protocols: str) -> defer.Generator[defer.Deferred[object], object, object]:
        from pathlib import Path

        from twisted.trial.unittest import SkipTest

        from twisted_lb.tls import h2_available, make_self_signed

        from .support import tls_client

        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
        make_self_signed(directory / "cert.pem", directory / "key.pem")
        node = Node("node1")
        self.addCleanup(node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <VirtualHost 127.0.0.1:0>
                {protocols}
                SSLEngine on
                SSLCertificateFile {directory}/cert.pem
                SSLCertificateKeyFile {directory}/key.pem
                ProxyPass / {node.url}/
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [port] = yield defer.Deferred.fromCoroutine(site.start())
        conn = yield deferToThread(tls_client, port, alpn=[b"h2", b"http/1.1"])
        try:
            return conn.get_alpn_proto_negotiated()
        finally:
            conn.close()

    @defer.inlineCallbacks
    def test_h2_listed(self):
        self.assertEqual((yield self.negotiated("Protocols h2 http/1.1")), b"h2")

    @defer.inlineCallbacks
    def test_h2_not_listed(self):
        self.assertEqual((yield self.negotiated("Protocols http/1.1")), b"http/1.1")
        self.assertEqual((yield self.negotiated("")), b"http/1.1")


class UnroutedHeaderTests(TestCase):
    """
    Header always of the main server and of a virtual host reaches the
    proxy's own answers where no route applies (404 for a path without
    route or with ProxyPass … !, a Redirect), per virtual host; plain
    Header set does not.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            Header always set Strict-Transport-Security "max-age=63072000"
            <VirtualHost 127.0.0.1:0>
                ServerName a.example
                Header always set X-Host a
                Header set X-Plain yes
                Redirect /old /app/new
                ProxyPass /app/private !
                ProxyPass /app {self.node.url}/app
            </VirtualHost>
            <VirtualHost 127.0.0.1:0>
                ServerName b.example
                Header always set X-Host b
                ProxyPass /app {self.node.url}/app
            </VirtualHost>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def get(self, path: bytes, host: bytes) -> defer.Deferred[bytes]:
        return raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host))

    @defer.inlineCallbacks
    def test_404_and_redirect_per_host(self):
        for path, host, status, x_host in (
            (b"/nowhere", b"a.example", b"404", b"a"),
            (b"/app/private/x", b"a.example", b"404", b"a"),
            (b"/old", b"a.example", b"302", b"a"),
            (b"/nowhere", b"b.example", b"404", b"b"),
            (b"/nowhere", b"other.example", b"404", b"a"),  # the first host is the default
        ):
            answer = yield self.get(path, host)
            self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), (path, host, answer[:80]))
            self.assertEqual(_header(answer, b"x-host"), [x_host], (path, host))
            self.assertEqual(
                _header(answer, b"strict-transport-security"), [b"max-age=63072000"], path
            )
            self.assertEqual(_header(answer, b"x-plain"), [], path)
        # The member's answers get them once, as before.
        answer = yield self.get(b"/app/echo", b"a.example")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
        self.assertEqual(_header(answer, b"x-host"), [b"a"])
        self.assertEqual(_header(answer, b"x-plain"), [b"yes"])


class LocationMatchTests(TestCase):
    """
    <LocationMatch> with an expression that names a path prefix: Require
    inside it guards that prefix (at a segment boundary, as the expression
    does); ProxyPass inside it is ProxyPassMatch with the section's
    expression (the whole path appended to the URL), with the section's
    Header lines.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            <Proxy balancer://app>
                BalancerMember {self.node.url} route=node1
            </Proxy>
            ProxyPass /app balancer://app/app
            <LocationMatch "^/app/admin(/|$)">
                Require ip 10.0.0.0/8
            </LocationMatch>
            <LocationMatch "^/api/">
                ProxyPass balancer://app
                Header always set X-Api yes
            </LocationMatch>
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    def get(self, path: bytes) -> defer.Deferred[bytes]:
        return raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)

    @defer.inlineCallbacks
    def test_require_inside(self):
        for path, status in (
            (b"/app/admin/echo", b"403"),
            (b"/app/admin", b"403"),
            (b"/app/administrator/echo", b"200"),
            (b"/app/echo", b"200"),
        ):
            answer = yield self.get(path)
            self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), (path, answer[:80]))

    @defer.inlineCallbacks
    def test_proxy_pass_inside(self):
        import json

        answer = yield self.get(b"/api/v1/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
        self.assertEqual(_header(answer, b"x-api"), [b"yes"])
        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        self.assertEqual(json.loads(body)["uri"], "/api/v1/echo")
        # The whole path, escaped again as the client sent it.
        answer = yield self.get(b"/api/a%20b/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:300])
        body = answer.split(b"\r\n\r\n", 1)[1]
        if body[:1] != b"{":
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        self.assertEqual(json.loads(body)["uri"], "/api/a%20b/echo")
        answer = yield self.get(b"/apiary/echo")
        self.assertTrue(answer.startswith(b"HTTP/1.1 404"), answer[:80])


class ProxyPassMatchOrderTests(TestCase):
    """ProxyPass and ProxyPassMatch are checked in file order, as Apache does."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        for node in self.nodes:
            self.addCleanup(node.stop)
        one, two = (node.url for node in self.nodes)
        site = ApacheSite(
            self,
            f"""
            Listen 127.0.0.1:0
            ProxyPassMatch ^/api/(.*)$ {two}/api/$1
            ProxyPass /api {one}/api
            ProxyPass /legacy {one}/legacy
            ProxyPass /legacy-off !
            ProxyPassMatch ^/(.*)/echo$ {two}/$1/echo
            """,
        )
        self.addCleanup(site.service.stopService)
        [self.port] = yield defer.Deferred.fromCoroutine(site.start())

    @defer.inlineCallbacks
    def test_file_order(self):
        for path, expected in (
            (b"/api/echo", "node2"),  # the Match comes first
            (b"/legacy/echo", "node1"),  # the ProxyPass comes first
            (b"/legacy-off/echo", None),  # so does the exclusion
            (b"/other/echo", "node2"),
        ):
            answer = yield raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            if expected is None:
                self.assertTrue(answer.startswith(b"HTTP/1.1 404"), (path, answer[:80]))
            else:
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), (path, answer[:80]))
                self.assertEqual(_node_of(answer), expected, path)
