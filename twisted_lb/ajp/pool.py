"""
A pool of AJP connections to one member.

Connections are kept after a response whose END_RESPONSE allowed reuse, handed
out most-recently-used first, closed after C{ttl} idle seconds, and checked
with CPING before reuse once they were idle a while (so a connection a
firewall or Tomcat dropped silently costs no user request). A new connection
is checked with CPING too: a member whose kernel accepts connections while the
JVM is hung (stopped, out of threads) is found at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet import error as ierror
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from twisted_lb.errors import AttemptFailed, ConnectFailed, MemberBusy, PingFailed

from .protocol import AJPClientProtocol

__all__ = ["AJPConnectionPool"]

_log = Logger()


class _ProtocolFactory(Factory):
    noisy = False

    def __init__(self, clock: IReactorTime, packet_size: int) -> None:
        self._clock = clock
        self._packet_size = packet_size

    def buildProtocol(self, addr: object) -> AJPClientProtocol:
        return AJPClientProtocol(self._clock, self._packet_size)


class AJPConnectionPool:
    """
    Pooled AJP connections to one C{host:port}.

    @ivar opened: how many connections were made in all (for tests and
        metrics; a reused connection does not count again).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        host: str,
        port: int,
        *,
        packet_size: int = 8192,
        max_connections: int = 256,
        ttl: float = 30.0,
        connect_timeout: float = 5.0,
        ping_timeout: float = 2.0,
        ping_after_idle: float = 3.0,
        acquire_timeout: float | None = None,
        endpoint_factory: Callable[[], object] | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._factory = _ProtocolFactory(reactor, packet_size)
        self._max = max_connections
        self._ttl = ttl
        self._connect_timeout = connect_timeout
        self._ping_timeout = ping_timeout
        self._ping_after_idle = ping_after_idle
        self._acquire_timeout = acquire_timeout if acquire_timeout is not None else connect_timeout
        self._endpoint_factory = endpoint_factory or (
            lambda: HostnameEndpoint(reactor, host, port, timeout=connect_timeout)
        )
        #: idle connections, the least recently released first
        self._idle: list[AJPClientProtocol] = []
        #: when each idle connection was released
        self._idle_since: dict[AJPClientProtocol, float] = {}
        #: the one timer that closes connections idle for ttl seconds
        self._sweeper: IDelayedCall | None = None
        self._open = 0
        self._waiters: deque[defer.Deferred[AJPClientProtocol]] = deque()
        self._closed = False
        self.opened = 0

    @property
    def idle_count(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    @property
    def open_count(self) -> int:
        """Connections open, idle or busy."""
        return self._open

    def take_ready(self) -> AJPClientProtocol | None:
        """
        An idle connection usable at once, or C{None} when there is none or
        the next one must first answer CPING (then use L{acquire}).
        """
        idle = self._idle
        while idle:
            proto = idle[-1]
            if proto.connected and proto.reusable:
                if (
                    self._ping_timeout
                    and self._reactor.seconds() - proto.last_used >= self._ping_after_idle
                ):
                    return None
                idle.pop()
                self._stop_idle_timer(proto)
                return proto
            idle.pop()
            self._stop_idle_timer(proto)
        return None

    async def acquire(self) -> AJPClientProtocol:
        """
        A connection ready for one exchange.

        @raise ConnectFailed: no connection could be made.
        @raise PingFailed: a new connection did not answer CPING.
        @raise MemberBusy: the member's connection cap was reached and none
            came free in time.
        """
        while True:
            proto = self.take_ready()
            if proto is not None:
                return proto
            if not self._idle:
                break
            # take_ready stopped at a live connection due for CPING.
            proto = self._idle.pop()
            self._stop_idle_timer(proto)
            try:
                await proto.cping(self._ping_timeout)
            except AttemptFailed as e:
                _log.info(
                    "pooled connection to {host}:{port} failed CPING ({error}); dropped",
                    host=self._host, port=self._port, error=e,
                )
                proto.abort()
                continue
            return proto
        if self._open >= self._max:
            return await self._wait_for_connection()
        return await self._connect()

    async def _connect(self) -> AJPClientProtocol:
        self._open += 1
        try:
            proto: AJPClientProtocol = await self._endpoint_factory().connect(self._factory)  # type: ignore[attr-defined]
        except (ierror.ConnectError, ierror.TimeoutError, ierror.DNSLookupError, OSError) as e:
            self._open -= 1
            self._wake_waiter()
            raise ConnectFailed(f"cannot connect to {self._host}:{self._port}: {e}") from None
        except BaseException:
            self._open -= 1
            self._wake_waiter()
            raise
        self.opened += 1
        proto.on_lost = self._lost
        if self._ping_timeout:
            try:
                await proto.cping(self._ping_timeout)
            except AttemptFailed as e:
                proto.abort()
                raise PingFailed(
                    f"{self._host}:{self._port} accepted the connection but did not answer CPING: {e}"
                ) from None
        return proto

    def _wait_for_connection(self) -> defer.Deferred[AJPClientProtocol]:
        d: defer.Deferred[AJPClientProtocol] = defer.Deferred()
        self._waiters.append(d)
        timer = self._reactor.callLater(self._acquire_timeout, self._waiter_timed_out, d)  # type: ignore[attr-defined]
        def settled(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        d.addBoth(settled)
        return d

    def _waiter_timed_out(self, d: defer.Deferred[AJPClientProtocol]) -> None:
        if d in self._waiters:
            self._waiters.remove(d)
            d.errback(MemberBusy(f"all {self._max} connections to {self._host}:{self._port} are busy"))

    def _wake_waiter(self) -> None:
        if self._waiters and self._open < self._max and not self._closed:
            d = self._waiters.popleft()
            defer.Deferred.fromCoroutine(self._connect()).chainDeferred(d)

    def release(self, proto: AJPClientProtocol, reusable: bool) -> None:
        """
        Give a connection back after an exchange.

        @param reusable: whether the exchange ended cleanly with reuse allowed.
        """
        if not (reusable and proto.connected and proto.reusable) or self._closed:
            proto.abort()
            return
        if self._waiters:
            self._waiters.popleft().callback(proto)
            return
        self._idle.append(proto)
        self._idle_since[proto] = self._reactor.seconds()
        # One timer for the pool, not one per release: it is armed for the
        # least recently released connection and re-armed by _sweep.
        if self._sweeper is None:
            self._sweeper = self._reactor.callLater(self._ttl, self._sweep)  # type: ignore[attr-defined]

    def _sweep(self) -> None:
        """Close the connections idle for C{ttl} seconds; re-arm for the next."""
        self._sweeper = None
        now = self._reactor.seconds()
        while self._idle:
            proto = self._idle[0]
            due = self._idle_since[proto] + self._ttl
            if due > now + 1e-9:
                self._sweeper = self._reactor.callLater(due - now, self._sweep)  # type: ignore[attr-defined]
                return
            del self._idle[0]
            del self._idle_since[proto]
            proto.abort()

    def _stop_idle_timer(self, proto: AJPClientProtocol) -> None:
        self._idle_since.pop(proto, None)

    def _lost(self, proto: AJPClientProtocol) -> None:
        self._open -= 1
        self._stop_idle_timer(proto)
        if proto in self._idle:
            self._idle.remove(proto)
        self._wake_waiter()

    def close(self) -> None:
        """Close every idle connection and refuse to keep new ones."""
        self._closed = True
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        for proto in list(self._idle):
            self._stop_idle_timer(proto)
            proto.abort()
        self._idle.clear()
        while self._waiters:
            self._waiters.popleft().errback(MemberBusy("pool closed"))
