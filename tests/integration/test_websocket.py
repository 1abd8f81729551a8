"""
The WebSocket bridge on real loopback sockets: two Autobahn echo nodes
behind a balancer of ws:// members, an AJP node behind the page balancer, as
in the first seed, and Autobahn clients.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Any

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import (
    BackendTLSConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.service import ProxyService

from .support import Node

WS_PATH = "/xtam/websocket-tunnel"


class EchoNode(WebSocketServerProtocol):
    """Greets with its node name, then echoes; a few text commands."""

    def onConnect(self, request: Any) -> str | None:
        self.factory.node.requests.append(request)
        if request.path.endswith("/forbidden"):
            raise ConnectionDeny(403, "Forbidden")
        return "chat" if "chat" in request.protocols else None

    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        # A plain GET (no upgrade): a page naming the node.
        self.factory.node.pages.append(self.http_request_uri)
        self.sendHtml(f"page from {self.factory.node.name}")

    def onOpen(self) -> None:
        self.factory.node.open.append(self)
        self.sendMessage(f"hello from {self.factory.node.name}".encode())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary and payload == b"close-4001":
            self.sendClose(4001, "bye")
        elif not isBinary and payload.startswith(b"flood:"):
            count, size = map(int, payload[6:].split(b":"))
            for _ in range(count):
                self.sendMessage(b"f" * size, isBinary=True)
        elif not isBinary and payload.startswith(b"big:"):
            self.sendMessage(b"x" * int(payload[4:]), isBinary=True)
        else:
            self.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.node.closes.append((code, reason))
        if self in self.factory.node.open:
            self.factory.node.open.remove(self)


class WSNode:
    """An Autobahn echo server on 127.0.0.1 (optionally over TLS)."""

    def __init__(self, name: str, tls: Any = None) -> None:
        self.name = name
        self.requests: list[Any] = []
        #: The paths of plain (non-upgrade) requests it answered.
        self.pages: list[str] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.open: list[EchoNode] = []
        self.factory = WebSocketServerFactory(reactor=reactor)
        self.factory.protocol = EchoNode
        self.factory.node = self
        self.factory.setProtocolOptions(openHandshakeTimeout=5)
        self.tls = tls
        self.port = 0
        self.start()

    def start(self) -> None:
        if self.tls is None:
            self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")
        else:
            self.listening = reactor.listenSSL(self.port, self.factory, self.tls, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

    def stop(self) -> defer.Deferred[None]:
        for proto in list(self.open):
            proto.transport.abortConnection()
        self.open.clear()
        return defer.maybeDeferred(self.listening.stopListening)


class EchoClient(WebSocketClientProtocol):
    """Collects what it receives."""

    def onConnect(self, response: Any) -> None:
        self.subprotocol = response.protocol

    def onOpen(self) -> None:
        self.factory.proto = self
        for payload, binary in self.factory.send_on_open:
            self.sendMessage(payload, binary)
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append((payload, isBinary))
        waiting = self.factory.waiting
        while waiting and len(self.factory.messages) >= waiting[0][0]:
            waiting.popleft()[1].callback(None)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(
                HandshakeRefused(getattr(self, "http_status_line", None) or reason)
            )
        self.factory.closed.callback((code, reason))


class HandshakeRefused(Exception):
    pass


class WSClient:
    def __init__(self, url: str, cookie: str | None = None, protocols=None, send_on_open=()):
        headers = {"Cookie": cookie} if cookie else None
        self.factory = WebSocketClientFactory(url, protocols=protocols, headers=headers, reactor=reactor)
        self.factory.protocol = EchoClient
        self.factory.opened = defer.Deferred()
        self.factory.closed = defer.Deferred()
        self.factory.messages = []
        self.factory.waiting = deque()
        self.factory.send_on_open = list(send_on_open)
        host, port = url.split("//")[1].split("/")[0].split(":")
        if url.startswith("wss:"):
            options = ssl.CertificateOptions(verify=False)
            self.connector = reactor.connectSSL(host, int(port), self.factory, options, timeout=5)
        else:
            self.connector = reactor.connectTCP(host, int(port), self.factory, timeout=5)
        self.opened = self.factory.opened
        self.closed = self.factory.closed

    @property
    def proto(self) -> EchoClient:
        return self.factory.proto

    @property
    def messages(self) -> list[tuple[bytes, bool]]:
        return self.factory.messages

    def until(self, count: int) -> defer.Deferred[None]:
        """Fires once C{count} messages arrived."""
        d: defer.Deferred[None] = defer.Deferred()
        if len(self.messages) >= count:
            d.callback(None)
        else:
            self.factory.waiting.append((count, d))
        return d.addTimeout(10, reactor)

    def stop(self) -> None:
        self.connector.disconnect()


async def start_ws_proxy(
    ws_nodes: list[Any],
    ajp_node: Node,
    listener_tls: TLSConfig | None = None,
    member_options: dict[str, Any] | None = None,
    route_options: dict[str, Any] | None = None,
    x_forwarded: bool = True,
    **balancer: Any,
) -> tuple[ProxyService, int]:
    """The first seed's shape: pages by AJP under /, WebSockets by ws(s):// under WS_PATH."""
    members = tuple(
        MemberConfig(url=n.url, route=n.name, tls=BackendTLSConfig(verify=False), **(member_options or {}))
        for n in ws_nodes
    )
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", tls=listener_tls),),
        balancers=(
            BalancerConfig("pages", (MemberConfig(url=ajp_node.url, route="node1"),)),
            BalancerConfig("ws", members, **balancer),
        ),
        routes=(
            RouteConfig("/", "pages"),
            RouteConfig(WS_PATH, "ws", target_path=WS_PATH, **(route_options or {})),
        ),
        x_forwarded=x_forwarded,
        shutdown_timeout=0,  # tunnels left open are closed (1001) when a test ends
    )
    service = ProxyService(config, reactor)
    service.startService()
    port = await service.listening[0]._waitingForPort
    return service, port.getHost().port


class WebSocketTests(TestCase):
    timeout = 30
    balancer_options: dict[str, Any] = {"ws_max_message_size": 64 * 1024}

    @defer.inlineCallbacks
    def setUp(self):
        self.ws_nodes = [WSNode("node1"), WSNode("node2")]
        self.ajp = Node("node1")
        self.proxy, self.port = yield defer.Deferred.fromCoroutine(
            start_ws_proxy(self.ws_nodes, self.ajp, **self.balancer_options)
        )
        self.url = f"ws://127.0.0.1:{self.port}{WS_PATH}"
        self.clients: list[WSClient] = []

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.proxy.stopService()
        for client in self.clients:
            client.stop()
        for node in self.ws_nodes:
            yield node.stop()
        yield self.ajp.stop()
        for client in self.clients:
            if not client.closed.called:
                yield client.closed.addTimeout(5, reactor)
        # Let the last connections finish closing.
        yield deferLater(0.05)

    def client(self, path: str = "", **kw: Any) -> WSClient:
        c = WSClient(self.url + path, **kw)
        self.clients.append(c)
        return c

    @defer.inlineCallbacks
    def open(self, path: str = "", **kw: Any):
        c = self.client(path, **kw)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        return c

    @defer.inlineCallbacks
    def test_relay_in_order(self):
        """100 alternating text and binary messages come back in order, typed; the greeting first."""
        c = yield self.open()
        self.assertEqual(c.messages[0], (b"hello from node1", False))
        sent = []
        for i in range(100):
            binary = i % 2 == 1
            payload = (b"\x00\xff%d" % i) if binary else f"text {i} é".encode()
            sent.append((payload, binary))
            c.proto.sendMessage(payload, binary)
        yield c.until(101)
        self.assertEqual(c.messages[1:], sent)

    @defer.inlineCallbacks
    def test_messages_sent_at_open_are_kept(self):
        """Messages the client sends in onOpen all arrive, after the greeting."""
        early = [(b"one", False), (b"two", True), (b"three", False)]
        c = self.client(send_on_open=early)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(4)
        self.assertEqual(c.messages, [(b"hello from node1", False)] + early)

    @defer.inlineCallbacks
    def test_path_query_and_headers_reach_member(self):
        """The member sees the mapped path, the query, the cookie and X-Forwarded-*."""
        yield self.open("/sub?x=1", cookie="a=b")
        request = self.ws_nodes[0].requests[-1]
        self.assertEqual(request.path, WS_PATH + "/sub")
        self.assertEqual(request.params, {"x": ["1"]})
        self.assertEqual(request.headers["cookie"], "a=b")
        self.assertEqual(request.headers["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(request.headers["x-forwarded-proto"], "http")
        self.assertEqual(request.headers["x-forwarded-host"], f"127.0.0.1:{self.port}")

    @defer.inlineCallbacks
    def test_round_robin_without_session(self):
        """Tunnels without a session alternate between the nodes."""
        seen = []
        for _ in range(4):
            c = yield self.open()
            seen.append(c.messages[0][0])
        self.assertEqual(seen, [b"hello from node1", b"hello from node2"] * 2)
        self.assertEqual(self.proxy.balancers["ws"].balancer.members[0].in_flight, 2)

    @defer.inlineCallbacks
    def test_sticky_session(self):
        """A JSESSIONID naming node2 lands on node2 every time."""
        for _ in range(3):
            c = yield self.open(cookie="JSESSIONID=ABC123.node2")
            self.assertEqual(c.messages[0][0], b"hello from node2")

    @defer.inlineCallbacks
    def test_member_down_fails_over(self):
        """A member refusing connections is put in error; the tunnel goes to the other node."""
        yield self.ws_nodes[0].stop()
        for _ in range(2):
            c = yield self.open(cookie="JSESSIONID=ABC123.node1")
            self.assertEqual(c.messages[0][0], b"hello from node2")
        member = self.proxy.balancers["ws"].balancer.members[0]
        self.assertTrue(member.in_error)

    @defer.inlineCallbacks
    def test_all_down_is_503(self):
        """No member reachable: the upgrade is refused with 503."""
        for node in self.ws_nodes:
            yield node.stop()
        c = self.client()
        failure = yield self.assertFailure(c.opened.addTimeout(10, reactor), HandshakeRefused)
        self.assertIn("503", str(failure))

    @defer.inlineCallbacks
    def test_subprotocol(self):
        """The member's choice among the client's subprotocols reaches the client."""
        c = yield self.open(protocols=["chat"])
        self.assertEqual(c.proto.subprotocol, "chat")
        self.assertEqual(self.ws_nodes[0].requests[-1].protocols, ["chat"])
        c2 = yield self.open(protocols=["other"])
        self.assertIsNone(c2.proto.subprotocol)

    @defer.inlineCallbacks
    def test_member_close_code_reaches_client(self):
        c = yield self.open()
        c.proto.sendMessage(b"close-4001")
        code, reason = yield c.closed.addTimeout(10, reactor)
        self.assertEqual((code, reason), (4001, "bye"))

    @defer.inlineCallbacks
    def test_client_close_code_reaches_member(self):
        c = yield self.open()
        node = self.ws_nodes[0]
        c.proto.sendClose(4001, "bye")
        code, _ = yield c.closed.addTimeout(10, reactor)
        self.assertEqual(code, 4001)
        for _ in range(100):
            if node.closes:
                break
            yield deferLater(0.02)
        self.assertEqual(node.closes, [(4001, "bye")])

    @defer.inlineCallbacks
    def test_member_drop_is_1011(self):
        """A member that vanishes without a close frame: the client gets 1011."""
        c = yield self.open()
        yield self.ws_nodes[0].stop()
        code, _ = yield c.closed.addTimeout(10, reactor)
        self.assertEqual(code, 1011)

    @defer.inlineCallbacks
    def test_too_big_from_client_is_1009(self):
        c = yield self.open()
        c.proto.sendMessage(b"y" * (64 * 1024 + 1), isBinary=True)
        code, _ = yield c.closed.addTimeout(10, reactor)
        self.assertEqual(code, 1009)
        for _ in range(100):
            if self.ws_nodes[0].closes:
                break
            yield deferLater(0.02)
        self.assertEqual(self.ws_nodes[0].closes[0][0], 1009)

    @defer.inlineCallbacks
    def test_too_big_from_member_is_1009(self):
        c = yield self.open()
        c.proto.sendMessage(b"big:%d" % (64 * 1024 + 1))
        code, _ = yield c.closed.addTimeout(10, reactor)
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_tunnel_counts_as_in_flight(self):
        c = yield self.open()
        member = self.proxy.balancers["ws"].balancer.members[0]
        self.assertEqual(member.in_flight, 1)
        c.proto.sendClose(1000)
        yield c.closed.addTimeout(10, reactor)
        for _ in range(100):
            if member.in_flight == 0:
                break
            yield deferLater(0.02)
        self.assertEqual(member.in_flight, 0)

    @defer.inlineCallbacks
    def test_plain_get_on_ws_path_goes_to_the_node_over_http(self):
        """
        A plain request on the WebSocket path goes to a node of the ws://
        balancer over http:// (as Apache 2.4.47+ does), the same node its
        session's route picks for the WebSocket; on both lanes (the fast
        lane, and twisted.web's for a request with a body).
        """
        for request in (
            b"GET " + WS_PATH.encode() + b"/chat.xhtml?a=1 HTTP/1.1\r\nHost: x\r\n"
            b"Cookie: JSESSIONID=abc.node2\r\nConnection: close\r\n\r\n",
            b"GET " + WS_PATH.encode() + b"/chat.xhtml?a=1 HTTP/1.1\r\nHost: x\r\n"
            b"Cookie: JSESSIONID=abc.node2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ):
            answer = yield defer.Deferred.fromCoroutine(raw_request(self.port, request))
            head, _, body = answer.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertIn(b"page from node2", body)
        self.assertEqual(self.ws_nodes[1].pages, [WS_PATH + "/chat.xhtml?a=1"] * 2)
        self.assertEqual(self.ws_nodes[0].pages, [])
        c = yield self.open(cookie="JSESSIONID=abc.node2")
        self.assertEqual(c.messages[0], (b"hello from node2", False))

    @defer.inlineCallbacks
    def test_upgrade_on_ajp_route_is_served_as_a_page(self):
        """
        An upgrade on a route of AJP members: the Upgrade is ignored (RFC
        9110 7.8) and the request served as a plain one, as Apache does.
        """
        answer = yield defer.Deferred.fromCoroutine(raw_request(
            self.port,
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ))
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertNotIn(b"upgrade", head.lower())
        self.assertIn(b"node1", body)

    @defer.inlineCallbacks
    def test_member_refusal_passes_through(self):
        """A member answering the upgrade with 403 is not in error; the client gets the 403."""
        c = self.client("/forbidden")
        failure = yield self.assertFailure(c.opened.addTimeout(10, reactor), HandshakeRefused)
        self.assertIn("403", str(failure))
        self.assertFalse(self.proxy.balancers["ws"].balancer.members[0].in_error)
        self.assertEqual(len(self.ws_nodes[1].requests), 0)

    @defer.inlineCallbacks
    def test_slow_client_slows_member(self):
        """
        A client that stops reading stops the proxy reading from the member:
        the member's data waits in the member's buffers, not in the proxy.
        """
        c = yield self.open()
        c.proto.transport.pauseProducing()
        c.proto.sendMessage(b"flood:400:60000")  # 24 MB
        member_proto = self.ws_nodes[0].open[0]
        yield deferLater(1.0)
        backend = next(iter(self.proxy.balancers["ws"].backends.values()))
        tunnel = next(iter(backend.tunnels))
        transport = tunnel.client.transport
        buffered = len(transport.dataBuffer) + transport._tempDataLen
        self.assertLess(buffered, 2 * 1024 * 1024)
        member_buffer = len(member_proto.transport.dataBuffer) + member_proto.transport._tempDataLen
        self.assertGreater(member_buffer, 8 * 1024 * 1024)
        c.proto.transport.resumeProducing()
        yield c.until(401)
        self.assertEqual(len(c.messages), 401)


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.data)


async def raw_request(port: int, request: bytes) -> bytes:
    """Send raw bytes; return everything the proxy answers until it closes."""
    proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _Collect())
    proto.transport.write(request)
    return await proto.done.addTimeout(10, reactor)


def deferLater(seconds: float) -> defer.Deferred[None]:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def stop_all(proxies: list[ProxyService], clients: list[WSClient], nodes: list[Any], ajp: Node):
    """Stop the proxies, then the clients, the WebSocket nodes and the AJP node."""
    for proxy in proxies:
        yield proxy.stopService()
    for client in clients:
        client.stop()
    for node in nodes:
        yield node.stop()
    yield ajp.stop()
    # Let the last connections finish closing.
    yield deferLater(0.05)

class SilentMember:
    """Accepts connections and never answers."""

    name = "silent"

    def __init__(self) -> None:
        from twisted.internet.protocol import Factory

        self.listening = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.url = f"ws://127.0.0.1:{self.listening.getHost().port}"

    def stop(self) -> defer.Deferred[None]:
        return defer.maybeDeferred(self.listening.stopListening)


class TimeoutTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [SilentMember(), WSNode("node2")]
        self.ajp = Node("node1")
        self.proxy, port = yield defer.Deferred.fromCoroutine(
            start_ws_proxy(self.nodes, self.ajp, member_options={"timeout": 0.5})
        )
        self.url = f"ws://127.0.0.1:{port}{WS_PATH}"
        self.clients: list[WSClient] = []

    def tearDown(self):
        return stop_all([self.proxy], self.clients, self.nodes, self.ajp)

    @defer.inlineCallbacks
    def test_unanswered_upgrade_goes_to_next_member(self):
        """No answer to the upgrade within the member's timeout: the next member serves it."""
        c = WSClient(self.url, cookie="JSESSIONID=A.silent")
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        self.assertEqual(c.messages[0][0], b"hello from node2")

    @defer.inlineCallbacks
    def test_idle_tunnel_is_closed(self):
        """No message either way for the member's timeout: both sides get 1001."""
        c = WSClient(self.url, cookie="JSESSIONID=A.node2")
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        code, reason = yield c.closed.addTimeout(10, reactor)
        self.assertEqual((code, reason), (1001, "idle timeout"))

    @defer.inlineCallbacks
    def test_pings_keep_tunnel_open(self):
        """Pings count as activity: a tunnel pinged more often than its timeout stays open."""
        c = WSClient(self.url, cookie="JSESSIONID=A.node2")
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        for _ in range(6):
            c.proto.sendPing()
            yield deferLater(0.2)
        self.assertFalse(c.closed.called)


class RouteOptionTests(TestCase):
    """x_forwarded, and the WebSocket route's preserve_host and timeout."""

    timeout = 30

    def setUp(self):
        self.nodes: list[WSNode] = []
        self.proxies: list[ProxyService] = []
        self.clients: list[WSClient] = []
        self.ajp = Node("node1")

    def tearDown(self):
        return stop_all(self.proxies, self.clients, self.nodes, self.ajp)

    @defer.inlineCallbacks
    def open(self, cookie: str | None = None, headers: dict[str, str] | None = None, **options: Any):
        node = WSNode("node1")
        self.nodes.append(node)
        proxy, port = yield defer.Deferred.fromCoroutine(start_ws_proxy([node], self.ajp, **options))
        self.proxies.append(proxy)
        c = WSClient(f"ws://127.0.0.1:{port}{WS_PATH}", cookie=cookie)
        if headers:
            c.factory.headers.update(headers)
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        return c, node, port

    @defer.inlineCallbacks
    def test_x_forwarded_off_passes_the_clients_own(self):
        _, node, _ = yield self.open(
            headers={"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "https"}, x_forwarded=False
        )
        request = node.requests[-1]
        self.assertEqual(request.headers["x-forwarded-for"], "10.1.1.1")
        self.assertEqual(request.headers["x-forwarded-proto"], "https")
        self.assertNotIn("x-forwarded-host", request.headers)

    @defer.inlineCallbacks
    def test_x_forwarded_on_appends_and_replaces(self):
        _, node, port = yield self.open(
            headers={"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "https"}
        )
        request = node.requests[-1]
        self.assertEqual(request.headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1")
        self.assertEqual(request.headers["x-forwarded-proto"], "http")
        self.assertEqual(request.headers["x-forwarded-host"], f"127.0.0.1:{port}")

    @defer.inlineCallbacks
    def test_member_gets_its_own_host_by_default(self):
        _, node, _ = yield self.open()
        self.assertEqual(node.requests[-1].headers["host"], f"127.0.0.1:{node.port}")

    @defer.inlineCallbacks
    def test_preserve_host(self):
        _, node, port = yield self.open(route_options={"preserve_host": True})
        self.assertEqual(node.requests[-1].headers["host"], f"127.0.0.1:{port}")

    @defer.inlineCallbacks
    def test_route_timeout_is_the_idle_timeout(self):
        """The member's timeout is 30 s; the route says 0.4 s."""
        c, _, _ = yield self.open(
            member_options={"timeout": 30.0}, route_options={"timeout": 0.4}
        )
        started = reactor.seconds()
        code, reason = yield c.closed.addTimeout(10, reactor)
        self.assertEqual((code, reason), (1001, "idle timeout"))
        self.assertLess(reactor.seconds() - started, 5)

    @defer.inlineCallbacks
    def test_route_timeout_bounds_the_upgrade(self):
        """A member that never answers the upgrade: the route's timeout, then the next member."""
        silent = SilentMember()
        node = WSNode("node2")
        self.nodes.append(node)
        self.addCleanup(silent.stop)
        proxy, port = yield defer.Deferred.fromCoroutine(
            start_ws_proxy(
                [silent, node], self.ajp, member_options={"timeout": 30.0},
                route_options={"timeout": 0.4},
            )
        )
        self.proxies.append(proxy)
        c = WSClient(f"ws://127.0.0.1:{port}{WS_PATH}", cookie="JSESSIONID=A.silent")
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        self.assertEqual(c.messages[0][0], b"hello from node2")


class TLSTests(TestCase):
    """The first seed for real: an HTTPS listener, wss:// members with self-signed certificates."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        import tempfile
        from pathlib import Path

        from twisted_lb.tls import make_self_signed

        d = Path(tempfile.mkdtemp())
        cert, key = d / "cert.pem", d / "key.pem"
        make_self_signed(cert, key, "localhost")
        node_tls = ssl.DefaultOpenSSLContextFactory(str(key), str(cert))
        self.ws_nodes = [WSNode("hosta", tls=node_tls), WSNode("hostb", tls=node_tls)]
        self.ajp = Node("hosta")
        self.proxy, port = yield defer.Deferred.fromCoroutine(
            start_ws_proxy(self.ws_nodes, self.ajp, listener_tls=TLSConfig(str(cert), str(key)))
        )
        self.url = f"wss://127.0.0.1:{port}{WS_PATH}"
        self.clients: list[WSClient] = []

    def tearDown(self):
        return stop_all([self.proxy], self.clients, self.ws_nodes, self.ajp)

    @defer.inlineCallbacks
    def test_wss_through_https_listener(self):
        """Sticky to hostb over TLS on both legs; messages relayed."""
        c = WSClient(self.url, cookie="JSESSIONID=Z.hostb", protocols=["chat"])
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        self.assertEqual(c.messages[0], (b"hello from hostb", False))
        self.assertEqual(c.proto.subprotocol, "chat")
        c.proto.sendMessage(b"over tls")
        c.proto.sendMessage(b"\x01\x02", isBinary=True)
        yield c.until(3)
        self.assertEqual(c.messages[1:], [(b"over tls", False), (b"\x01\x02", True)])

    @defer.inlineCallbacks
    def test_nagle_is_off_on_both_legs(self):
        """
        TCP_NODELAY on the client's and the member's socket (over TLS both): small
        messages one at a time must not wait for delayed ACKs.
        """
        c = WSClient(self.url)
        self.clients.append(c)
        yield c.opened.addTimeout(10, reactor)
        yield c.until(1)
        tunnels = [t for b in self.proxy.balancers["ws"].backends.values() for t in b.tunnels]
        self.assertEqual(len(tunnels), 1)
        for side in (tunnels[0].client, tunnels[0].upstream):
            transport = side.transport
            while not hasattr(transport, "socket"):  # down through the TLS layer
                transport = transport.transport
            self.assertTrue(transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @defer.inlineCallbacks
    def test_probe_completes_tls(self):
        backends = list(self.proxy.balancers["ws"].backends.values())
        ok = yield defer.Deferred.fromCoroutine(backends[0].probe())
        self.assertTrue(ok)
        yield self.ws_nodes[0].stop()
        ok = yield defer.Deferred.fromCoroutine(backends[0].probe())
        self.assertFalse(ok)
