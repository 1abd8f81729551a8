"""
Tests for L{twisted_lb.backends.ajp_pool.AJPConnectionPool} on a L{MemoryReactorClock}.

The pool's C{endpoint_factory} returns a L{FakeEndpoint} whose C{connect}
hands back an L{AJPClientProtocol} on a L{StringTransport}, and each member
connection is played by a CONTAINER-role L{AJPConnection}.  This was chosen
over wiring a real L{AJPContainerProtocol} with C{twisted.test.iosim}: every
CPING the pool sends stays visible, and a test can withhold the CPONG (a hung
JVM) or drop one connection without any pump.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.ajp.helpers import drain
from twisted_lb.ajp import (
    AJPConnection,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    Role,
    SendBodyChunk,
    SendHeaders,
)
from twisted_lb.backends.ajp_pool import AJPConnectionPool
from twisted_lb.backends.ajp_protocol import AJPClientProtocol
from twisted_lb.errors import ConnectFailed, MemberBusy, PingFailed

TTL = 30.0
PING_TIMEOUT = 2.0
PING_AFTER_IDLE = 3.0
ACQUIRE_TIMEOUT = 5.0


class FakeTransport(StringTransport):
    """
    A L{StringTransport} that records L{abortConnection} and, like a TCP
    transport, reports C{connectionLost} on the next turn of the clock.
    """

    def __init__(self, clock: MemoryReactorClock, protocol: AJPClientProtocol) -> None:
        super().__init__(lenient=True)
        self.aborted = False
        self.protocol = protocol
        self._clock = clock

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()
        if self.connected:
            self.connected = False
            self._clock.callLater(0, self.protocol.connectionLost, Failure(ConnectionAborted()))


class Member:
    """
    One connection as the member sees it.

    @ivar proto: the pool's protocol on this connection.
    @ivar transport: its transport.
    @ivar codec: the member's CONTAINER-role codec.
    """

    def __init__(self, proto: AJPClientProtocol, transport: FakeTransport) -> None:
        self.proto = proto
        self.transport = transport
        self.codec = AJPConnection(Role.CONTAINER)

    def received(self) -> list[object]:
        """The events decoded from what the pool wrote since the last call."""
        data = self.transport.value()
        if data:  # b"" would mean end of file
            self.codec.receive_data(data)
        self.transport.clear()
        return drain(self.codec)

    def answer(self, *events: object) -> None:
        """Send C{events} to the pool's protocol."""
        self.proto.dataReceived(b"".join(self.codec.send(e) for e in events))  # type: ignore[arg-type]

    def pong(self) -> None:
        """Answer the pending CPING."""
        assert self.received() == [CPing()]
        self.answer(CPong())

    def close(self) -> None:
        """Close the connection from the member's side."""
        self.transport.connected = False
        self.proto.connectionLost(Failure(ConnectionDone()))


class FakeEndpoint:
    """
    An endpoint whose connections are L{Member}s.

    @ivar members: every connection made, in order.
    @ivar error: when set, C{connect} fails with it.
    """

    def __init__(self, clock: MemoryReactorClock) -> None:
        self._clock = clock
        self.members: list[Member] = []
        self.error: Exception | None = None

    def connect(self, factory: Factory) -> defer.Deferred[AJPClientProtocol]:
        if self.error is not None:
            return defer.fail(self.error)
        proto = factory.buildProtocol(None)
        transport = FakeTransport(self._clock, proto)
        proto.makeConnection(transport)
        self.members.append(Member(proto, transport))
        return defer.succeed(proto)


class _Sink:
    """A response sink that keeps nothing."""

    started = False

    def start(self, status: int, headers: object) -> None:
        self.started = True

    def write(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        pass

    def register_producer(self, producer: object) -> None:
        pass

    def unregister_producer(self) -> None:
        pass

    def on_client_gone(self, callback: object) -> None:
        pass


class PoolTestCase(SynchronousTestCase):
    """Common set-up: a pool on a memory reactor and a fake endpoint."""

    max_connections = 4

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.endpoint = FakeEndpoint(self.reactor)
        self.pool = AJPConnectionPool(
            self.reactor,
            "tomcat.example",
            8009,
            max_connections=self.max_connections,
            ttl=TTL,
            ping_timeout=PING_TIMEOUT,
            ping_after_idle=PING_AFTER_IDLE,
            acquire_timeout=ACQUIRE_TIMEOUT,
            endpoint_factory=lambda: self.endpoint,
        )

    def acquire(self) -> defer.Deferred[AJPClientProtocol]:
        return defer.Deferred.fromCoroutine(self.pool.acquire())

    def connected(self) -> Member:
        """Acquire a new connection, answer its CPING and return its member."""
        d = self.acquire()
        member = self.endpoint.members[-1]
        member.pong()
        assert self.successResultOf(d) is member.proto
        return member

    def exchange(self, member: Member, reuse: bool = True) -> bool:
        """Run one GET over C{member}'s connection; return whether it may be reused."""
        d = member.proto.request(ForwardRequest(b"GET", b"/"), None, 0, _Sink(), 10.0)
        assert [type(e) for e in member.received()] == [ForwardRequest]
        member.answer(SendHeaders(200, b"200", ()), EndResponse(reuse))
        if reuse:
            member.codec.start_next_cycle()
        return self.successResultOf(d)

    def pooled(self) -> Member:
        """A connection that served one request and went back to the pool."""
        member = self.connected()
        self.pool.release(member.proto, self.exchange(member))
        assert self.pool.idle_count == 1
        return member


class NewConnectionTests(PoolTestCase):
    """Connections the pool makes."""

    def test_new_connection_pinged(self) -> None:
        """A new connection is handed out only after it answered CPING."""
        d = self.acquire()
        assert len(self.endpoint.members) == 1
        member = self.endpoint.members[0]
        assert member.received() == [CPing()]
        self.assertNoResult(d)
        member.answer(CPong())
        assert self.successResultOf(d) is member.proto
        assert self.pool.opened == 1
        assert self.pool.open_count == 1
        assert self.pool.idle_count == 0

    def test_no_cpong(self) -> None:
        """A new connection that does not answer CPING fails with PingFailed and is closed."""
        d = self.acquire()
        member = self.endpoint.members[0]
        self.reactor.advance(PING_TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        failure = self.failureResultOf(d, PingFailed)
        assert failure.value.marks_member_down
        assert not failure.value.reached_application
        assert member.transport.aborted
        assert self.pool.open_count == 0

    def test_connect_refused(self) -> None:
        """A refused connection fails with ConnectFailed and leaves no count behind."""
        self.endpoint.error = ConnectionRefusedError()
        failure = self.failureResultOf(self.acquire(), ConnectFailed)
        assert failure.value.status == 503
        assert self.pool.open_count == 0
        assert self.pool.opened == 0

    def test_no_ping(self) -> None:
        """With ping_timeout 0 a new connection is handed out without CPING."""
        self.pool = AJPConnectionPool(
            self.reactor,
            "tomcat.example",
            8009,
            ping_timeout=0,
            endpoint_factory=lambda: self.endpoint,
        )
        proto = self.successResultOf(self.acquire())
        assert self.endpoint.members[0].transport.value() == b""
        assert proto.connected


class ReuseTests(PoolTestCase):
    """Connections going back to the pool and out again."""

    def test_reuse_recent(self) -> None:
        """A connection idle less than ping_after_idle is handed out again without CPING."""
        member = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE - 0.5)
        assert self.successResultOf(self.acquire()) is member.proto
        assert member.transport.value() == b""
        assert self.pool.opened == 1
        assert len(self.endpoint.members) == 1
        assert self.pool.idle_count == 0

    def test_reuse_after_idle_pings(self) -> None:
        """A connection idle ping_after_idle seconds or more is checked with CPING first."""
        member = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE)
        d = self.acquire()
        self.assertNoResult(d)
        member.pong()
        assert self.successResultOf(d) is member.proto
        assert self.pool.opened == 1

    def test_failed_ping_replaced(self) -> None:
        """A pooled connection failing its CPING is dropped and a new one made, silently."""
        old = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE)
        d = self.acquire()
        assert old.received() == [CPing()]
        self.reactor.advance(PING_TIMEOUT)
        assert old.transport.aborted
        self.assertNoResult(d)
        assert len(self.endpoint.members) == 2
        new = self.endpoint.members[1]
        new.pong()
        assert self.successResultOf(d) is new.proto
        assert self.pool.opened == 2
        assert self.pool.open_count == 1

    def test_closed_during_ping_replaced(self) -> None:
        """A pooled connection the member closes during its CPING is replaced silently."""
        old = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE)
        d = self.acquire()
        old.close()
        new = self.endpoint.members[1]
        new.pong()
        assert self.successResultOf(d) is new.proto
        assert self.pool.open_count == 1

    def test_take_ready(self) -> None:
        """take_ready hands out a recent idle connection at once, without a coroutine or CPING."""
        assert self.pool.take_ready() is None
        member = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE - 0.5)
        assert self.pool.take_ready() is member.proto
        assert member.transport.value() == b""
        assert self.pool.idle_count == 0
        self.reactor.advance(TTL * 2)
        assert not member.transport.aborted

    def test_take_ready_leaves_a_connection_due_for_cping(self) -> None:
        """A connection idle long enough to need CPING stays for acquire(), which pings it."""
        member = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE)
        assert self.pool.take_ready() is None
        assert self.pool.idle_count == 1
        d = self.acquire()
        member.pong()
        assert self.successResultOf(d) is member.proto

    def test_take_ready_skips_dead_connections(self) -> None:
        """Connections that died while idle are dropped, not handed out."""
        a, b = self.connected(), self.connected()
        self.pool.release(a.proto, self.exchange(a))
        self.pool.release(b.proto, self.exchange(b))
        b.proto.reusable = False
        assert self.pool.take_ready() is a.proto
        assert self.pool.idle_count == 0

    def test_release_not_reusable(self) -> None:
        """A connection released as not reusable is closed, not pooled."""
        member = self.connected()
        reusable = self.exchange(member, reuse=False)
        assert reusable is False
        self.pool.release(member.proto, reusable)
        assert member.transport.aborted
        assert self.pool.idle_count == 0
        self.reactor.advance(0)
        assert self.pool.open_count == 0

    def test_ttl(self) -> None:
        """An idle connection is closed after ttl seconds."""
        member = self.pooled()
        self.reactor.advance(TTL - 0.1)
        assert not member.transport.aborted
        self.reactor.advance(0.1)
        assert member.transport.aborted
        assert self.pool.idle_count == 0
        assert self.pool.open_count == 0

    def test_ttl_timer_stops_on_reuse(self) -> None:
        """A connection taken from the pool is not closed by its old ttl timer."""
        member = self.pooled()
        self.successResultOf(self.acquire())
        self.reactor.advance(TTL * 2)
        assert not member.transport.aborted

    def test_lost_while_idle(self) -> None:
        """A connection the member closes while idle leaves the pool."""
        member = self.pooled()
        assert self.pool.open_count == 1
        member.close()
        assert self.pool.idle_count == 0
        assert self.pool.open_count == 0
        d = self.acquire()
        self.endpoint.members[1].pong()
        assert self.successResultOf(d) is self.endpoint.members[1].proto

    def test_most_recent_first(self) -> None:
        """The most recently released connection is handed out first."""
        a, b = self.connected(), self.connected()
        self.pool.release(a.proto, self.exchange(a))
        self.pool.release(b.proto, self.exchange(b))
        assert self.successResultOf(self.acquire()) is b.proto

    def test_close(self) -> None:
        """close() closes idle connections and later releases."""
        busy = self.connected()
        idle = self.pooled()
        self.pool.close()
        assert idle.transport.aborted
        assert self.pool.idle_count == 0
        self.pool.release(busy.proto, self.exchange(busy))
        assert busy.transport.aborted
        self.reactor.advance(0)
        assert self.pool.open_count == 0


class CapTests(PoolTestCase):
    """The per-member connection cap."""

    max_connections = 1

    def test_waits_for_release(self) -> None:
        """At the cap an acquire waits and gets the connection released first."""
        member = self.connected()
        d = self.acquire()
        self.assertNoResult(d)
        self.pool.release(member.proto, self.exchange(member))
        assert self.successResultOf(d) is member.proto
        assert self.pool.opened == 1
        assert self.pool.idle_count == 0

    def test_waits_for_close(self) -> None:
        """At the cap a waiter gets a new connection once a busy one is closed."""
        member = self.connected()
        d = self.acquire()
        self.pool.release(member.proto, self.exchange(member, reuse=False))
        self.reactor.advance(0)
        self.assertNoResult(d)
        new = self.endpoint.members[1]
        new.pong()
        assert self.successResultOf(d) is new.proto
        assert self.pool.open_count == 1

    def test_waiter_times_out(self) -> None:
        """A waiter that gets no connection within acquire_timeout fails with MemberBusy."""
        member = self.connected()
        d = self.acquire()
        self.reactor.advance(ACQUIRE_TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        failure = self.failureResultOf(d, MemberBusy)
        assert not failure.value.reached_application
        self.pool.release(member.proto, self.exchange(member))
        assert self.pool.idle_count == 1

    def test_close_fails_waiters(self) -> None:
        """close() fails the waiters with MemberBusy."""
        self.connected()
        d = self.acquire()
        self.pool.close()
        self.failureResultOf(d, MemberBusy)

    def test_failed_ping_replaced_at_cap(self) -> None:
        """At the cap a pooled connection failing its CPING is still replaced silently."""
        old = self.pooled()
        self.reactor.advance(PING_AFTER_IDLE)
        d = self.acquire()
        self.reactor.advance(PING_TIMEOUT)
        assert old.transport.aborted
        new = self.endpoint.members[1]
        new.pong()
        assert self.successResultOf(d) is new.proto
        assert self.pool.open_count == 1


class _BurstPool(PoolTestCase):
    """A pool that opens at most two connections at once."""

    max_connections = 50

    def setUp(self) -> None:
        super().setUp()
        self.pool = AJPConnectionPool(
            self.reactor,
            "tomcat.example",
            8009,
            max_connections=self.max_connections,
            ping_timeout=PING_TIMEOUT,
            acquire_timeout=ACQUIRE_TIMEOUT,
            endpoint_factory=lambda: self.endpoint,
            max_opening=2,
        )


class BurstTests(_BurstPool):
    """A burst of requests: connections opened a few at a time, slow CPINGs of a busy member."""

    def test_opening_is_bounded_and_the_rest_wait_in_line(self) -> None:
        """Five requests at once: two connections opening, the others wait, served in order."""
        waiting = [self.acquire() for _ in range(5)]
        assert len(self.endpoint.members) == 2
        assert (self.pool.opening_count, self.pool.waiting_count) == (2, 5)
        first, second = self.endpoint.members
        first.pong()
        assert self.successResultOf(waiting[0]) is first.proto
        # The place it left is given to the next request without a connection.
        assert len(self.endpoint.members) == 3
        second.pong()
        assert self.successResultOf(waiting[1]) is second.proto
        # A released connection serves the oldest waiter before its own opens.
        self.pool.release(first.proto, self.exchange(first))
        assert self.successResultOf(waiting[2]) is first.proto
        for member in self.endpoint.members[2:]:
            member.pong()
        for d in waiting[3:]:
            self.successResultOf(d)
        # The connection opened for the request a release served went to the next one.
        assert self.pool.opened == 4
        assert self.pool.waiting_count == 0
        assert self.pool.opening_count == 0

    def test_connection_opened_for_a_request_served_meanwhile_goes_idle(self) -> None:
        """A request served by a release before its CPONG: its new connection is kept idle."""
        busy = self.connected()
        d = self.acquire()
        new = self.endpoint.members[1]
        self.pool.release(busy.proto, self.exchange(busy))
        assert self.successResultOf(d) is busy.proto
        new.pong()
        assert self.pool.idle_count == 1
        assert self.pool.take_ready() is new.proto

    def test_slow_cping_while_the_member_answers_elsewhere_is_busy_not_down(self) -> None:
        """
        A new connection's CPING times out while another connection of the
        member received bytes within the ping timeout: the connection is
        dropped, the request waits in line again and gets the first
        connection the member frees; nothing puts the member in error.
        """
        busy = self.connected()
        d = self.acquire()
        slow = self.endpoint.members[1]
        assert slow.received() == [CPing()]
        self.reactor.advance(PING_TIMEOUT / 2)
        # The member answers on its other connection meanwhile.
        request = busy.proto.request(ForwardRequest(b"GET", b"/"), None, 0, _Sink(), 10.0)
        busy.received()
        busy.answer(SendHeaders(200, b"200", ()))
        self.reactor.advance(PING_TIMEOUT / 2)
        assert slow.transport.aborted
        self.assertNoResult(d)
        assert self.pool.waiting_count == 1
        busy.answer(EndResponse(True))
        busy.codec.start_next_cycle()
        self.pool.release(busy.proto, self.successResultOf(request))
        assert self.successResultOf(d) is busy.proto
        assert self.pool.waiting_count == 0

    def test_busy_member_waits_at_most_acquire_timeout(self) -> None:
        """
        New connections that never answer CPING while the member keeps
        answering on another: the request gives up with MemberBusy (503,
        retried elsewhere, the member not put in error) after acquire_timeout.
        """
        busy = self.connected()
        request = busy.proto.request(ForwardRequest(b"GET", b"/"), None, 0, _Sink(), 60.0)
        busy.received()
        busy.answer(SendHeaders(200, b"200", ()))
        d = self.acquire()
        elapsed = 0.0
        while not d.called and elapsed < ACQUIRE_TIMEOUT * 3:
            # A body chunk on the busy connection every half ping timeout.
            busy.answer(SendBodyChunk(b"x"))
            self.reactor.advance(PING_TIMEOUT / 2)
            elapsed += PING_TIMEOUT / 2
        failure = self.failureResultOf(d, MemberBusy)
        assert not failure.value.marks_member_down
        assert not failure.value.reached_application
        assert ACQUIRE_TIMEOUT <= elapsed <= ACQUIRE_TIMEOUT + 2 * PING_TIMEOUT
        assert len(self.endpoint.members) > 2  # it tried new connections meanwhile
        assert self.pool.waiting_count == 0
        self.assertNoResult(request)

    def test_slow_cping_with_no_sign_of_life_is_ping_failed(self) -> None:
        """Nothing from the member on any connection during the CPING: PingFailed, member down."""
        self.connected()
        self.reactor.advance(PING_TIMEOUT * 3)
        d = self.acquire()
        self.reactor.advance(PING_TIMEOUT)
        failure = self.failureResultOf(d, PingFailed)
        assert failure.value.marks_member_down

    def test_waiter_without_an_opening_connection_times_out_busy(self) -> None:
        """At the opening bound a waiter gets MemberBusy after acquire_timeout if nothing frees."""
        owners = [self.acquire(), self.acquire()]
        third = self.acquire()
        self.reactor.advance(ACQUIRE_TIMEOUT)
        # The two opening connections never answered: PingFailed for their owners.
        for d in owners:
            self.failureResultOf(d, PingFailed)
        # The third got its own opening connection when a place freed; it may still be pending.
        if not third.called:
            self.reactor.advance(PING_TIMEOUT)
        self.failureResultOf(third)
        assert self.pool.waiting_count == 0


class _RandomBurst:
    """Random acquires, releases, CPONGs, silences, closes and clock turns on one pool."""

    def __init__(self, case: _BurstPool, seed: int) -> None:
        import random

        self.case = case
        self.random = random.Random(seed)
        self.waiting: list[defer.Deferred[AJPClientProtocol]] = []
        self.held: list[AJPClientProtocol] = []
        #: how acquires ended, by result
        self.outcomes: dict[str, int] = {}

    def step(self) -> None:
        case, pool, rnd = self.case, self.case.pool, self.random
        members = [m for m in case.endpoint.members if m.transport.connected]
        choice = rnd.randrange(6)
        if choice == 0:
            self.waiting.append(case.acquire())
        elif choice == 1 and members:
            member = rnd.choice(members)
            if member.transport.value():
                member.pong()
        elif choice == 2 and self.held:
            proto = self.held.pop(rnd.randrange(len(self.held)))
            pool.release(proto, rnd.random() < 0.8)
        elif choice == 3 and members:
            rnd.choice(members).close()
        else:
            case.reactor.advance(rnd.choice([0, 0.1, PING_TIMEOUT / 2, PING_TIMEOUT]))
        for d in list(self.waiting):
            if d.called:
                self.waiting.remove(d)
                outcome: list[object] = []
                d.addBoth(outcome.append)
                if isinstance(outcome[0], AJPClientProtocol):
                    self.held.append(outcome[0])
                    self.outcomes["served"] = self.outcomes.get("served", 0) + 1
                else:
                    name = type(outcome[0].value).__name__  # type: ignore[attr-defined]
                    self.outcomes[name] = self.outcomes.get(name, 0) + 1
        self.check()

    def check(self) -> None:
        pool = self.case.pool
        assert pool._opening >= 0 and pool._spare >= 0
        assert len(pool._owners) + pool._spare == pool._opening
        assert pool._owners <= set(pool._waiters)
        assert all(not d.called for d in pool._waiters)
        assert set(pool._timers) <= set(pool._waiters)
        assert set(pool._deadlines) == set(pool._waiters)
        assert pool._opening <= 2 and pool.open_count <= _BurstPool.max_connections
        assert len(set(self.held)) == len(self.held)
        assert not set(self.held) & set(pool._idle)


class RandomBurstTests(_BurstPool):
    """The pool's bookkeeping holds whatever happens in whatever order."""

    def test_random_sequences(self) -> None:
        outcomes: dict[str, int] = {}
        for seed in range(40):
            self.setUp()
            burst = _RandomBurst(self, seed)
            for _ in range(300):
                burst.step()
            # Whatever is still waiting ends by its deadline.
            self.reactor.advance(ACQUIRE_TIMEOUT + PING_TIMEOUT * 2)
            for member in self.endpoint.members:
                if member.transport.connected and member.transport.value():
                    member.pong()
            self.reactor.advance(ACQUIRE_TIMEOUT + PING_TIMEOUT * 2)
            assert self.pool.waiting_count == 0, seed
            assert self.pool.opening_count == 0, seed
            for d in burst.waiting:
                assert d.called, seed
                d.addErrback(lambda f: None)
            for name, count in burst.outcomes.items():
                outcomes[name] = outcomes.get(name, 0) + count
        # Every way an acquire ends was taken.
        assert {"served", "MemberBusy", "PingFailed"} <= set(outcomes), outcomes


def test_member_endpoint_connects_to_addresses_directly() -> None:
    """An address needs no name resolution (no thread); a name goes through HostnameEndpoint."""
    from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint

    from twisted_lb.backends.ajp_pool import member_endpoint

    reactor = MemoryReactorClock()
    assert isinstance(member_endpoint(reactor, "127.0.0.1", 8009, 1.0), TCP4ClientEndpoint)
    assert isinstance(member_endpoint(reactor, "::1", 8009, 1.0), TCP6ClientEndpoint)
    assert isinstance(member_endpoint(reactor, "tomcat.example", 8009, 1.0), HostnameEndpoint)
    four = member_endpoint(reactor, "127.0.0.1", 8009, 2.5)
    four.connect(Factory())  # type: ignore[attr-defined]
    host, port, _, timeout, _ = reactor.tcpClients[-1]
    assert (host, port, timeout) == ("127.0.0.1", 8009, 2.5)
