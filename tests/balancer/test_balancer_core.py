"""
Tests for L{twisted_lb.balancer.Balancer}: states, lbsets, stickiness, failover, recovery.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from twisted_lb.balancer import (
    Balancer,
    LBMethod,
    Member,
    MemberStatus,
    NoMemberAvailable,
    Pick,
    StickyConfig,
)


def make(*specs: str | Member, **kwargs: object) -> tuple[Balancer, Clock]:
    """
    A balancer over members given by name (or as members), with a fresh Clock.
    """
    clock = Clock()
    members = [spec if isinstance(spec, Member) else Member(spec) for spec in specs]
    return Balancer("cluster", members, clock=clock, **kwargs), clock  # type: ignore[arg-type]


def names(b: Balancer, count: int, routes: tuple[str, ...] = ()) -> list[str]:
    """
    The member names of the next C{count} picks.
    """
    return [b.pick(routes).member.name for _ in range(count)]


def member(b: Balancer, name: str) -> Member:
    """
    The member of that name, which must exist.
    """
    found = b.member_by_name(name)
    assert found is not None
    return found


# -- construction ---------------------------------------------------------------------------


def test_public_api_exports() -> None:
    """
    The package exports exactly the public names the dispatcher relies on.
    """
    import twisted_lb.balancer as package

    for name in (
        "Balancer",
        "Member",
        "MemberStatus",
        "LBMethod",
        "Pick",
        "NoMemberAvailable",
        "StickyConfig",
        "find_session_routes",
    ):
        assert name in package.__all__
        assert getattr(package, name) is not None


def test_member_defaults() -> None:
    """
    A member's route defaults to its name and its lbfactor is loadfactor x 100.
    """
    m = Member("tomcat1", loadfactor=2.5)
    assert (m.route, m.lbfactor, m.status, m.retry, m.lbset) == (
        "tomcat1",
        250,
        MemberStatus.ACTIVE,
        60.0,
        0,
    )
    assert (m.in_error, m.error_since, m.error_reason, m.last_probe_ok) == (False, None, "", None)
    assert Member("x", route="r1").route == "r1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "a", "loadfactor": 0.5},
        {"name": "a", "loadfactor": 101},
        {"name": "a", "loadfactor": float("nan")},
        {"name": "a", "lbset": -1},
        {"name": "a", "retry": -1},
        {"name": "a", "status": "active"},
    ],
)
def test_member_validation(kwargs: dict[str, object]) -> None:
    """
    Out-of-range member parameters are rejected.
    """
    with pytest.raises((ValueError, TypeError)):
        Member(**kwargs)  # type: ignore[arg-type]


def test_duplicate_names_rejected() -> None:
    """
    Two members with the same name cannot be in one balancer.
    """
    with pytest.raises(ValueError):
        make("a", "a")


@pytest.mark.parametrize(("configured", "expected"), [(None, 3), (1, 1), (5, 5)])
def test_max_attempts(configured: int | None, expected: int) -> None:
    """
    max_attempts defaults to the number of members.
    """
    b, _ = make("a", "b", "c", max_attempts=configured)
    assert b.max_attempts == expected


def test_max_attempts_validated() -> None:
    """
    max_attempts must be at least one.
    """
    with pytest.raises(ValueError):
        make("a", max_attempts=0)


def test_no_members() -> None:
    """
    An empty balancer raises NoMemberAvailable with a reason and the balancer name.
    """
    b, _ = make()
    with pytest.raises(NoMemberAvailable) as raised:
        b.pick()
    assert raised.value.reason == "no members"
    assert raised.value.balancer == "cluster"
    assert "cluster" in str(raised.value)


# -- lbsets, standby, draining, disabled ----------------------------------------------------


def test_lbsets_lower_first() -> None:
    """
    lbset 1 takes requests only when lbset 0 has no usable member.
    """
    b, _ = make(Member("a", lbset=0), Member("b", lbset=1), Member("c", lbset=0))
    assert names(b, 4) == ["a", "c", "a", "c"]
    b.record_failure(member(b, "a"), "down")
    assert names(b, 2) == ["c", "c"]
    b.set_status(member(b, "c"), MemberStatus.DISABLED)
    assert names(b, 2) == ["b", "b"]
    b.record_probe(member(b, "a"), ok=True)
    assert names(b, 2) == ["a", "a"]


def test_hot_standby_only_when_others_unusable() -> None:
    """
    A standby member takes new sessions only when no active member of its lbset is usable.
    """
    b, _ = make("a", "b", Member("s", status=MemberStatus.STANDBY))
    assert "s" not in names(b, 20)
    b.record_failure(member(b, "a"), "down")
    assert set(names(b, 5)) == {"b"}
    b.set_status(member(b, "b"), MemberStatus.DRAINING)
    assert set(names(b, 5)) == {"s"}
    b.set_status(member(b, "b"), MemberStatus.ACTIVE)
    assert set(names(b, 5)) == {"b"}


def test_standby_before_higher_lbset() -> None:
    """
    A standby of lbset 0 is used before the members of lbset 1, as in httpd.
    """
    b, _ = make("a", Member("s", status=MemberStatus.STANDBY), Member("z", lbset=1))
    b.record_failure(member(b, "a"), "down")
    assert names(b, 2) == ["s", "s"]


def test_draining_sticky_yes_new_no() -> None:
    """
    A draining member keeps its sticky sessions but gets no new ones.
    """
    b, _ = make("a", "b")
    b.set_status(member(b, "a"), MemberStatus.DRAINING)
    assert set(names(b, 10)) == {"b"}
    result = b.pick(["a"])
    assert (result.member.name, result.sticky, result.route_changed) == ("a", True, False)


def test_disabled_even_sticky_fails_over() -> None:
    """
    A disabled member gets nothing, and its sticky requests fail over.
    """
    b, _ = make("a", "b")
    b.set_status(member(b, "a"), MemberStatus.DISABLED)
    assert set(names(b, 10)) == {"b"}
    result = b.pick(["a"])
    assert result == Pick(member(b, "b"), sticky=False, route_changed=True, session_route="a")


def test_disabled_in_error_stays_disabled() -> None:
    """
    Recovering from an error does not re-enable a disabled member.
    """
    b, _ = make("a", "b")
    b.set_status(member(b, "a"), MemberStatus.DISABLED)
    b.record_failure(member(b, "a"), "down")
    b.record_probe(member(b, "a"), ok=True)
    assert member(b, "a").status is MemberStatus.DISABLED
    assert not b.usable(member(b, "a"))
    assert set(names(b, 5)) == {"b"}


def test_all_draining_or_disabled_reason() -> None:
    """
    With no member taking new sessions, the reason says so.
    """
    b, _ = make(
        Member("a", status=MemberStatus.DRAINING), Member("b", status=MemberStatus.DISABLED)
    )
    with pytest.raises(NoMemberAvailable, match="disabled or draining"):
        b.pick()


# -- errors and recovery --------------------------------------------------------------------


def test_error_with_probing_out_until_probe_ok() -> None:
    """
    With probing on, a member in error stays out, whatever the time, until a good probe.
    """
    b, clock = make("a", "b")
    a = member(b, "a")
    clock.advance(5)
    b.record_failure(a, "connection refused")
    assert (a.in_error, a.error_since, a.error_reason, a.errors) == (
        True,
        5.0,
        "connection refused",
        1,
    )
    assert b.probes_due() == [a]
    clock.advance(10_000)
    assert set(names(b, 10)) == {"b"}
    assert not b.usable(a)
    b.record_probe(a, ok=False)
    assert a.last_probe_ok is False and a.in_error
    b.record_probe(a, ok=True)
    assert (a.in_error, a.error_since, a.error_reason, a.last_probe_ok) == (False, None, "", True)
    assert b.probes_due() == []
    assert "a" in names(b, 2)


def test_failed_probe_marks_healthy_member() -> None:
    """
    A failed probe of a healthy member puts it in error without counting a request error.
    """
    b, _ = make("a", "b")
    a = member(b, "a")
    b.record_probe(a, ok=False)
    assert a.in_error and a.errors == 0 and a.error_reason == "probe failed"


def test_error_since_kept_on_repeated_failure() -> None:
    """
    A second failure while in error counts but does not move error_since.
    """
    b, clock = make("a", "b")
    a = member(b, "a")
    b.record_failure(a, "one")
    clock.advance(3)
    b.record_failure(a, "two")
    assert (a.error_since, a.errors, a.error_reason) == (0.0, 2, "two")


def test_record_success_readmits() -> None:
    """
    A success reported for a member in error readmits it.
    """
    b, _ = make("a", "b")
    a = member(b, "a")
    b.record_failure(a, "x")
    b.record_success(a)
    assert not a.in_error and b.usable(a)


def test_all_in_error_reason() -> None:
    """
    With every member in error the reason says so.
    """
    b, _ = make("a", "b")
    for m in b.members:
        b.record_failure(m, "down")
    with pytest.raises(NoMemberAvailable, match="all members in error"):
        b.pick()


@pytest.mark.parametrize("retry", [60.0, 5.0, 0.5])
def test_retry_timer_without_probing(retry: float) -> None:
    """
    With probing off, a member in error is retried once its retry timer has elapsed.
    """
    b, clock = make(Member("a", retry=retry), Member("b", retry=retry), probing=False)
    a = member(b, "a")
    b.record_failure(a, "down")
    assert b.probes_due() == []
    clock.advance(retry - 0.25)
    assert not b.usable(a)
    assert set(names(b, 4)) == {"b"}
    clock.advance(0.25)
    assert b.usable(a)
    assert "a" in names(b, 2)


def test_retry_zero_retried_every_request() -> None:
    """
    retry=0 makes a member in error eligible again on the very next request.
    """
    b, _ = make(Member("a", retry=0), probing=False)
    a = member(b, "a")
    for _ in range(3):
        b.record_failure(a, "down")
        assert b.pick().member is a
    assert a.errors == 3


def test_trial_failure_restarts_timer() -> None:
    """
    A failed trial puts the member back in error with a fresh error_since.
    """
    b, clock = make(Member("a", retry=10), Member("b"), probing=False)
    a = member(b, "a")
    b.record_failure(a, "down")
    clock.advance(10)
    assert "a" in names(b, 2)
    b.record_failure(a, "still down")
    assert a.error_since == 10.0
    clock.advance(9)
    assert set(names(b, 3)) == {"b"}
    clock.advance(1)
    assert "a" in names(b, 2)


def test_all_down_one_trial_at_a_time() -> None:
    """
    When all are down, only one member (the one in error longest) is released for trial.
    """
    b, clock = make(*(Member(n, retry=10) for n in "abc"), probing=False)
    a, bb, c = b.members
    b.record_failure(bb, "down")
    clock.advance(1)
    b.record_failure(a, "down")
    clock.advance(1)
    b.record_failure(c, "down")
    clock.advance(20)
    assert [b.usable(m) for m in (a, bb, c)] == [False, True, False]
    assert b.pick().member is bb
    with pytest.raises(NoMemberAvailable, match="on trial"):
        b.pick()
    b.record_failure(bb, "still down")
    assert b.pick().member is a
    b.record_success(a)
    assert b.pick().member is a
    assert b.pick().member is c
    assert b.pick().member is a
    b.record_success(c)
    assert names(b, 4) == ["a", "c", "a", "c"]


def test_abandoned_trial_times_out() -> None:
    """
    A trial that never reports an outcome frees the slot after trial_timeout.
    """
    b, clock = make(Member("a", retry=5), Member("b", retry=5), probing=False, trial_timeout=30)
    a, bb = b.members
    b.record_failure(a, "down")
    b.record_failure(bb, "down")
    clock.advance(5)
    assert b.pick().member is a
    clock.advance(29)
    with pytest.raises(NoMemberAvailable):
        b.pick()
    clock.advance(1)
    assert b.pick().member is bb
    assert a.error_since == 35.0


def test_disabled_member_never_on_trial() -> None:
    """
    A disabled member in error is not released by its retry timer.
    """
    b, clock = make(Member("a", retry=1), Member("b", retry=1), probing=False)
    a, bb = b.members
    b.record_failure(a, "down")
    b.record_failure(bb, "down")
    b.set_status(a, MemberStatus.DISABLED)
    clock.advance(2)
    assert b.pick().member is bb


# -- exclude --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(LBMethod))
def test_exclude_next_member_each_attempt(method: LBMethod) -> None:
    """
    Each retry of a request goes to a member not tried yet, until none is left.
    """
    b, _ = make("a", "b", "c", "d", method=method)
    tried: list[Member] = []
    for _ in range(b.max_attempts):
        chosen = b.pick(exclude=tried).member
        assert chosen not in tried
        tried.append(chosen)
    with pytest.raises(NoMemberAvailable, match="already tried"):
        b.pick(exclude=tried)


def test_excluded_sticky_member_fails_over() -> None:
    """
    A retry of a sticky request whose member was already tried goes elsewhere.
    """
    b, _ = make("a", "b", "c")
    a = member(b, "a")
    first = b.pick(["a"])
    assert first.sticky and first.member is a
    second = b.pick(["a"], exclude=[a])
    assert second.member is not a and second.route_changed and not second.sticky


# -- stickiness -----------------------------------------------------------------------------


def test_sticky_route_honoured() -> None:
    """
    A route naming a usable member sends the request there.
    """
    b, _ = make("a", Member("b", route="tomcat2"), "c")
    for _ in range(5):
        result = b.pick(["tomcat2"])
        assert result == Pick(
            member(b, "b"), sticky=True, route_changed=False, session_route="tomcat2"
        )
    assert member(b, "b").elected == 5


def test_first_route_naming_member_wins() -> None:
    """
    Candidate routes naming no member are skipped; the first naming one decides.
    """
    b, _ = make("a", "b")
    result = b.pick(["dom.b", "nothing", "b", "a"])
    assert (result.member.name, result.session_route) == ("b", "b")


def test_unknown_route_balanced_normally() -> None:
    """
    A route naming no member is balanced normally, without route_changed.
    """
    b, _ = make("a", "b", nofailover=True)
    results = [b.pick(["nosuch"]) for _ in range(4)]
    assert [r.member.name for r in results] == ["a", "b", "a", "b"]
    assert not any(r.sticky or r.route_changed for r in results)
    assert all(r.session_route is None for r in results)


def test_sticky_disabled_balancer_ignores_routes() -> None:
    """
    With sticky=None, session routes are ignored.
    """
    b, _ = make("a", "b", sticky=None)
    assert names(b, 4, ("b",)) == ["a", "b", "a", "b"]


def test_nofailover_refuses() -> None:
    """
    With nofailover, a route naming an unusable member raises NoMemberAvailable.
    """
    b, _ = make(Member("a", route="tomcat1"), "b", nofailover=True)
    b.record_failure(member(b, "a"), "down")
    with pytest.raises(NoMemberAvailable) as raised:
        b.pick(["tomcat1"])
    assert raised.value.reason == "route 'tomcat1' is not usable and nofailover is set"
    assert b.pick().member.name == "b"


def test_failover_nothing_left() -> None:
    """
    Failover with no usable member left raises NoMemberAvailable.
    """
    b, _ = make("a", "b")
    for m in b.members:
        b.record_failure(m, "down")
    with pytest.raises(NoMemberAvailable, match="no other member"):
        b.pick(["a"])


def test_sticky_failover_deterministic_across_processes() -> None:
    """
    Two independent balancers with the same config choose the same replacement per route, always.
    """
    spec = [(f"n{i}", 1 + i % 3) for i in range(8)]
    first, _ = make(*(Member(n, loadfactor=w) for n, w in spec))
    second, _ = make(*(Member(n, loadfactor=w) for n, w in spec))
    for b in (first, second):
        b.record_failure(member(b, "n0"), "down")
        b.set_status(member(b, "n1"), MemberStatus.DISABLED)
    for route in ("n0", "n1"):
        chosen = {first.pick([route]).member.name for _ in range(10)}
        assert len(chosen) == 1
        other = {second.pick([route]).member.name for _ in range(10)}
        assert chosen == other
        names(first, 3)  # interleaved new sessions do not change the replacement
        assert first.pick([route]).member.name in chosen


def test_failover_only_moves_lost_sessions() -> None:
    """
    Replacements spread over the others and ignore draining members, lbset order kept.
    """
    members = [Member(f"r{i}") for i in range(6)] + [Member("far", lbset=1)]
    b, _ = make(*members)
    b.set_status(member(b, "r5"), MemberStatus.DRAINING)
    for m in b.members[:3]:
        b.set_status(m, MemberStatus.DISABLED)
    replacements = {b.pick([m.name]).member.name for m in b.members[:3]}
    assert replacements <= {"r3", "r4"}
    b.set_status(member(b, "r3"), MemberStatus.DISABLED)
    b.set_status(member(b, "r4"), MemberStatus.DISABLED)
    assert b.pick(["r0"]).member.name == "far"


def test_failover_weighted() -> None:
    """
    Replacements chosen by rendezvous hashing favour members with higher load factors.
    """
    b, _ = make(Member("dead"), Member("light", loadfactor=1), Member("heavy", loadfactor=9))
    from twisted_lb.balancer.rendezvous import choose_replacement, rank_members

    counts = Counter(
        choose_replacement(rank_members(f"route{i}", b.members[1:]), None, ()).name  # type: ignore[union-attr]
        for i in range(2000)
    )
    assert 0.85 < counts["heavy"] / 2000 < 0.95


def test_sticky_standby_searched_after_normal() -> None:
    """
    A standby sharing a route takes that route's sessions only when the normal member is out.
    """
    b, _ = make(Member("s", route="t1", status=MemberStatus.STANDBY), Member("a", route="t1"), "b")
    assert b.member_by_route("t1") is member(b, "a")
    assert b.pick(["t1"]).member.name == "a"
    b.record_failure(member(b, "a"), "down")
    result = b.pick(["t1"])
    assert (result.member.name, result.sticky) == ("s", True)


def test_sticky_picks_do_not_skew_byrequests() -> None:
    """
    Sticky picks leave the byrequests counters alone, so new sessions stay fair.
    """
    b, _ = make("a", "b", "c")
    for _ in range(100):
        b.pick(["a"])
    assert sorted(names(b, 3)) == ["a", "b", "c"]
    assert [m.lbstatus for m in b.members] == [0, 0, 0]


@pytest.mark.parametrize("readmit", ["probe", "success"])
def test_readmitted_member_gets_share_at_once(readmit: str) -> None:
    """
    A member back from an error gets its share of new sessions in the very next picks.
    """
    b, _ = make(Member("a"), Member("b", loadfactor=2), Member("c"))
    bb = member(b, "b")
    names(b, 5)
    b.record_failure(bb, "down")
    names(b, 37)
    if readmit == "probe":
        b.record_probe(bb, ok=True)
    else:
        b.record_success(bb)
    counts = Counter(names(b, 8))
    assert counts == {"a": 2, "b": 4, "c": 2}


def test_readmit_after_long_absence_no_burst() -> None:
    """
    A member that was picked right before failing is not starved, nor flooded, after readmission.
    """
    b, _ = make("a", "b", "c", "d")
    d = member(b, "d")
    names(b, 4)
    b.record_failure(d, "down")
    names(b, 1001)
    b.record_probe(d, ok=True)
    assert Counter(names(b, 4)) == {"a": 1, "b": 1, "c": 1, "d": 1}


# -- counters, admin, snapshot ----------------------------------------------------------------


def test_in_flight_never_negative() -> None:
    """
    in_flight never goes below zero, however many finishes are reported.
    """
    b, _ = make("a")
    a = member(b, "a")
    b.request_started(a)
    b.request_finished(a, bytes_in=10, bytes_out=5)
    b.request_finished(a, bytes_in=-3)
    b.request_finished(a)
    assert (a.in_flight, a.bytes_in, a.bytes_out) == (0, 10, 5)


def test_elected_counts_every_pick() -> None:
    """
    Every pick, sticky or not, counts as an election.
    """
    b, _ = make("a", "b")
    names(b, 4)
    b.pick(["a"])
    assert [m.elected for m in b.members] == [3, 2]


def test_add_and_remove_members() -> None:
    """
    Added members take part at once, removed ones vanish from every table.
    """
    b, _ = make("a", "b")
    c = Member("c", route="t3")
    b.add_member(c)
    assert b.member_by_route("t3") is c and b.member_by_name("c") is c
    assert sorted(names(b, 3)) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        b.add_member(Member("c"))
    b.remove_member(c)
    assert b.member_by_route("t3") is None and b.member_by_name("c") is None
    assert c not in b.members
    assert set(names(b, 4)) == {"a", "b"}
    assert b.pick(["t3"]).member.name in {"a", "b"}
    with pytest.raises(ValueError):
        b.remove_member(c)
    with pytest.raises(ValueError):
        b.set_status(c, MemberStatus.DISABLED)


def test_set_loadfactor() -> None:
    """
    A changed load factor applies to the next picks.
    """
    b, _ = make("a", "b")
    names(b, 3)
    b.set_loadfactor(member(b, "a"), 3)
    assert member(b, "a").lbfactor == 300
    assert Counter(names(b, 8)) == {"a": 6, "b": 2}
    with pytest.raises(ValueError):
        b.set_loadfactor(member(b, "a"), 0)


def test_set_lbset() -> None:
    """
    Moving a member to another lbset changes who is preferred.
    """
    b, _ = make("a", "b")
    b.set_lbset(member(b, "a"), 1)
    assert set(names(b, 4)) == {"b"}


def test_snapshot_json_serialisable() -> None:
    """
    The snapshot is plain JSON-able data with every member's state.
    """
    b, clock = make("a", Member("b", route="t2", loadfactor=1.5), probing=False)
    clock.advance(7)
    b.record_failure(member(b, "a"), "refused")
    b.pick()
    snapshot = json.loads(json.dumps(b.snapshot()))
    assert snapshot["name"] == "cluster"
    assert snapshot["method"] == "byrequests"
    assert snapshot["sticky"]["cookie_names"] == ["JSESSIONID"]
    assert snapshot["max_attempts"] == 2
    first, second = snapshot["members"]
    assert first["in_error"] is True and first["error_since"] == 7.0 and first["usable"] is False
    assert first["error_reason"] == "refused"
    assert second["route"] == "t2" and second["lbfactor"] == 150 and second["elected"] == 1
    assert second["status"] == "active"


def test_snapshot_without_sticky() -> None:
    """
    A balancer without stickiness reports sticky as null.
    """
    b, _ = make("a", sticky=None, method=LBMethod.BYTRAFFIC)
    assert json.loads(json.dumps(b.snapshot()))["sticky"] is None


def test_custom_sticky_config_kept() -> None:
    """
    The sticky configuration given is the one the dispatcher reads back.
    """
    sticky = StickyConfig.from_apache("ROUTEID|routeid")
    b, _ = make("a", sticky=sticky)
    assert b.sticky is sticky


def test_sticky_ignores_lbset_preference() -> None:
    """
    A session routed to a usable member of a higher lbset stays there.
    """
    b, _ = make("a", Member("z", lbset=1))
    assert b.pick(["z"]).member.name == "z"
    assert b.pick().member.name == "a"


def test_trial_member_takes_sticky_request() -> None:
    """
    A member on retry-timer trial may take its own sticky request, once.
    """
    b, clock = make(Member("a", retry=5), "b", probing=False)
    a = member(b, "a")
    b.record_failure(a, "down")
    clock.advance(5)
    first = b.pick(["a"])
    assert (first.member, first.sticky) == (a, True)
    second = b.pick(["a"])
    assert second.route_changed and second.member.name == "b"


def test_balancer_never_imports_reactor() -> None:
    """
    Importing the balancer package does not install or import the global reactor.
    """
    import subprocess
    import sys

    code = (
        "import sys, twisted_lb.balancer\n"
        "assert 'twisted.internet.reactor' not in sys.modules, 'reactor imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)



def test_member_update_invalid_value_changes_nothing():
    member = Member("a", loadfactor=2)
    with pytest.raises(ValueError):
        member.update(lbset=1, loadfactor=0)
    assert (member.lbset, member.loadfactor, member.lbfactor) == (0, 2, 200)


def test_member_update_loadfactor_sets_lbfactor_and_weight():
    member = Member("a")
    member.update(loadfactor=2.5)
    assert (member.lbfactor, member.weight) == (250, 250)


def test_member_update_loadfactor_leaves_slow_start_weight():
    member = Member("a", slow_start=10)
    member.ramp_since = 0.0
    member.weight = 10
    member.update(loadfactor=3)
    assert (member.lbfactor, member.weight) == (300, 10)


@pytest.mark.parametrize("name", ["in_flight", "name", "nonsense"])
def test_member_update_only_configured_fields(name):
    with pytest.raises(AttributeError):
        Member("a").update(**{name: 1})


def test_member_counters_are_plain_attributes():
    """No attrs __setattr__ hook: the per-request counters are plain slot writes."""
    assert "__setattr__" not in vars(Member)
