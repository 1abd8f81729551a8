"""
The health checker on an in-memory reactor: its one timer, the staggered start of checks, the
check timeout, and what it reports to the balancer.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport

from twisted_lb.ajp import AJPConnection, CPong, Role
from twisted_lb.balancer import Balancer, CheckPolicy, Member
from twisted_lb.config.model import HealthCheckConfig, MemberConfig
from twisted_lb.health import CheckResult, HealthChecker
from twisted_lb.health.checks import CPingCheck


class _Scripted:
    """A check whose results the test gives, one Deferred per run."""

    description = "scripted"

    def __init__(self) -> None:
        self.pending: list[defer.Deferred[CheckResult]] = []

    async def run(self) -> CheckResult:
        d: defer.Deferred[CheckResult] = defer.Deferred()
        self.pending.append(d)
        return await d


def setup(count: int = 2, interval: float = 10.0) -> tuple[
    MemoryReactorClock, Balancer, HealthChecker, list[_Scripted]
]:
    reactor = MemoryReactorClock()
    members = [
        Member(f"m{i}", check_policy=CheckPolicy(interval=interval, passes=1, fails=2))
        for i in range(count)
    ]
    balancer = Balancer("b", members, clock=reactor)
    checker = HealthChecker(balancer, reactor)
    scripted = []
    for member in members:
        checker.watch(
            member, MemberConfig("ajp://127.0.0.1:8009"), HealthCheckConfig(timeout=1.0), None
        )
        checker.checks[member] = s = _Scripted()
        scripted.append(s)
    return reactor, balancer, checker, scripted


def test_staggered_and_one_at_a_time() -> None:
    reactor, balancer, checker, (s0, s1) = setup()
    checker.startService()
    assert (len(s0.pending), len(s1.pending)) == (1, 0)
    # One timer, for the second member's first check, half an interval later.
    # One timer for the next due check (half an interval later), one for the running check's
    # timeout.
    assert sorted(c.getTime() for c in reactor.getDelayedCalls() if c.active()) == [1.0, 5.0]
    reactor.advance(5)
    assert (len(s0.pending), len(s1.pending)) == (1, 1)
    s1.pending[0].callback(CheckResult(True, "fine"))
    reactor.advance(10)  # m0's first check still under way (it timed out at 1 s)
    assert len(s0.pending) == 2
    checker.stopService()
    assert not [c for c in reactor.getDelayedCalls() if c.active()]


def test_timeout_counts_as_failure_and_takes_member_out() -> None:
    reactor, balancer, checker, (s0,) = setup(count=1)
    checker.startService()
    member = balancer.members[0]
    reactor.advance(1.0)
    assert member.check.detail == "no answer within 1 s" and member.check.fails == 1
    assert not member.in_error
    reactor.advance(9.0)
    reactor.advance(1.0)
    assert member.in_error and member.error_reason == "health check failed: no answer within 1 s"
    # The next check comes at the interval and one pass brings it back.
    reactor.advance(9.0)
    s0.pending[-1].callback(CheckResult(True, "CPONG"))
    assert not member.in_error
    checker.stopService()


def test_forget_cancels_and_ignores() -> None:
    reactor, balancer, checker, (s0, _) = setup()
    checker.startService()
    member = balancer.members[0]
    checker.forget(member)
    assert member.check.ok is None
    checker.stopService()


def test_cping_check_on_memory_reactor() -> None:
    """The CPING check connects to the member, sends CPING and passes on CPONG."""
    reactor = MemoryReactorClock()
    check = CPingCheck(reactor, MemberConfig("ajp://127.0.0.1:8009"), timeout=2.0)
    d = defer.Deferred.fromCoroutine(check.run())
    host, port, factory, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("127.0.0.1", 8009, 2.0)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    container = AJPConnection(Role.CONTAINER)
    container.receive_data(transport.value())
    assert type(container.next_event()).__name__ == "CPing"
    proto.dataReceived(container.send(CPong()))
    result = []
    d.addCallback(result.append)
    assert result == [CheckResult(True, "CPONG")]
    assert transport.disconnecting
