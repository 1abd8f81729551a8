"""
Reloading a running proxy (ProxyService.reload) and stopping it gracefully,
on real loopback sockets with demo AJP nodes: which sockets stay open, which
members keep their state, and that no request fails.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.interop.proxy_process import ProxyClient
from tests.robustness.support import raw_exchange
from twisted_lb.config.model import (
    BalancerConfig,
    ConfigError,
    LimitsConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.service import ProxyService
from twisted_lb.testing import Fault, FaultyAJPMember
from twisted_lb.tls import make_self_signed

from .support import Client, Node, tls_client

LISTEN = ListenerConfig("tcp:0:interface=127.0.0.1")
#: A second listener (a different endpoint string on another ephemeral port).
OTHER = ListenerConfig("tcp:0:interface=127.0.0.1:backlog=10")


def member(node: Node | FaultyAJPMember, route: str, **options: object) -> MemberConfig:
    return MemberConfig(url=node.url, route=route, ping=1.0, **options)  # type: ignore[arg-type]


def config(*balancers: BalancerConfig, routes=None, listeners=(LISTEN,), **top) -> ProxyConfig:
    return ProxyConfig(
        listeners=listeners,
        balancers=balancers,
        routes=routes or (RouteConfig("/", balancers[0].name),),
        **top,
    )


def sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def port_of(listening) -> int:
    return listening._waitingForPort.result.getHost().port


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


class ReloadTests(TestCase):
    timeout = 60

    def setUp(self):
        self.nodes = [Node(f"node{i}") for i in (1, 2, 3)]
        self.client = Client()
        self.keepalive: ProxyClient | None = None

    def start(self, cfg: ProxyConfig) -> str:
        self.proxy = ProxyService(cfg, reactor)
        self.proxy.startService()
        self.addCleanup(self.proxy.stopService)
        return f"http://127.0.0.1:{port_of(self.proxy.listening[0])}"

    @defer.inlineCallbacks
    def tearDown(self):
        if self.keepalive is not None:
            self.keepalive.close()
        yield self.client.close()
        for node in self.nodes:
            yield node.stop()

    @defer.inlineCallbacks
    def nodes_answering(self, url: str, count: int):
        seen = []
        for _ in range(count):
            status, _, body = yield defer.Deferred.fromCoroutine(self.client.request(url))
            self.assertEqual(status, 200, body)
            seen.append(json.loads(body)["node"])
        return seen

    @defer.inlineCallbacks
    def test_members_change_listener_and_keepalive_connection_stay(self):
        """
        Reload adds, removes and reweights members: the kept member is the same
        object with its counters, the listening port is the same object, and a
        keep-alive client connection opened before is served after.
        """
        n1, n2, n3 = self.nodes
        base = self.start(config(BalancerConfig("app", (member(n1, "n1"), member(n2, "n2")))))
        port = self.proxy.listening[0]._waitingForPort.result
        self.keepalive = ProxyClient(port.getHost().port)
        first = yield deferToThread(self.keepalive.get, "/echo")
        self.assertEqual(first.status, 200)
        local_port = self.keepalive.local_port
        yield self.nodes_answering(base + "/echo", 4)
        built = self.proxy.balancers["app"]
        kept = built.balancer.member_by_route("n1")
        elected = kept.elected
        self.assertGreater(elected, 0)
        pooled = built.backends[kept]

        summary = self.proxy.reload(
            config(BalancerConfig("app", (member(n1, "n1", loadfactor=2), member(n3, "n3"))))
        )

        self.assertEqual(summary.members_added, ("app/n3",))
        self.assertEqual(summary.members_removed, ("app/n2",))
        self.assertEqual(summary.members_changed, ("app/n1",))
        self.assertIs(built.balancer.member_by_route("n1"), kept)
        self.assertEqual(kept.elected, elected)
        self.assertEqual(kept.loadfactor, 2)
        self.assertIs(built.backends[kept], pooled)
        self.assertIs(self.proxy.listening[0]._waitingForPort.result, port)
        self.assertTrue(port.connected)
        again = yield deferToThread(self.keepalive.get, "/echo")
        self.assertEqual(again.status, 200)
        self.assertEqual(self.keepalive.local_port, local_port)
        seen = yield self.nodes_answering(base + "/echo", 6)
        self.assertEqual(set(seen), {"node1", "node3"})
        self.assertEqual(seen.count("node1"), 4)

    @defer.inlineCallbacks
    def test_changed_url_replaces_the_member(self):
        """A member whose URL changed gets a new backend; its route stays."""
        n1, n2, _ = self.nodes
        base = self.start(config(BalancerConfig("app", (member(n1, "a"),))))
        self.assertEqual(set((yield self.nodes_answering(base + "/echo", 2))), {"node1"})
        old = self.proxy.balancers["app"].balancer.member_by_route("a")
        summary = self.proxy.reload(config(BalancerConfig("app", (member(n2, "a"),))))
        self.assertEqual(summary.members_replaced, ("app/a",))
        self.assertIsNot(self.proxy.balancers["app"].balancer.member_by_route("a"), old)
        self.assertEqual(set((yield self.nodes_answering(base + "/echo", 2))), {"node2"})

    @defer.inlineCallbacks
    def test_routes_balancers_and_listeners(self):
        """
        A new balancer and route serve at once; a removed balancer is closed;
        a new listener listens; a removed one stops listening while the kept
        one is untouched.
        """
        n1, n2, _ = self.nodes
        one = BalancerConfig("one", (member(n1, "n1"),))
        two = BalancerConfig("two", (member(n2, "n2"),))
        base = self.start(config(one))
        first_port = port_of(self.proxy.listening[0])

        summary = self.proxy.reload(
            config(
                one, two,
                routes=(RouteConfig("/", "one"), RouteConfig("/two", "two")),
                listeners=(LISTEN, OTHER),
            )
        )
        self.assertEqual(summary.balancers_added, ("two",))
        self.assertTrue(summary.routes_changed)
        self.assertEqual(summary.listeners_added, (OTHER.endpoint,))
        self.assertEqual(set((yield self.nodes_answering(base + "/two/echo", 2))), {"node2"})
        other = port_of(self.proxy.listening[1])
        seen = yield self.nodes_answering(f"http://127.0.0.1:{other}/echo", 2)
        self.assertEqual(set(seen), {"node1"})

        retired = self.proxy.balancers["one"]
        self.proxy.reload(config(two, routes=(RouteConfig("/", "two"),), listeners=(OTHER,)))
        self.assertEqual(set((yield self.nodes_answering(f"http://127.0.0.1:{other}/echo", 2))), {"node2"})
        self.assertTrue(refused(first_port))
        yield sleep(0.3)
        self.assertNotIn(retired, self.proxy.retired)
        self.assertEqual(retired.backends, {})

    @defer.inlineCallbacks
    def test_changed_server_name_keeps_the_listener(self):
        """
        A listener whose server_name changed is the same socket: kept, and requests without
        Host get the new name at once (the reload used to try a second socket on the port).
        """
        base = self.start(config(BalancerConfig("app", (member(self.nodes[0], "n1"),))))
        port = int(base.rsplit(":", 1)[1])
        listening = self.proxy.listening[0]

        def server_name():
            d = raw_exchange(port, b"GET /echo HTTP/1.0\r\n\r\n")
            return d.addCallback(lambda a: json.loads(a.partition(b"\r\n\r\n")[2])["server_name"])

        self.assertEqual((yield server_name()), "127.0.0.1")
        named = attrs.evolve(LISTEN, server_name="www.example.com")
        summary = self.proxy.reload(
            config(BalancerConfig("app", (member(self.nodes[0], "n1"),)), listeners=(named,))
        )
        self.assertIs(self.proxy.listening[0], listening)
        self.assertEqual(summary.listeners_added, ())
        self.assertEqual((yield server_name()), "www.example.com")

    @defer.inlineCallbacks
    def test_invalid_configuration_changes_nothing(self):
        """A listener that cannot listen, or a bad file, leaves everything as it was."""
        n1, n2, _ = self.nodes
        good = config(BalancerConfig("app", (member(n1, "n1"),)))
        base = self.start(good)
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        bad = config(
            BalancerConfig("app", (member(n2, "n2"),)),
            listeners=(LISTEN, ListenerConfig(f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1")),
        )
        with self.assertRaises(ConfigError) as raised:
            self.proxy.reload(bad)
        self.assertEqual(raised.exception.key, "listen[1].endpoint")
        self.assertIn("cannot listen", raised.exception.problem)
        missing = os.path.abspath(self.mktemp())
        with self.assertRaises(ConfigError) as raised:
            self.proxy.reload(attrs.evolve(bad, listeners=(LISTEN, ListenerConfig(f"ssl:0:privateKey={missing}"))))
        self.assertEqual(raised.exception.key, "listen[1].endpoint")
        self.assertIn(f"file {missing} cannot be read", raised.exception.problem)
        self.assertIs(self.proxy.config, good)
        self.assertEqual(len(self.proxy.listening), 1)
        self.assertEqual(set((yield self.nodes_answering(base + "/echo", 3))), {"node1"})

        path = self.mktemp() + ".toml"
        with open(path, "w") as f:
            f.write(f'[[listen]]\nendpoint = "tcp:0"\n[balancers.app]\nmembers = [{{ url = "{n1.url}", loadfactor = 500 }}]\n')
        self.proxy.config = attrs.evolve(good, source=path)
        with self.assertRaises(ConfigError) as raised:
            self.proxy.reload()
        self.assertEqual(raised.exception.source, path)
        self.assertEqual(raised.exception.key, "balancers.app.members[0].loadfactor")
        self.assertEqual(set((yield self.nodes_answering(base + "/echo", 3))), {"node1"})

    @defer.inlineCallbacks
    def test_changed_limits_apply_to_new_connections(self):
        """
        Changed [limits] are reported and apply to the connections a kept
        listener accepts after the reload: max_connections counts the
        connections opened before, a new connection gets the new header limit
        and idle timeout, and one opened before keeps its own.
        """
        app = BalancerConfig("app", (member(self.nodes[0], "n1"),))
        self.start(config(app))
        port = port_of(self.proxy.listening[0])
        site = self.proxy.listening[0].factory
        self.keepalive = before = ProxyClient(port)
        self.assertEqual((yield deferToThread(before.get, "/echo")).status, 200)
        local_port = before.local_port
        idle = yield deferToThread(socket.create_connection, ("127.0.0.1", port))
        self.addCleanup(idle.close)
        yield self.open_connections(site, 2)

        limits = LimitsConfig(max_header_bytes=2048, idle_timeout=0.5, max_connections=3)
        summary = self.proxy.reload(config(app, limits=limits))

        self.assertEqual(
            summary.limits_changed,
            ("max_header_bytes 16384 -> 2048", "idle_timeout 60.0 -> 0.5", "max_connections None -> 3"),
        )
        self.assertEqual(
            summary.describe(),
            "limits changed: max_header_bytes 16384 -> 2048, idle_timeout 60.0 -> 0.5, "
            "max_connections None -> 3",
        )
        self.assertIs(self.proxy.listening[0].factory, site)
        big = {"X-Pad": "p" * 4000}
        after = ProxyClient(port)
        self.addCleanup(after.close)
        self.assertEqual((yield deferToThread(after.get, "/echo", headers=big)).status, 431)
        yield self.open_connections(site, 2)
        self.assertEqual((yield deferToThread(before.get, "/echo", headers=big)).status, 200)
        # The two connections opened before count: a third is served, a fourth refused.
        self.assertEqual((yield deferToThread(after.get, "/echo")).status, 200)
        request = b"GET /echo HTTP/1.1\r\nHost: proxy.test\r\n\r\n"
        refused_answer = yield raw_exchange(port, request)
        self.assertTrue(refused_answer.startswith(b"HTTP/1.1 503 "), refused_answer)
        # The new connection is closed after 0.5 s idle; the old ones wait 60 s.
        yield sleep(1.5)
        self.assertEqual(site.open_connections, 2)
        self.assertEqual((yield deferToThread(before.get, "/echo")).status, 200)
        self.assertEqual(before.local_port, local_port)

    @defer.inlineCallbacks
    def open_connections(self, site, count: int):
        for _ in range(100):
            if site.open_connections == count:
                return
            yield sleep(0.05)
        self.assertEqual(site.open_connections, count)

    @defer.inlineCallbacks
    def test_removed_member_finishes_its_request_in_flight(self):
        """A member removed while it answers a request finishes it, then is closed."""
        slow = FaultyAJPMember(Fault.NONE).start()
        self.addCleanup(slow.stop)
        slow.schedule(Fault.STALL_BEFORE_HEADERS)
        n1 = self.nodes[0]
        base = self.start(config(BalancerConfig("app", (member(slow, "slow"),))))
        pending = defer.Deferred.fromCoroutine(self.client.request(base + "/x"))
        yield sleep(0.3)
        self.proxy.reload(config(BalancerConfig("app", (member(n1, "n1"),))))
        self.assertEqual(set((yield self.nodes_answering(base + "/echo", 2))), {"node1"})
        self.assertEqual(slow.open_connections, 1)
        slow.answer_stalled()
        status, _, _ = yield pending
        self.assertEqual(status, 200)
        yield sleep(0.3)
        self.assertEqual(slow.open_connections, 0)

    @defer.inlineCallbacks
    def test_reload_under_load_fails_no_request(self):
        """
        Eight clients send requests without pause while members are added,
        removed and replaced and routes change: every response is a 200.
        """
        n1, n2, n3 = self.nodes
        configs = [
            config(BalancerConfig("app", (member(n1, "n1"), member(n2, "n2")))),
            config(BalancerConfig("app", (member(n1, "n1"), member(n2, "n2"), member(n3, "n3")))),
            config(BalancerConfig("app", (member(n2, "n2", loadfactor=3), member(n3, "n3")))),
            config(
                BalancerConfig("app", (member(n3, "n3"),)),
                BalancerConfig("other", (member(n1, "n1"),)),
                routes=(RouteConfig("/", "app"), RouteConfig("/echo", "other", target_path="/echo")),
            ),
            config(BalancerConfig("app", (member(n1, "n1", timeout=60), member(n3, "n3")))),
        ]
        base = self.start(configs[0])
        statuses: list[int] = []
        nodes_seen: set[str] = set()
        running = True

        async def load() -> None:
            client = Client()
            try:
                while running:
                    status, _, body = await client.request(base + "/echo")
                    statuses.append(status)
                    if status == 200:
                        nodes_seen.add(json.loads(body)["node"])
            finally:
                await client.close()

        loads = [defer.Deferred.fromCoroutine(load()) for _ in range(8)]
        for cfg in configs[1:] + configs[:1]:
            yield sleep(0.4)
            self.proxy.reload(cfg)
        yield sleep(0.4)
        running = False
        yield defer.gatherResults(loads)
        print("under load:", len(statuses), "responses")
        self.assertGreater(len(statuses), 200)
        self.assertEqual([s for s in statuses if s != 200], [])
        self.assertEqual(nodes_seen, {"node1", "node2", "node3"})

    @defer.inlineCallbacks
    def test_access_log_reopened_and_json(self):
        """A reload reopens the access log (rotation); the JSON variant writes objects."""
        n1 = self.nodes[0]
        path = self.mktemp()
        cfg = config(BalancerConfig("app", (member(n1, "n1"),)), access_log=path)
        base = self.start(cfg)
        yield self.nodes_answering(base + "/echo", 1)
        os.rename(path, path + ".1")
        self.proxy.reload(cfg)
        yield self.nodes_answering(base + "/echo?after", 1)
        with open(path + ".1") as f:
            self.assertIn('"GET /echo HTTP/1.1" 200', f.read())
        with open(path) as f:
            self.assertIn('"GET /echo?after HTTP/1.1" 200', f.read())

        self.proxy.reload(attrs.evolve(cfg, access_log_format="json"))
        yield self.nodes_answering(base + "/echo?json", 1)
        with open(path) as f:
            record = json.loads(f.read().splitlines()[-1])
        self.assertEqual(record["uri"], "/echo?json")
        self.assertEqual(record["status"], 200)
        self.assertEqual(record["member"], n1.url)
        self.assertEqual(record["attempts"], 1)


class GracefulStopTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_stop_finishes_requests_in_flight_and_refuses_new_connections(self):
        """
        stopService stops listening at once, closes idle keep-alive
        connections, lets a slow request finish (with Connection: close) and
        fires when all is closed.
        """
        slow = FaultyAJPMember(Fault.NONE).start()
        self.addCleanup(slow.stop)
        proxy = ProxyService(
            config(BalancerConfig("app", (member(slow, "slow"),)), shutdown_timeout=10), reactor
        )
        proxy.startService()
        port = port_of(proxy.listening[0])
        idle = ProxyClient(port)
        self.addCleanup(idle.close)
        self.assertEqual((yield deferToThread(idle.get, "/first")).status, 200)
        busy = ProxyClient(port)
        self.addCleanup(busy.close)
        slow.schedule(Fault.STALL_BEFORE_HEADERS)
        pending = deferToThread(busy.get, "/slow")
        yield sleep(0.3)

        stopped = proxy.stopService()
        stopped_at: list[float] = []
        stopped.addCallback(lambda _: stopped_at.append(reactor.seconds()))
        yield sleep(0.3)
        self.assertTrue(refused(port))
        self.assertEqual(len(proxy.connections), 1)  # the idle one was closed
        self.assertEqual(stopped_at, [])
        answered_at = reactor.seconds()
        slow.answer_stalled()
        result = yield pending
        self.assertEqual(result.status, 200)
        self.assertEqual(result.header("Connection"), "close")
        yield stopped
        self.assertLess(stopped_at[0] - answered_at, 1.0)

    @defer.inlineCallbacks
    def test_stop_cuts_what_is_left_at_the_timeout(self):
        """A request still in flight at shutdown_timeout is cut; the stop completes."""
        slow = FaultyAJPMember(Fault.STALL_BEFORE_HEADERS).start()
        self.addCleanup(slow.stop)
        proxy = ProxyService(
            config(BalancerConfig("app", (member(slow, "slow"),)), shutdown_timeout=0.5), reactor
        )
        proxy.startService()
        client = ProxyClient(port_of(proxy.listening[0]))
        self.addCleanup(client.close)
        pending = deferToThread(client.get, "/never")
        yield sleep(0.3)
        started = reactor.seconds()
        yield proxy.stopService()
        self.assertLess(reactor.seconds() - started, 2.0)
        yield self.assertFailure(pending, OSError, Exception)


def _served_certificate(port: int, keep: list[SSL.Connection] | None = None) -> bytes:
    """The DER certificate an HTTPS listener on C{port} presents (blocking: run in a thread)."""
    conn = tls_client(port)
    certificate = conn.get_peer_certificate()
    assert certificate is not None
    if keep is not None:
        keep.append(conn)
    else:
        conn.close()
    return certificate.to_cryptography().public_bytes(Encoding.DER)


def _get(conn: SSL.Connection) -> bytes:
    """One GET /echo on an open connection; the status line (blocking)."""
    conn.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return conn.recv(65536).split(b"\r\n", 1)[0]


def _der(path: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(open(path).read())


class CertificateReloadTests(TestCase):
    """A kept HTTPS listener reads its certificate files again on reload."""

    timeout = 60

    @defer.inlineCallbacks
    def test_renewed_certificate_served_after_reload(self):
        """New connections get the new certificate, an open one keeps working, and a
        broken file refuses the reload and leaves the served certificate as it was."""
        node = Node("node1")
        self.addCleanup(node.stop)
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        make_self_signed(Path(cert), Path(key), "first.example")
        first = _der(cert)
        listener = ListenerConfig("tcp:0:interface=127.0.0.1", tls=TLSConfig(cert, key))
        cfg = config(BalancerConfig("app", (member(node, "n1"),)), listeners=(listener,))
        proxy = ProxyService(cfg, reactor)
        proxy.startService()
        self.addCleanup(proxy.stopService)
        port = port_of(proxy.listening[0])
        opened: list[SSL.Connection] = []
        self.addCleanup(lambda: [s.close() for s in opened])
        self.assertEqual((yield deferToThread(_served_certificate, port, opened)), first)

        make_self_signed(Path(cert), Path(key), "second.example")
        second = _der(cert)
        self.assertNotEqual(first, second)
        summary = proxy.reload(cfg)
        self.assertEqual(summary.certificates_reread, (listener.endpoint,))
        self.assertIn("certificates read again", summary.describe())
        self.assertEqual((yield deferToThread(_served_certificate, port)), second)
        # The connection made before the reload is served on.
        self.assertEqual((yield deferToThread(_get, opened[0])), b"HTTP/1.1 200 OK")

        with open(cert, "w") as f:
            f.write("not a certificate\n")
        with self.assertRaises(ConfigError) as raised:
            proxy.reload(cfg)
        self.assertEqual(raised.exception.key, "listen[0].tls")
        self.assertIn(cert, raised.exception.problem)
        self.assertEqual((yield deferToThread(_served_certificate, port)), second)
