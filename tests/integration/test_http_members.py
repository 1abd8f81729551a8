"""
The proxy on real loopback sockets in front of HTTP and HTTPS members
(plain C{twisted.web} servers standing in for Tomcat's HTTP connector).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.test.requesthelper import DummyRequest

from twisted_lb.config.model import (
    BackendTLSConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.errors import RequestRefused
from twisted_lb.exchange import Exchange
from twisted_lb.resource import RequestSink
from twisted_lb.service import ProxyService
from twisted_lb.testing import Fault, FaultyAJPMember
from twisted_lb.tls import make_self_signed, server_context

from .support import Client, Node


def _json(body: bytes) -> dict:
    return json.loads(body.decode("utf-8"))


def _pattern(size: int) -> bytes:
    block = bytes(i % 251 for i in range(251 * 256))
    return (block * (size // len(block) + 1))[:size]


class MemberApp(Resource):
    """A small application like the test webapp, under an optional context path."""

    isLeaf = True

    def __init__(self, name: str, context: str = "") -> None:
        super().__init__()
        self.name = name
        self.context = context.encode()
        self.port = 0
        self.scheme = b"http"
        self.sessions: dict[str, int] = {}
        self.stalled: list[Any] = []
        self.uris: list[bytes] = []
        self._ids = itertools.count(1)

    def render(self, request):
        self.uris.append(request.uri)
        path = request.path
        if self.context and path.startswith(self.context):
            path = path[len(self.context) :]
        handler = getattr(self, "do_" + path.strip(b"/").decode().replace("/", "_"), None)
        if handler is None:
            request.setResponseCode(404)
            return b"no such page\n"
        return handler(request)

    def do_echo(self, request):
        body = request.content.read()
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "node": self.name,
                "method": request.method.decode(),
                "uri": request.uri.decode(),
                "headers": [
                    [n.decode().lower(), v.decode()]
                    for n, vs in request.requestHeaders.getAllRawHeaders()
                    for v in vs
                ],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
        ).encode()

    def do_big(self, request):
        size = int(request.args[b"bytes"][0])
        request.setHeader(b"content-length", b"%d" % size)
        request.setHeader(b"content-type", b"application/octet-stream")
        return _pattern(size)

    def do_session(self, request):
        cookie = request.getCookie(b"JSESSIONID")
        sid = cookie.decode() if cookie else ""
        if sid not in self.sessions:
            sid = f"{next(self._ids):08d}.{self.name}"
            self.sessions[sid] = 0
            path = self.context or b"/"
            request.responseHeaders.addRawHeader(
                b"set-cookie", b"JSESSIONID=%s; Path=%s; HttpOnly" % (sid.encode(), path)
            )
        self.sessions[sid] += 1
        return json.dumps(
            {"node": self.name, "session": sid, "counter": self.sessions[sid]}
        ).encode()

    def do_redirect(self, request):
        request.setResponseCode(302)
        request.setHeader(
            b"location", b"%s://127.0.0.1:%d%s/x" % (self.scheme, self.port, self.context)
        )
        return b""

    def do_cookie(self, request):
        request.responseHeaders.addRawHeader(
            b"set-cookie", b"pref=1; Path=%s/sub; Domain=127.0.0.1; HttpOnly" % self.context
        )
        return b"ok"

    def do_stall(self, request):
        self.stalled.append(request)
        return NOT_DONE_YET

    def do_close(self, request):
        request.channel.transport.loseConnection()
        return NOT_DONE_YET

    def do_reset(self, request):
        request.setHeader(b"content-length", b"1000000")
        request.write(b"x" * 100_000)
        transport = request.channel.transport
        reactor.callLater(0.05, transport.abortConnection)
        return NOT_DONE_YET


class Member:
    """A twisted.web server on 127.0.0.1 (optionally HTTPS) that can stop and start."""

    def __init__(
        self, name: str, context: str = "", tls: TLSConfig | None = None, port: int = 0
    ) -> None:
        self.name = name
        self.app = MemberApp(name, context)
        self.site = Site(self.app)
        self.site.noisy = False
        self.tls = tls
        self.connections: list[Any] = []
        original = self.site.buildProtocol

        def build(addr: object) -> Any:
            proto = original(addr)
            self.connections.append(proto)
            return proto

        self.site.buildProtocol = build  # type: ignore[method-assign]
        self.port = port
        self.start()
        self.app.port = self.port
        self.app.scheme = b"https" if tls else b"http"

    def start(self) -> None:
        if self.tls is not None:
            self.listening = reactor.listenSSL(
                self.port, self.site, server_context(self.tls), interface="127.0.0.1"
            )
        else:
            self.listening = reactor.listenTCP(self.port, self.site, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def url(self) -> str:
        return (
            f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{self.app.context.decode()}"
        )

    def stop(self) -> defer.Deferred[None]:
        for proto in self.connections:
            channel = getattr(proto, "_channel", proto)  # twisted.web wraps its HTTPChannel
            transport = getattr(channel, "transport", None)
            # Below TLS, abort the TCP connection itself.
            tcp = getattr(transport, "transport", None) or transport
            if tcp is not None and tcp.connected:
                tcp.abortConnection()
        self.connections.clear()
        return defer.maybeDeferred(self.listening.stopListening)


async def start_proxy(
    members: list[MemberConfig],
    routes: tuple[RouteConfig, ...] = (RouteConfig("/", "cluster"),),
    **balancer_options: Any,
) -> tuple[ProxyService, str]:
    balancer_options.setdefault("probe_interval", 0.2)
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1"),),
        balancers=(BalancerConfig("cluster", tuple(members), **balancer_options),),
        routes=routes,
    )
    service = ProxyService(config, reactor)
    service.startService()
    port = await service.listening[0]._waitingForPort
    return service, f"http://127.0.0.1:{port.getHost().port}"


class _Base(TestCase):
    timeout = 20

    def setUp(self):
        self.client = Client()
        self.members: list[Member] = []
        self.proxies: list[ProxyService] = []
        self.logged: list[str] = []
        observer = lambda event: self.logged.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.client.close()
        for proxy in self.proxies:
            yield proxy.stopService()
        for member in self.members:
            for request in member.app.stalled:
                if not request.finished and request.channel is not None:
                    request.channel.transport.abortConnection()
            member.app.stalled.clear()
            yield member.stop()

    def member(self, name: str, **kw: Any) -> Member:
        member = Member(name, **kw)
        self.members.append(member)
        return member

    @defer.inlineCallbacks
    def proxy(self, members, **kw):
        service, base = yield defer.Deferred.fromCoroutine(start_proxy(members, **kw))
        self.proxies.append(service)
        return base

    def get(self, url, **kw):
        return defer.Deferred.fromCoroutine(self.client.request(url, **kw))


class HTTPMemberTests(_Base):
    """Two plain HTTP members behind one balancer on C{/}."""

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        self.nodes = [self.member("node1"), self.member("node2")]
        self.base = yield self.proxy(
            [MemberConfig(url=n.url, route=n.name, timeout=5.0) for n in self.nodes]
        )

    @defer.inlineCallbacks
    def test_query_host_and_forwarded_headers(self):
        """The member sees path and query as sent, its own Host, and X-Forwarded-*."""
        status, _, body = yield self.get(
            self.base + "/echo?a=1&b=%C3%A9",
            headers={
                b"X-Forwarded-For": [b"10.0.0.1"],
                b"X-Test": [b"one", b"two"],
                b"X-Forwarded-Proto": [b"https"],
            },
        )
        self.assertEqual(status, 200)
        echo = _json(body)
        self.assertEqual(echo["uri"], "/echo?a=1&b=%C3%A9")
        headers = echo["headers"]
        node = next(n for n in self.nodes if n.name == echo["node"])
        self.assertIn(["host", f"127.0.0.1:{node.port}"], headers)
        self.assertIn(["x-forwarded-for", "10.0.0.1, 127.0.0.1"], headers)
        self.assertIn(["x-forwarded-proto", "http"], headers)
        self.assertIn(["x-forwarded-host", self.base.split("//")[1]], headers)
        self.assertIn(["x-test", "one"], headers)
        self.assertIn(["x-test", "two"], headers)
        names = [n for n, _ in headers]
        self.assertEqual(names.count("host"), 1)
        self.assertEqual(names.count("x-forwarded-proto"), 1)
        self.assertNotIn("expect", names)

    @defer.inlineCallbacks
    def test_request_bodies_byte_exact(self):
        """POST bodies of 0, 1 byte and 1 MiB reach the member byte for byte."""
        for size in (0, 1, 1024 * 1024):
            data = _pattern(size)
            status, _, body = yield self.get(self.base + "/echo", method=b"POST", body=data)
            self.assertEqual(status, 200)
            echo = _json(body)
            self.assertEqual(
                (echo["method"], echo["body_length"], echo["body_sha256"]),
                ("POST", size, hashlib.sha256(data).hexdigest()),
            )
            self.assertIn(["content-length", str(size)], echo["headers"])

    @defer.inlineCallbacks
    def test_large_response_streams_with_content_length(self):
        """A 5 MB response arrives whole, with the member's Content-Length kept."""
        size = 5 * 1024 * 1024
        status, headers, body = yield self.get(self.base + f"/big?bytes={size}")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders(b"content-length"), [b"%d" % size])
        self.assertIsNone(headers.getRawHeaders(b"transfer-encoding"))
        self.assertEqual(body, _pattern(size))

    @defer.inlineCallbacks
    def test_round_robin(self):
        """Requests without a session alternate between the members."""
        seen = []
        for _ in range(6):
            _, _, body = yield self.get(self.base + "/echo")
            seen.append(_json(body)["node"])
        self.assertEqual(seen, ["node1", "node2"] * 3)

    @defer.inlineCallbacks
    def test_sticky_session_cookie(self):
        """A JSESSIONID with a route suffix keeps the session on its member."""
        _, headers, body = yield self.get(self.base + "/session")
        first = _json(body)
        cookie = headers.getRawHeaders(b"set-cookie")[0].split(b";")[0]
        self.assertTrue(cookie.endswith(b"." + first["node"].encode()))
        for i in range(2, 8):
            _, _, body = yield self.get(self.base + "/session", headers={b"Cookie": [cookie]})
            self.assertEqual(_json(body), {**first, "counter": i})

    @defer.inlineCallbacks
    def test_connections_are_reused(self):
        """Sequential requests share one pooled connection per member."""
        for _ in range(10):
            yield self.get(self.base + "/echo")
        self.assertEqual([len(n.connections) for n in self.nodes], [1, 1])

    @defer.inlineCallbacks
    def test_failover_and_readmission(self):
        """A closed member port costs no request; the prober readmits the member."""
        _, headers, body = yield self.get(self.base + "/session")
        session = _json(body)
        cookie = headers.getRawHeaders(b"set-cookie")[0].split(b";")[0]
        down = next(n for n in self.nodes if n.name == session["node"])
        yield down.stop()
        for _ in range(4):
            status, _, body = yield self.get(self.base + "/session", headers={b"Cookie": [cookie]})
            self.assertEqual(status, 200)
            self.assertNotEqual(_json(body)["node"], down.name)
        balancer = self.proxies[0].balancers["cluster"].balancer
        member = balancer.member_by_route(down.name)
        self.assertTrue(member.in_error)
        down.start()
        for _ in range(50):
            if not member.in_error:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(member.in_error)
        _, _, body = yield self.get(self.base + "/session", headers={b"Cookie": [cookie]})
        self.assertEqual(_json(body), {**session, "counter": 2})

    @defer.inlineCallbacks
    def test_all_down_is_503(self):
        """With every member's port closed the client gets a 503."""
        for node in self.nodes:
            yield node.stop()
        status, _, _ = yield self.get(self.base + "/echo")
        self.assertEqual(status, 503)

    @defer.inlineCallbacks
    def test_redirect_location_rewritten(self):
        """A Location naming the member becomes the proxy's public URL."""
        status, headers, _ = yield self.get(self.base + "/redirect")
        self.assertEqual(status, 302)
        self.assertEqual(headers.getRawHeaders(b"location"), [self.base.encode() + b"/x"])


    @defer.inlineCallbacks
    def test_unwritable_request_is_400_without_the_member_url(self):
        """
        A request Twisted's client refuses to write (here a DEL in the query,
        which the resource now refuses before) is a 400 whose text does not
        show the member's URL; the detail is logged.
        """
        backend = next(iter(self.proxies[0].balancers["cluster"].backends.values()))
        exchange = Exchange(
            method=b"GET", path=b"/echo", query=b"x=\x7f", headers=[], host=b"x",
            client_address="127.0.0.1", client_port=1, local_address="127.0.0.1", local_port=2,
            is_ssl=False,
        )
        sink = RequestSink(DummyRequest([b"echo"]))
        error = yield self.assertFailure(
            defer.Deferred.fromCoroutine(backend.send(exchange, sink)), RequestRefused
        )
        self.assertEqual(error.status, 400)
        self.assertIn("request cannot be forwarded", str(error))
        self.assertNotIn("127.0.0.1", str(error))
        self.assertTrue(
            any("cannot be forwarded" in line and "127.0.0.1" in line for line in self.logged),
            self.logged,
        )


class PrefixTests(_Base):
    """A public prefix (/app) that differs from the member's path (/internal)."""

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        self.node = self.member("node1", context="/internal")
        self.base = yield self.proxy(
            [MemberConfig(url=self.node.url, route="node1")],
            routes=(RouteConfig("/app", "cluster"),),
        )

    @defer.inlineCallbacks
    def test_path_mapping(self):
        """/app/echo reaches /internal/echo on the member."""
        _, _, body = yield self.get(self.base + "/app/echo?x=1")
        self.assertEqual(_json(body)["uri"], "/internal/echo?x=1")

    @defer.inlineCallbacks
    def test_location_rewritten(self):
        status, headers, _ = yield self.get(self.base + "/app/redirect")
        self.assertEqual(status, 302)
        self.assertEqual(headers.getRawHeaders(b"location"), [self.base.encode() + b"/app/x"])

    @defer.inlineCallbacks
    def test_set_cookie_path_and_domain_rewritten(self):
        _, headers, _ = yield self.get(self.base + "/app/cookie")
        self.assertEqual(headers.getRawHeaders(b"set-cookie"), [b"pref=1; Path=/app/sub; HttpOnly"])
        _, headers, _ = yield self.get(self.base + "/app/session")
        cookie = headers.getRawHeaders(b"set-cookie")[0]
        self.assertTrue(cookie.endswith(b".node1; Path=/app; HttpOnly"), cookie)


class PathParameterTests(_Base):
    """A path parameter right after the route's prefix (/h;x=1), member URL without a path."""

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        self.node = self.member("node1")
        self.base = yield self.proxy(
            [MemberConfig(url=self.node.url, route="node1")],
            routes=(RouteConfig("/h", "cluster"),),
        )

    @defer.inlineCallbacks
    def test_parameter_reaches_the_member_path_on_one_connection(self):
        """/h;x=N/a reaches the member as /;x=N/a; 20 of them share one member connection."""
        for i in range(20):
            status, _, _ = yield self.get(self.base + f"/h;x={i}/a?q={i}")
            self.assertEqual(status, 404)  # the member's own answer: it has no such page
        self.assertEqual(len(self.node.connections), 1)
        self.assertEqual(self.node.app.uris, [b"/;x=%d/a?q=%d" % (i, i) for i in range(20)])


class CookieRuleTests(_Base):
    """
    A route's cookie_path / cookie_domain (Apache's ProxyPassReverseCookiePath and
    ProxyPassReverseCookieDomain) for HTTP and AJP members alike.
    """

    @defer.inlineCallbacks
    def test_http_member_cookie_rules(self):
        node = self.member("node1", context="/internal")
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="node1")],
            routes=(
                RouteConfig(
                    "/app",
                    "cluster",
                    cookie_path=(("/internal/sub", "/settings"),),
                    cookie_domain=(("127.0.0.1", "www.example.com"),),
                ),
            ),
        )
        # The rules decide for the attributes they match ...
        _, headers, _ = yield self.get(base + "/app/cookie")
        self.assertEqual(
            headers.getRawHeaders(b"set-cookie"),
            [b"pref=1; Path=/settings; Domain=www.example.com; HttpOnly"],
        )
        # ... the route's own mapping (/internal -> /app) for the others.
        _, headers, _ = yield self.get(base + "/app/session")
        cookie = headers.getRawHeaders(b"set-cookie")[0]
        self.assertTrue(cookie.endswith(b".node1; Path=/app; HttpOnly"), cookie)

    @defer.inlineCallbacks
    def test_ajp_member_cookie_path_rule(self):
        node = Node("node1")
        self.addCleanup(node.stop)
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="node1")],
            routes=(RouteConfig("/", "cluster", cookie_path=(("/", "/portal"),)),),
        )
        _, headers, _ = yield self.get(base + "/session")
        cookie = headers.getRawHeaders(b"set-cookie")[0]
        self.assertRegex(cookie, rb"^JSESSIONID=[0-9A-F]+\.node1; Path=/portal; HttpOnly$")

    @defer.inlineCallbacks
    def test_ajp_member_path_mapped_from_the_route(self):
        """Without rules, an AJP member's cookie path follows the route as an HTTP member's does."""
        node = Node("node1")
        self.addCleanup(node.stop)
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="node1")], routes=(RouteConfig("/shop", "cluster"),)
        )
        _, headers, body = yield self.get(base + "/shop/session")
        self.assertEqual(_json(body)["node"], "node1")
        cookie = headers.getRawHeaders(b"set-cookie")[0]
        self.assertTrue(cookie.endswith(b".node1; Path=/shop/; HttpOnly"), cookie)


class RouteTimeoutTests(_Base):
    """A route's timeout replaces the member's for requests under it."""

    @defer.inlineCallbacks
    def test_route_timeout_is_used(self):
        node = self.member("node1")
        base = yield self.proxy(
            [MemberConfig(url=node.url, route="node1", timeout=30.0)],
            routes=(RouteConfig("/", "cluster"), RouteConfig("/stall", "cluster", target_path="/stall", timeout=0.3)),
        )
        started = reactor.seconds()
        status, _, _ = yield self.get(base + "/stall")
        self.assertEqual(status, 504)
        self.assertLess(reactor.seconds() - started, 5)

    @defer.inlineCallbacks
    def test_ajp_route_timeout_is_used(self):
        member = FaultyAJPMember(Fault.STALL_BEFORE_HEADERS).start()
        self.addCleanup(member.stop)
        base = yield self.proxy(
            [MemberConfig(url=member.url, route="node1", timeout=30.0)],
            routes=(RouteConfig("/", "cluster", timeout=0.3),),
        )
        started = reactor.seconds()
        status, _, _ = yield self.get(base + "/slow")
        self.assertEqual(status, 504)
        self.assertLess(reactor.seconds() - started, 5)


class FailureTests(_Base):
    """Members that stall or reset."""

    @defer.inlineCallbacks
    def test_stall_is_504(self):
        """A member silent for longer than its timeout gives a 504."""
        node = self.member("node1")
        base = yield self.proxy([MemberConfig(url=node.url, route="node1", timeout=0.3)])
        status, _, _ = yield self.get(base + "/stall")
        self.assertEqual(status, 504)
        self.assertEqual(len(node.app.stalled), 1)

    @defer.inlineCallbacks
    def test_stall_mid_response_is_a_cut_connection(self):
        """A member that stops sending mid-body: the client's connection is cut."""
        node = self.member("node1")
        base = yield self.proxy([MemberConfig(url=node.url, route="node1", timeout=0.3)])

        def slow(request):
            request.setHeader(b"content-length", b"100")
            request.write(b"x" * 10)
            node.app.stalled.append(request)
            return NOT_DONE_YET

        node.app.do_slow = slow
        yield self.assertFailure(self.get(base + "/slow"), Exception)

    @defer.inlineCallbacks
    def test_reset_mid_body_cuts_the_client(self):
        """A member resetting mid-body never yields a silently short response."""
        node = self.member("node1")
        base = yield self.proxy([MemberConfig(url=node.url, route="node1")])
        failure = yield self.assertFailure(self.get(base + "/reset"), Exception)
        self.assertNotIsInstance(failure, AssertionError)
        self.assertTrue(any("mid-response" in line for line in self.logged), self.logged[-5:])


class _Stubborn(Protocol):
    """A client that asks for a big body and then reads nothing."""

    def __init__(self, path: bytes) -> None:
        self.path = path

    def connectionMade(self) -> None:
        self.transport.write(b"GET " + self.path + b" HTTP/1.1\r\nHost: lb\r\n\r\n")
        self.transport.pauseProducing()


def _unsent(transport: Any) -> int:
    """Bytes a Twisted TCP transport still holds in its own write buffer."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class FlowTests(_Base):
    """Backpressure, client disconnects and members that close without answering."""

    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        self.node = self.member("node1")
        self.base = yield self.proxy([MemberConfig(url=self.node.url, route="node1")])

    @defer.inlineCallbacks
    def test_slow_client_pauses_member_and_leaving_aborts_it(self):
        size = 40 * 1024 * 1024
        port = int(self.base.rsplit(":", 1)[1])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        client = yield endpoint.connect(
            Factory.forProtocol(lambda: _Stubborn(b"/big?bytes=%d" % size))
        )
        yield task.deferLater(reactor, 0.5, lambda: None)
        channel = self.node.connections[0]._channel
        # The proxy stopped reading from the member: most of the body is still
        # waiting in the member, not in the proxy's memory.
        self.assertGreater(_unsent(channel.transport), size // 2)
        client.transport.abortConnection()
        for _ in range(40):
            if not channel.transport.connected:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(channel.transport.connected)

    @defer.inlineCallbacks
    def test_member_closes_without_answering_is_502(self):
        status, _, _ = yield self.get(self.base + "/close")
        self.assertEqual(status, 502)
        balancer = self.proxies[0].balancers["cluster"].balancer
        self.assertTrue(balancer.member_by_route("node1").in_error)
        self.assertTrue(any("without answering" in line for line in self.logged))


class HTTPSMemberTests(_Base):
    """An HTTPS member with a self-signed certificate."""

    def setUp(self):
        super().setUp()
        directory = Path(self.mktemp())
        directory.mkdir()
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        self.cert = str(cert)
        self.node = self.member("secure", tls=TLSConfig(str(cert), str(key)))

    @defer.inlineCallbacks
    def test_verify_self_signed_is_502_with_a_clear_message(self):
        """An untrusted self-signed member is refused: a 502 and a log line that says what to do."""
        base = yield self.proxy([MemberConfig(url=self.node.url, route="secure")])
        status, _, _ = yield self.get(base + "/echo")
        self.assertEqual(status, 502)
        messages = [line for line in self.logged if "self-signed certificate" in line]
        self.assertTrue(messages, self.logged[-5:])
        self.assertIn("tls.verify = false", messages[0])
        self.assertIn(f"https://127.0.0.1:{self.node.port}", messages[0])
        self.assertEqual(len(self.node.connections), 1)  # no request went through

    @defer.inlineCallbacks
    def test_verify_off_is_200(self):
        base = yield self.proxy(
            [MemberConfig(url=self.node.url, route="secure", tls=BackendTLSConfig(verify=False))]
        )
        status, _, body = yield self.get(base + "/echo")
        self.assertEqual(status, 200)
        self.assertEqual(_json(body)["node"], "secure")
        status, headers, _ = yield self.get(base + "/redirect")
        self.assertEqual(headers.getRawHeaders(b"location"), [base.encode() + b"/x"])

    @defer.inlineCallbacks
    def test_verify_with_ca_file_is_200(self):
        """Trusting the certificate through ca_file: chain and IP address check pass."""
        base = yield self.proxy(
            [
                MemberConfig(
                    url=self.node.url, route="secure", tls=BackendTLSConfig(ca_file=self.cert)
                )
            ]
        )
        status, _, _ = yield self.get(base + "/echo")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_probe_does_a_handshake(self):
        """probe() succeeds only when the handshake (with its checks) does."""
        checked = yield self.proxy(
            [MemberConfig(url=self.node.url, route="secure")], probe_interval=0
        )
        lax = yield self.proxy(
            [MemberConfig(url=self.node.url, route="secure", tls=BackendTLSConfig(verify=False))],
            probe_interval=0,
        )
        del checked, lax
        results = []
        for proxy in self.proxies:
            backend = next(iter(proxy.balancers["cluster"].backends.values()))
            results.append((yield defer.Deferred.fromCoroutine(backend.probe())))
        self.assertEqual(results, [False, True])
