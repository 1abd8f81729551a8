"""
Tests for active health checks and slow start in L{twisted_lb.balancer.Balancer}: when checks
are due (staggered, one at a time per member), rise/fall counting, and weights ramping with the
clock.
"""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.internet.task import Clock

from twisted_lb.balancer import Balancer, CheckPolicy, HealthChange, LBMethod, Member, MemberStatus
from twisted_lb.balancer.health import ramp_weight, stagger


def checked(name: str, **policy: object) -> Member:
    """A member with a check policy (interval 10 s, passes 2, fails 3 unless said)."""
    settings: dict[str, object] = {"interval": 10.0, "passes": 2, "fails": 3}
    settings.update(policy)
    return Member(name, check_policy=CheckPolicy(**settings))  # type: ignore[arg-type]


def make(*members: Member, **kwargs: object) -> tuple[Balancer, Clock]:
    clock = Clock()
    clock.advance(1000)
    return Balancer("cluster", members, clock=clock, **kwargs), clock  # type: ignore[arg-type]


def run_due(b: Balancer, results: dict[str, bool]) -> list[str]:
    """Start and finish every due check with the given result per name; the names checked."""
    done = []
    for m in b.checks_due():
        b.check_started(m)
        b.record_check(m, results.get(m.name, True), "seen")
        done.append(m.name)
    return done


# -- policy ----------------------------------------------------------------------------------


def test_policy_defaults_and_validation() -> None:
    """Defaults are HAProxy's rise 2 / fall 3; counts and intervals are checked."""
    policy = CheckPolicy()
    assert (policy.interval, policy.passes, policy.fails, policy.down_interval) == (5.0, 2, 3, 5.0)
    assert CheckPolicy(interval=2.0).down_interval == 2.0
    for bad in ({"interval": 0}, {"passes": 0}, {"fails": 1.5}, {"down_interval": -1},
                {"interval": float("inf")}, {"passes": True}):
        with pytest.raises(ValueError):
            CheckPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Member("a", slow_start=-1)


# -- scheduling ------------------------------------------------------------------------------


def test_stagger_spreads_over_one_interval() -> None:
    assert stagger(4, 10.0) == [0.0, 2.5, 5.0, 7.5]
    assert stagger(1, 3.0) == [0.0]


def test_first_checks_are_staggered() -> None:
    """Four members with a 10 s interval are first checked 2.5 s apart, the first at once."""
    b, clock = make(*(checked(n) for n in "abcd"))
    seen: list[tuple[float, str]] = []
    for _ in range(40):
        for m in b.checks_due():
            b.check_started(m)
            seen.append((clock.seconds() - 1000, m.name))
            b.record_check(m, True)
        clock.advance(0.5)
    assert seen[:4] == [(0.0, "a"), (2.5, "b"), (5.0, "c"), (7.5, "d")]
    # and every one of them again one interval later, still spread
    assert seen[4:8] == [(10.0, "a"), (12.5, "b"), (15.0, "c"), (17.5, "d")]


def test_unchecked_members_are_never_due() -> None:
    b, clock = make(Member("plain"), checked("c"))
    assert [m.name for m in b.checks_due()] == ["c"]
    assert b.next_check_at() == 1000.0
    b2, _ = make(Member("plain"))
    assert b2.checks_due() == [] and b2.next_check_at() is None


def test_never_two_checks_of_one_member() -> None:
    """A check under way is not due again, however long it takes."""
    b, clock = make(checked("a", interval=1.0))
    (a,) = b.checks_due()
    b.check_started(a)
    clock.advance(5)
    assert b.checks_due() == []
    assert b.next_check_at() is None
    assert a.check.running
    b.record_check(a, True, "HTTP 200")
    # It took longer than its interval: the next one is due now.
    assert b.checks_due() == [a]
    assert a.check.duration == 5.0


def test_next_check_one_interval_after_the_start() -> None:
    b, clock = make(checked("a", interval=10.0))
    (a,) = b.checks_due()
    b.check_started(a)
    clock.advance(0.25)
    b.record_check(a, True)
    assert a.check.next_at == 1010.0
    assert b.next_check_at() == 1010.0


# -- rise and fall ---------------------------------------------------------------------------


def test_goes_down_after_fails_in_a_row() -> None:
    """Two failures, a pass, then three failures: only the third in a row takes it out."""
    b, clock = make(checked("a", fails=3), Member("b"))
    a = b.member_by_name("a")
    assert a is not None
    changes = []
    for ok in (False, False, True, False, False):
        b.check_started(a)
        changes.append(b.record_check(a, ok, "HTTP 500" if not ok else "HTTP 200"))
        assert not a.in_error
    b.check_started(a)
    assert b.record_check(a, False, "HTTP 500") is HealthChange.DOWN
    assert changes == [None] * 5
    assert a.in_error and a.error_reason == "health check failed: HTTP 500"
    assert a.errors == 0  # checks are not failed requests
    # No user request goes to it any more.
    assert {b.pick().member.name for _ in range(10)} == {"b"}
    assert (a.check.fails, a.check.passes, a.check.ok, a.check.detail) == (3, 0, False, "HTTP 500")


def test_comes_back_after_passes_in_a_row() -> None:
    b, clock = make(checked("a", passes=2, fails=1), Member("b"))
    a = b.member_by_name("a")
    assert a is not None
    b.check_started(a)
    assert b.record_check(a, False, "connection refused") is HealthChange.DOWN
    b.check_started(a)
    assert b.record_check(a, True) is None
    b.check_started(a)
    assert b.record_check(a, False) is None
    b.check_started(a)
    assert b.record_check(a, True) is None
    assert a.in_error
    b.check_started(a)
    assert b.record_check(a, True, "CPONG in 1 ms") is HealthChange.UP
    assert not a.in_error and a.error_reason == ""
    assert "a" in {b.pick().member.name for _ in range(4)}


def test_member_in_error_from_a_request_needs_passes_and_is_checked_soon() -> None:
    """A failed request takes a checked member out; it is checked at its down interval."""
    b, clock = make(checked("a", interval=30.0, down_interval=1.0, passes=2), Member("b"))
    a = b.member_by_name("a")
    assert a is not None
    run_due(b, {})
    assert a.check.next_at == 1030.0 and a.check.passes == 1
    b.record_failure(a, "connection refused")
    assert a.check.passes == 0
    assert a.check.next_at == 1001.0
    # Checks, not probes, bring it back.
    assert b.probes_due() == []
    clock.advance(1)
    assert run_due(b, {}) == ["a"]
    assert a.in_error and a.check.next_at == 1002.0
    clock.advance(1)
    assert run_due(b, {}) == ["a"]
    assert not a.in_error
    assert a.check.next_at == 1032.0


def test_unchecked_members_are_still_probed() -> None:
    b, clock = make(checked("a"), Member("b"))
    a, plain = b.members
    b.record_failure(a, "x")
    b.record_failure(plain, "x")
    assert b.probes_due() == [plain]
    b.record_probe(plain, ok=True)
    assert not plain.in_error
    assert plain.check.ok is True and plain.check.detail == "probe passed"


def test_check_record_in_to_dict() -> None:
    b, clock = make(checked("a"))
    (a,) = b.checks_due()
    b.check_started(a)
    clock.advance(0.5)
    b.record_check(a, False, "HTTP 503")
    state = b.snapshot()["members"][0]
    assert state["checked"] is True
    assert state["check"] == {
        "ok": False,
        "at": 1000.5,
        "detail": "HTTP 503",
        "duration": 0.5,
        "passes": 0,
        "fails": 1,
        "running": False,
        "next_at": 1010.0,
    }
    assert state["weight"] == 100 and state["ramp_since"] is None


# -- slow start ------------------------------------------------------------------------------


def test_ramp_weight_is_linear() -> None:
    assert ramp_weight(100, 0.0, 10.0, 0.0) == 1
    assert ramp_weight(100, 0.0, 10.0, 2.5) == 25
    assert ramp_weight(300, 0.0, 10.0, 5.0) == 150
    assert ramp_weight(100, 0.0, 10.0, 10.0) is None


def ramped_pair(method: LBMethod = LBMethod.BYREQUESTS) -> tuple[Balancer, Clock, Member]:
    a = Member("a", slow_start=100.0)
    b, clock = make(a, Member("b"), method=method)
    b.record_failure(a, "down")
    b.record_success(a)
    return b, clock, a


def test_slow_start_weight_follows_the_clock() -> None:
    b, clock, a = ramped_pair()
    assert a.ramp_since == 1000.0 and a.weight == 1
    for seconds, weight in ((10, 10), (25, 35), (40, 75)):
        clock.advance(seconds)
        b.pick()
        assert a.weight == weight
    clock.advance(25)  # 100 s after it came back
    b.pick()
    assert a.weight == a.lbfactor == 100 and a.ramp_since is None


def test_slow_start_share_byrequests() -> None:
    """At 25 % of the ramp, the member takes 1 new session for every 4 of the other."""
    b, clock, a = ramped_pair()
    clock.advance(25)
    counts = Counter(b.pick().member.name for _ in range(500))
    assert counts == {"a": 100, "b": 400}
    clock.advance(75)
    counts = Counter(b.pick().member.name for _ in range(500))
    assert counts == {"a": 250, "b": 250}


def test_slow_start_share_bybusyness() -> None:
    """Under load, a member at half its ramp keeps half the requests in flight of the other."""
    b, clock, a = ramped_pair(LBMethod.BYBUSYNESS)
    clock.advance(50)
    for _ in range(30):
        b.request_started(b.pick().member)
    other = b.member_by_name("b")
    assert other is not None
    assert (a.in_flight, other.in_flight) == (10, 20)
    # Serial traffic (nothing in flight): the byrequests tie-break, weighted by the ramp.
    for m in b.members:
        m.in_flight = 0
    counts = Counter(b.pick().member.name for _ in range(300))
    assert counts == {"a": 100, "b": 200}


def test_slow_start_share_bytraffic() -> None:
    """A member that comes back starts level with the other, then takes less while ramping."""
    a = Member("a", slow_start=100.0)
    b, clock = make(a, Member("b"), method=LBMethod.BYTRAFFIC)
    other = b.member_by_name("b")
    assert other is not None
    b.record_failure(a, "down")
    other.bytes_out = 10_000_000  # it served alone for a while
    b.record_success(a)
    assert a.traffic_base == 10_000_000
    clock.advance(50)
    counts: Counter[str] = Counter()
    for _ in range(300):
        m = b.pick().member
        counts[m.name] += 1
        b.request_finished(m, bytes_in=1000)
    # Without the base, "a" would take all 300; at half weight it takes about a third.
    assert 90 <= counts["a"] <= 110, counts


def test_sticky_requests_ignore_slow_start() -> None:
    b, clock, a = ramped_pair()
    assert all(b.pick(("a",)).member is a for _ in range(20))
    assert a.weight == 1


def test_slow_start_on_add_and_enable_not_at_start() -> None:
    a = Member("a", slow_start=10.0)
    b, clock = make(a, Member("b"))
    assert a.ramp_since is None and a.weight == 100
    c = Member("c", slow_start=10.0)
    b.add_member(c)
    assert c.ramp_since == 1000.0
    b.set_status(a, MemberStatus.DISABLED)
    clock.advance(1)
    b.set_status(a, MemberStatus.ACTIVE)
    assert a.ramp_since == 1001.0
    # Going down ends the ramp.
    b.record_failure(a, "x")
    assert a.ramp_since is None and a.weight == 100


def test_no_slow_start_when_alone() -> None:
    """A member that comes back with nobody else usable takes everything at once."""
    a = Member("a", slow_start=10.0)
    b, clock = make(a)
    b.record_failure(a, "x")
    b.record_success(a)
    assert a.ramp_since is None and a.weight == 100
