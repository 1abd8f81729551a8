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
