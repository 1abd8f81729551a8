"""
Property tests: random sequences of operations on a L{Balancer} keep its promises.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from twisted_lb.balancer import Balancer, LBMethod, Member, MemberStatus, NoMemberAvailable

NAMES = ("a", "b", "c", "d")
TAKES_NEW = (MemberStatus.ACTIVE, MemberStatus.STANDBY)

members_strategy = st.lists(
    st.builds(
        lambda lf, lbset, retry: (lf, lbset, retry),
        st.sampled_from([1, 1.5, 2, 10, 100]),
        st.integers(0, 2),
        st.sampled_from([0.0, 1.0, 5.0, 60.0]),
    ),
    min_size=1,
    max_size=len(NAMES),
)

index = st.integers(0, len(NAMES) - 1)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("pick"),
            st.lists(st.sampled_from([*NAMES, "zz", "a.b"]), max_size=3),
            st.lists(index, max_size=3),
        ),
        st.tuples(st.just("failure"), index),
        st.tuples(st.just("success"), index),
        st.tuples(st.just("probe"), index, st.booleans()),
        st.tuples(st.just("status"), index, st.sampled_from(list(MemberStatus))),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 5.0, 31.0, 61.0])),
        st.tuples(st.just("start"), index),
        st.tuples(st.just("finish"), index, st.integers(0, 1000)),
        st.tuples(st.just("loadfactor"), index, st.sampled_from([1, 3, 50])),
    ),
    max_size=60,
)


def eligible_for_new(b: Balancer, exclude: list[Member]) -> list[Member]:
    """
    Members that could take a new session with probing on.
    """
    return [m for m in b.members if m.status in TAKES_NEW and not m.in_error and m not in exclude]


def check_pick(b: Balancer, routes: list[str], exclude: list[Member]) -> None:
    """
    Pick once and check every promise about the answer.
    """
    try:
        result = b.pick(routes, exclude)
    except NoMemberAvailable as e:
        assert e.balancer == b.name and e.reason
        if b.probing and not any(b.member_by_route(r) for r in routes):
            assert eligible_for_new(b, exclude) == []
        return
    chosen = result.member
    assert chosen in b.members
    assert chosen not in exclude
    assert chosen.status is not MemberStatus.DISABLED
    if b.probing:
        assert not chosen.in_error
    else:
        assert not chosen.in_error or chosen is b._trial.member
    if result.sticky:
        assert chosen.route == result.session_route and not result.route_changed
        return
    assert chosen.status in TAKES_NEW
    if result.route_changed:
        assert b.member_by_route(result.session_route or "") is not None
        assert not b.nofailover
        return
    assert result.session_route is None
    if b.probing:
        better = [
            m
            for m in eligible_for_new(b, exclude)
            if m.lbset < chosen.lbset
            or (
                m.lbset == chosen.lbset
                and chosen.status is MemberStatus.STANDBY
                and m.status is MemberStatus.ACTIVE
            )
        ]
        assert better == []


@settings(max_examples=300, deadline=None)
@given(
    specs=members_strategy,
    method=st.sampled_from(list(LBMethod)),
    probing=st.booleans(),
    nofailover=st.booleans(),
    ops=operations,
)
def test_random_operations_keep_promises(
    specs: list[tuple[float, int, float]],
    method: LBMethod,
    probing: bool,
    nofailover: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    """
    Random operations never raise anything but NoMemberAvailable, never pick a disabled, excluded
    or (with probing) in-error member, and respect lbsets and standby.
    """
    clock = Clock()
    members = [
        Member(NAMES[i], loadfactor=lf, lbset=lbset, retry=retry)
        for i, (lf, lbset, retry) in enumerate(specs)
    ]
    b = Balancer(
        "prop", members, clock=clock, method=method, probing=probing, nofailover=nofailover
    )

    def nth(i: int) -> Member:
        return members[i % len(members)]

    for op in ops:
        kind = op[0]
        if kind == "pick":
            check_pick(b, op[1], [nth(i) for i in op[2]])
        elif kind == "failure":
            b.record_failure(nth(op[1]), "boom")
        elif kind == "success":
            b.record_success(nth(op[1]))
        elif kind == "probe":
            b.record_probe(nth(op[1]), ok=op[2])
        elif kind == "status":
            b.set_status(nth(op[1]), op[2])
        elif kind == "advance":
            clock.advance(op[1])
        elif kind == "start":
            b.request_started(nth(op[1]))
        elif kind == "finish":
            b.request_finished(nth(op[1]), bytes_in=op[2], bytes_out=op[2] // 2)
        elif kind == "loadfactor":
            b.set_loadfactor(nth(op[1]), op[2])
        for m in members:
            assert m.in_flight >= 0
            assert m.in_error == (m.error_since is not None)
        assert set(b.probes_due()) == ({m for m in members if m.in_error} if probing else set())
    json.dumps(b.snapshot())
