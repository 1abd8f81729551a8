"""
Active health checks and slow start on real loopback sockets: AJP members checked with CPING,
HTTP members with a request to a health page, and the weight ramp seen in real traffic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import (
    BalancerConfig,
    HealthCheckConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.service import ProxyService
from twisted_lb.testing import Fault, FaultyAJPMember

from .support import Client
from .test_http_members import Member as HTTPMember


async def _listening_port(service: ProxyService) -> Any:
    # Awaited (not yielded), so that the service still gets the port to stop it.
    return await service.listening[0]._waitingForPort


class _Base(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.client = Client()
        self.stops: list[Callable[[], Any]] = []
        self.logged: list[str] = []
        observer = lambda event: self.logged.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    @defer.inlineCallbacks
    def tearDown(self) -> Any:
        yield self.client.close()
        for stop in reversed(self.stops):
            yield stop()

    @defer.inlineCallbacks
    def proxy(self, members: list[MemberConfig], health: HealthCheckConfig, **kw: Any) -> Any:
        config = ProxyConfig(
            listeners=(ListenerConfig("tcp:0:interface=127.0.0.1"),),
            balancers=(BalancerConfig("cluster", tuple(members), health=health, **kw),),
            routes=(RouteConfig("/", "cluster"),),
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.stops.append(service.stopService)
        port = yield defer.Deferred.fromCoroutine(_listening_port(service))
        self.balancer = service.balancers["cluster"].balancer
        return f"http://127.0.0.1:{port.getHost().port}"

    @defer.inlineCallbacks
    def wait_for(self, condition: Callable[[], bool], limit: float) -> Any:
        """Poll C{condition} every 20 ms; return the seconds it took, fail after C{limit}."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > limit:
                self.fail(f"condition not met within {limit} s")
            yield task.deferLater(reactor, 0.02, lambda: None)
        return time.monotonic() - start

    def member(self, name: str) -> Any:
        found = self.balancer.member_by_name(name)
        assert found is not None
        return found

    def get(self, url: str) -> defer.Deferred[tuple[int, Any, bytes]]:
        return defer.Deferred.fromCoroutine(self.client.request(url))


class AJPHealthTests(_Base):
    """Two AJP members checked with CPING every 0.2 s, rise 2, fall 2."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.nodes = [FaultyAJPMember(body_size=10).start() for _ in range(2)]
        for node in self.nodes:
            self.stops.append(node.stop)
        members = [
            MemberConfig(url=n.url, route=f"n{i}") for i, n in enumerate(self.nodes, 1)
        ]
        self.health = HealthCheckConfig(interval=0.2, timeout=0.3, passes=2, fails=2)
        self.base = yield self.proxy(members, self.health, sticky=None)
        self.names = [m.name for m in self.balancer.members]

    @defer.inlineCallbacks
    def test_hung_node_out_before_any_request_and_back_without_one(self) -> Any:
        first, second = self.nodes
        a = self.member(self.names[0])
        yield self.wait_for(lambda: a.check.passes >= 1, 2)
        assert first.requests == [] and first.cpings >= 1
        first.fault = Fault.NO_CPONG  # the JVM hangs; the kernel still accepts connections
        took = yield self.wait_for(lambda: a.in_error, 3)
        # two failed checks: about 2 intervals plus the timeout
        self.assertLess(took, 2.0)
        self.assertIn("health check failed", a.error_reason)
        self.assertIn("no CPONG", a.check.detail + a.error_reason)
        self.assertTrue(any("failed 2 health checks in a row" in line for line in self.logged))
        # No user request is spent on it: all are answered by the other node.
        for _ in range(6):
            code, _, _ = yield self.get(self.base + "/x")
            self.assertEqual(code, 200)
        self.assertEqual(first.requests, [])
        self.assertEqual(len(second.requests), 6)
        first.fault = Fault.NONE
        took = yield self.wait_for(lambda: not a.in_error, 3)
        # back within about passes * interval (plus a check in flight), no request spent
        self.assertLess(took, 1.2)
        self.assertEqual(first.requests, [])
        self.assertTrue(any("passed 2 health checks in a row" in line for line in self.logged))
        for _ in range(4):
            code, _, _ = yield self.get(self.base + "/x")
            self.assertEqual(code, 200)
        self.assertEqual(len(first.requests), 2)

    @defer.inlineCallbacks
    def test_stopped_node_goes_down_and_comes_back(self) -> Any:
        first, _ = self.nodes
        a = self.member(self.names[0])
        port = first.port
        yield first.stop()
        yield self.wait_for(lambda: a.in_error, 3)
        self.assertIn("refused", a.check.detail)
        first._port = reactor.listenTCP(port, first, interface="127.0.0.1")
        yield self.wait_for(lambda: not a.in_error, 3)
        snapshot = self.balancer.snapshot()["members"][0]["check"]
        self.assertEqual((snapshot["ok"], snapshot["detail"]), (True, "CPONG"))
        self.assertGreaterEqual(snapshot["passes"], 2)


class HTTPHealthTests(_Base):
    """Two HTTP members checked with GET /health every 0.2 s, rise 2, fall 1."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.nodes = [HTTPMember("node1"), HTTPMember("node2")]
        self.status = {"node1": 200, "node2": 200}
        self.hits: Counter[str] = Counter()
        for node in self.nodes:
            self.stops.append(node.stop)
            node.app.do_health = self._health_page(node.name)  # type: ignore[attr-defined]
        members = [MemberConfig(url=n.url, route=n.name) for n in self.nodes]
        health = HealthCheckConfig(interval=0.2, timeout=1.0, passes=2, fails=1, path="/health")
        self.base = yield self.proxy(members, health, sticky=None)

    def _health_page(self, name: str) -> Callable[[Any], bytes]:
        def page(request: Any) -> bytes:
            self.hits[name] += 1
            request.setResponseCode(self.status[name])
            return b"status"

        return page

    @defer.inlineCallbacks
    def test_member_answering_500_is_out_and_comes_back(self) -> Any:
        m1 = self.balancer.members[0]
        yield self.wait_for(lambda: self.hits["node1"] >= 1 and self.hits["node2"] >= 1, 2)
        self.assertFalse(m1.in_error)
        self.status["node1"] = 500
        yield self.wait_for(lambda: m1.in_error, 2)
        self.assertEqual(m1.check.detail, "HTTP 500")
        self.assertEqual(m1.error_reason, "health check failed: HTTP 500")
        for _ in range(4):
            code, _, body = yield self.get(self.base + "/echo")
            self.assertEqual(code, 200)
            self.assertIn(b'"node2"', body)
        self.status["node1"] = 200
        yield self.wait_for(lambda: not m1.in_error, 2)
        seen = set()
        for _ in range(4):
            _, _, body = yield self.get(self.base + "/echo")
            seen.add(b'"node1"' in body)
        self.assertEqual(seen, {True, False})


class SlowStartTests(_Base):
    """A readmitted AJP member takes few new requests at first, its full share after."""

    @defer.inlineCallbacks
    def test_slow_start_in_real_traffic(self) -> Any:
        nodes = [FaultyAJPMember(body_size=10).start() for _ in range(2)]
        for node in nodes:
            self.stops.append(node.stop)
        members = [MemberConfig(url=n.url, route=f"n{i}") for i, n in enumerate(nodes, 1)]
        health = HealthCheckConfig(interval=0.1, timeout=0.3, passes=1, fails=1, slow_start=3.0)
        base = yield self.proxy(members, health, sticky=None)
        a = self.balancer.members[0]
        nodes[0].fault = Fault.NO_CPONG
        yield self.wait_for(lambda: a.in_error, 3)
        nodes[0].fault = Fault.NONE
        yield self.wait_for(lambda: not a.in_error, 3)
        came_back = time.monotonic()
        self.assertIsNotNone(a.ramp_since)

        @defer.inlineCallbacks
        def burst(count: int) -> Any:
            before = len(nodes[0].requests)
            for _ in range(count):
                code, _, _ = yield self.get(base + "/x")
                self.assertEqual(code, 200)
            return len(nodes[0].requests) - before

        early = yield burst(40)
        early_seconds = time.monotonic() - came_back
        # Over the first part of the ramp its weight averaged at most early_seconds / 3 s.
        self.assertLess(early_seconds, 1.5, "the machine is too slow for this measurement")
        self.assertLessEqual(early, 40 * (early_seconds / 3.0) + 2)
        # The ramp ends at the first pick (or snapshot) after slow_start seconds.
        yield self.wait_for(lambda: self.balancer.snapshot()["members"][0]["ramp_since"] is None, 5)
        late = yield burst(40)
        self.assertEqual(late, 20)
