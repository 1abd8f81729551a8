"""
A pool of AJP connections to one member.

Connections are kept after a response whose END_RESPONSE allowed reuse, handed
out most-recently-used first, closed after C{ttl} idle seconds, and checked
with CPING before reuse once they were idle a while (so a connection a
firewall or Tomcat dropped silently costs no user request). A new connection
is checked with CPING too: a member whose kernel accepts connections while the
JVM is hung (stopped, out of threads) is found at once.

A burst of requests does not open a burst of connections: at most
C{max_opening} connections are being opened (connected and pinged) at once;
the other requests wait in line for the first connection that is released or
opened, up to C{acquire_timeout}, as HAProxy queues requests for a server at
its C{maxconn}. A new connection whose CPING times out while the member
answers on its other connections is a busy member, not a dead one: that
connection is dropped, the request waits in line again (past
C{acquire_timeout}, L{MemberBusy}: another member or 503) and the member
stays in service; only a member silent on every connection is put in error
(L{PingFailed}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet import error as ierror
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.backends.ajp_protocol import AJPClientProtocol
from twisted_lb.errors import AttemptFailed, BackendTimeout, ConnectFailed, MemberBusy, PingFailed

__all__ = ["AJPConnectionPool", "MAX_OPENING", "member_endpoint"]

_log = Logger()

#: Connections being opened at once to one member (per process), by default.
MAX_OPENING = 16


def member_endpoint(reactor: object, host: str, port: int, timeout: float) -> object:
    """
    The client endpoint of a member at C{host:port}: an address is connected
    to as it is; only a name goes through C{HostnameEndpoint}, whose name
    resolution (in a thread) an address does not need. Opening 256
    connections at once to 127.0.0.1 takes about half the time so.
    """
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)  # type: ignore[arg-type]
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)  # type: ignore[arg-type]
    return HostnameEndpoint(reactor, host, port, timeout=timeout)  # type: ignore[arg-type]


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
        max_opening: int = MAX_OPENING,
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
            lambda: member_endpoint(reactor, host, port, connect_timeout)
        )
        #: idle connections, the least recently released first
        self._idle: list[AJPClientProtocol] = []
        #: when each idle connection was released
        self._idle_since: dict[AJPClientProtocol, float] = {}
        #: the one timer that closes connections idle for ttl seconds
        self._sweeper: IDelayedCall | None = None
        self._open = 0
        self._max_opening = max_opening
        #: connections being connected or pinged
        self._opening = 0
        #: open connections (to look for signs of life)
        self._live: set[AJPClientProtocol] = set()
        #: requests waiting for a connection, the oldest first
        self._waiters: deque[defer.Deferred[AJPClientProtocol]] = deque()
        #: waiters a connection is being opened for
        self._owners: set[defer.Deferred[AJPClientProtocol]] = set()
        #: the MemberBusy timers of the other waiters
        self._timers: dict[defer.Deferred[AJPClientProtocol], IDelayedCall] = {}
        #: when each waiter gives up (acquire_timeout after it asked)
        self._deadlines: dict[defer.Deferred[AJPClientProtocol], float] = {}
        #: connections being opened for waiters served meanwhile: each will
        #: serve another waiter, so no new one is opened for that one
        self._spare = 0
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

    @property
    def opening_count(self) -> int:
        """Connections being opened (connected, then pinged) now."""
        return self._opening

    @property
    def waiting_count(self) -> int:
        """Requests waiting for a connection."""
        return len(self._waiters)

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
        @raise MemberBusy: no connection came free within C{acquire_timeout},
            or a new one did not answer CPING while the member answered on
            its other connections.
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
        d: defer.Deferred[AJPClientProtocol] = defer.Deferred()
        self._waiters.append(d)
        self._deadlines[d] = self._reactor.seconds() + self._acquire_timeout
        self._open_for_waiters()
        if not d.called and d not in self._owners:
            self._arm(d)
        return await d

    def _arm(self, d: defer.Deferred[AJPClientProtocol]) -> None:
        """Fail C{d} with L{MemberBusy} at its deadline unless it is served before."""
        left = self._deadlines[d] - self._reactor.seconds()
        self._timers[d] = self._reactor.callLater(max(left, 0), self._waiter_timed_out, d)  # type: ignore[attr-defined]

    def _open_for_waiters(self) -> None:
        """
        Open connections for the oldest waiters that have none being opened,
        within C{max_connections} open and C{max_opening} opening.
        """
        spare = self._spare
        for d in self._waiters:
            if self._open >= self._max or self._opening >= self._max_opening:
                return
            if d in self._owners:
                continue
            if spare:
                spare -= 1
                continue
            self._owners.add(d)
            timer = self._timers.pop(d, None)
            if timer is not None and timer.active():
                timer.cancel()
            self._open += 1
            self._opening += 1
            defer.Deferred.fromCoroutine(self._connect()).addBoth(self._opened, d)
            # _opened may have run already (and changed _waiters): look again.
            return self._open_for_waiters()

    def _opened(self, result: AJPClientProtocol | Failure, d: defer.Deferred[AJPClientProtocol]) -> None:
        """
        A connection opened for C{d} is ready, or failed: C{d} gets it when it
        still waits; otherwise the connection serves the next waiter (or goes
        idle) and a failure is only logged.
        """
        self._opening -= 1
        waiting = not d.called
        if not waiting:
            self._spare -= 1
        elif (
            isinstance(result, Failure)
            and result.check(MemberBusy)
            and self._reactor.seconds() < self._deadlines[d]
        ):
            # The member is busy, not down: the request waits in line again
            # for a connection it frees, until its deadline.
            self._owners.remove(d)
            self._arm(d)
            self._open_for_waiters()
            return
        else:
            self._owners.remove(d)
            self._waiters.remove(d)
            del self._deadlines[d]
        if isinstance(result, Failure):
            if waiting:
                d.errback(result)
            elif not result.check(MemberBusy):
                # (A busy member's slow CPING, with nobody waiting on it, is
                # not worth a line per connection in a burst.)
                _log.info(
                    "a connection to {host}:{port} opened for a request served meanwhile "
                    "failed: {error}",
                    host=self._host, port=self._port, error=result.value,
                )
        elif waiting:
            d.callback(result)
        elif self._closed:
            result.abort()
        else:
            self._keep(result)
        self._open_for_waiters()

    async def _connect(self) -> AJPClientProtocol:
        """A new connection that answered CPING (counted in C{_open} by the caller)."""
        try:
            proto: AJPClientProtocol = await self._endpoint_factory().connect(self._factory)  # type: ignore[attr-defined]
        except (ierror.ConnectError, ierror.TimeoutError, ierror.DNSLookupError, OSError) as e:
            self._open -= 1
            raise ConnectFailed(f"cannot connect to {self._host}:{self._port}: {e}") from None
        except BaseException:
            self._open -= 1
            raise
        self.opened += 1
        self._live.add(proto)
        proto.on_lost = self._lost
        if self._ping_timeout:
            sent = self._reactor.seconds()
            try:
                await proto.cping(self._ping_timeout)
            except AttemptFailed as e:
                proto.abort()
                if isinstance(e, BackendTimeout) and self._alive_elsewhere(proto, sent):
                    raise MemberBusy(
                        f"a new connection to {self._host}:{self._port} did not answer CPING "
                        f"within {self._ping_timeout:g} s while the member answered on its "
                        "other connections: busy, not down"
                    ) from None
                raise PingFailed(
                    f"{self._host}:{self._port} accepted the connection but did not answer CPING: {e}"
                ) from None
        return proto

    def _alive_elsewhere(self, proto: AJPClientProtocol, since: float) -> bool:
        """
        Whether the member sent bytes on another connection than C{proto}
        since C{since} or within the ping timeout before it.
        """
        after = since - self._ping_timeout
        return any(p is not proto and p.last_received >= after for p in self._live)

    def _resolved(self, d: defer.Deferred[AJPClientProtocol]) -> None:
        """
        C{d} leaves the line by other means than its own opening
        connection: its timer stops; a connection opened for it is spare.
        """
        timer = self._timers.pop(d, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._deadlines.pop(d, None)
        if d in self._owners:
            self._owners.remove(d)
            self._spare += 1

    def _waiter_timed_out(self, d: defer.Deferred[AJPClientProtocol]) -> None:
        self._timers.pop(d, None)
        self._deadlines.pop(d, None)
        if not d.called:
            self._waiters.remove(d)
            d.errback(
                MemberBusy(
                    f"no connection to {self._host}:{self._port} came free within "
                    f"{self._acquire_timeout:g} s ({self._open} open, at most {self._max})"
                )
            )

    def _serve_first_waiter(self, proto: AJPClientProtocol) -> bool:
        """Hand C{proto} to the oldest waiter; C{False} when nobody waits."""
        if not self._waiters:
            return False
        d = self._waiters.popleft()
        self._resolved(d)
        d.callback(proto)
        return True

    def release(self, proto: AJPClientProtocol, reusable: bool) -> None:
        """
        Give a connection back after an exchange.

        @param reusable: whether the exchange ended cleanly with reuse allowed.
        """
        if not (reusable and proto.connected and proto.reusable) or self._closed:
            proto.abort()
            return
        self._keep(proto)

    def _keep(self, proto: AJPClientProtocol) -> None:
        """A ready connection: to the oldest waiter, or idle in the pool."""
        if self._serve_first_waiter(proto):
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
        self._live.discard(proto)
        self._stop_idle_timer(proto)
        if proto in self._idle:
            self._idle.remove(proto)
        if not self._closed:
            self._open_for_waiters()

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
            d = self._waiters.popleft()
            self._resolved(d)
            d.errback(MemberBusy("pool closed"))
