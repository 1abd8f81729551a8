"""
Helpers for the robustness tests: a proxy on real loopback sockets in front of
L{FaultyAJPMember}s or demo nodes, an HTTP client that reports aborted
responses instead of hiding them, raw sockets, and waiting for a condition.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from twisted_lb.config.model import (
    BalancerConfig,
    LimitsConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.service import ProxyService
from twisted_lb.testing import body_pattern

from ..integration.support import BytesProducer

#: Member settings that keep the suites fast: a stalled member costs 1 s.
FAST = {"timeout": 1.0, "ping": 0.5, "connectiontimeout": 1.0}


@attrs.define
class Result:
    """
    What a client got.

    @ivar status: the status code, or C{None} if no response arrived.
    @ivar body: the body bytes read (possibly incomplete).
    @ivar error: why the response was incomplete or missing, or C{None} for
        a complete response.
    """

    status: int | None
    headers: Headers | None
    body: bytes
    error: Failure | None
    seconds: float

    @property
    def complete(self) -> bool:
        return self.error is None


class Client:
    """An Agent with its own pool; aborted responses come back as errors."""

    def __init__(self, persistent: bool = True) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=persistent)
        self.agent = Agent(reactor, pool=self.pool)

    async def fetch(
        self,
        url: str,
        method: bytes = b"GET",
        headers: dict[bytes, list[bytes]] | None = None,
        body: bytes | None = None,
    ) -> Result:
        started = time.monotonic()
        try:
            response = await self.agent.request(
                method,
                url.encode("ascii"),
                Headers(headers or {}),
                BytesProducer(body) if body is not None else None,
            )
        except Exception:
            return Result(None, None, b"", Failure(), time.monotonic() - started)
        error = None
        try:
            data = await readBody(response)
        except Exception as e:
            error = Failure()
            partial = getattr(e, "response", b"")
            data = partial if isinstance(partial, bytes) else b""
        return Result(response.code, response.headers, data, error, time.monotonic() - started)

    def close(self) -> defer.Deferred[None]:
        return self.pool.closeCachedConnections()


async def start_proxy(
    members: Sequence[tuple[str, str]],
    member_options: dict[str, Any] | None = None,
    limits: LimitsConfig | None = None,
    **balancer_options: Any,
) -> tuple[ProxyService, str]:
    """
    A proxy on an ephemeral port of 127.0.0.1.

    @param members: C{(url, route)} pairs.
    @param member_options: L{MemberConfig} settings for every member
        (default L{FAST}); a value may be a dict route -> value.
    @param limits: the frontend's limits (default: the model's).
    @return: the running service and its base URL.
    """
    options = dict(FAST)
    options.update(member_options or {})
    configs = []
    for url, route in members:
        own = {
            k: (v.get(route, FAST.get(k)) if isinstance(v, dict) else v) for k, v in options.items()
        }
        own = {k: v for k, v in own.items() if v is not None}
        configs.append(MemberConfig(url=url, route=route, **own))
    balancer_options.setdefault("probe_interval", 0.1)
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1"),),
        balancers=(BalancerConfig("cluster", tuple(configs), **balancer_options),),
        routes=(RouteConfig("/", "cluster"),),
        limits=limits or LimitsConfig(),
    )
    service = ProxyService(config, reactor)
    service.startService()
    port = await service.listening[0]._waitingForPort
    return service, f"http://127.0.0.1:{port.getHost().port}"


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll C{predicate} every 10 ms until it holds or C{timeout} passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await task.deferLater(reactor, 0.01, lambda: None)
    return True


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class LogCapture:
    """Collects the formatted text of every log event while installed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        from twisted.logger import formatEvent

        try:
            self.lines.append(formatEvent(event))
        except Exception:
            pass

    def install(self) -> LogCapture:
        globalLogPublisher.addObserver(self)
        return self

    def remove(self) -> None:
        globalLogPublisher.removeObserver(self)

    def text(self) -> str:
        return "\n".join(self.lines)


def raw_exchange(
    port: int, data: bytes, *, read_timeout: float = 3.0, shutdown: bool = False
) -> defer.Deferred[bytes]:
    """
    Send C{data} on a new TCP connection (in a thread) and read until the
    proxy closes or C{read_timeout} passes without data.
    """

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
            return b"".join(chunks)

    return deferToThread(talk)


class FaultyMemberCase(TestCase):
    """
    The common part of the broken-member suites: a proxy on 127.0.0.1 in
    front of a faulty member (route C{faulty}) and perhaps others, a client,
    captured logs, and the checks every fault ends with.

    Subclasses start their members and call L{start_cluster}; they may
    extend L{assert_connection_dropped}.
    """

    timeout = 20
    #: the size of the faulty member's good answer
    size = 20_000
    faulty: Any

    @defer.inlineCallbacks
    def start_cluster(
        self, members: Sequence[tuple[str, str]], member_options: dict[str, Any] | None = None
    ) -> Any:
        """Start the proxy in front of C{members} (C{(url, route)} pairs) and capture the logs."""
        self.logs = LogCapture().install()
        self.addCleanup(self.logs.remove)
        self.proxy, self.base = yield defer.Deferred.fromCoroutine(
            start_proxy(members, member_options)
        )
        self.addCleanup(self.proxy.stopService)
        self.client = Client()
        self.addCleanup(self.client.close)
        built = self.proxy.balancers["cluster"]
        self.balancer = built.balancer
        self.member = self.balancer.member_by_route("faulty")
        self.pool = built.backends[self.member].pool

    def fetch(self, path: str = "/app", method: bytes = b"GET", headers: Any = None,
            body: bytes | None = None) -> defer.Deferred[Result]:
        return defer.Deferred.fromCoroutine(self.client.fetch(self.base + path, method, headers, body))

    def assert_whole(self, result: Result) -> None:
        """A complete 200 with the faulty member's whole good answer."""
        self.assertEqual(result.status, 200, result.error)
        self.assertTrue(result.complete, result.error)
        self.assertEqual(result.body, body_pattern(self.size))

    def assert_aborted(self, result: Result) -> None:
        """No status, or a started response that visibly failed (and was no other's bytes)."""
        self.assertFalse(result.complete, (result.status, len(result.body)))
        self.assertIn(result.status, (None, 200))
        self.assertEqual(result.body, body_pattern(len(result.body)))

    def assert_logged(self, *words: str) -> None:
        text = self.logs.text()
        for word in words:
            self.assertIn(word, text)

    @defer.inlineCallbacks
    def assert_soon(self, predicate: Callable[[], bool], message: Callable[[], str]) -> Any:
        """
        C{predicate} holds now or within L{wait_until}'s bound; else fail with
        C{message()}.

        The client may have its whole answer (or see its connection cut)
        some reactor turns before the proxy has finished its side of the
        exchange: the member's END_RESPONSE or close still to read, the
        member connection's C{connectionLost} still to run. Counters the
        proxy keeps (in flight, pooled connections) are read once they
        settle, never right after the client's answer.
        """
        ok = yield defer.Deferred.fromCoroutine(wait_until(predicate))
        self.assertTrue(ok, message())

    @defer.inlineCallbacks
    def assert_member_idle(self) -> Any:
        """No request is counted in flight on the faulty member (soon after the answer)."""
        yield self.assert_soon(
            lambda: self.member.in_flight == 0, lambda: f"in_flight is {self.member.in_flight}"
        )

    @defer.inlineCallbacks
    def assert_connection_dropped(self) -> Any:
        """Nothing of the faulty exchange stays open."""
        yield self.assert_soon(
            lambda: self.faulty.open_connections == 0,
            lambda: f"{self.faulty.open_connections} connection(s) still open",
        )

    @defer.inlineCallbacks
    def assert_next_request_fine(self, new_connection: bool = True) -> Any:
        """The member answers well again (readmitted by the prober if it was put in error),
        whole, on a new connection unless told otherwise."""
        if self.member.in_error:
            readmitted = yield defer.Deferred.fromCoroutine(
                wait_until(lambda: not self.member.in_error)
            )
            self.assertTrue(readmitted, "the prober did not readmit the member")
        before = len(self.faulty.requests)
        result = yield self.fetch()
        self.assert_whole(result)
        self.assertEqual(len(self.faulty.requests), before + 1)
        if new_connection:
            self.assertNotEqual(
                self.faulty.requests[-1].connection, self.faulty.requests[-2].connection
            )
        yield self.assert_member_idle()
