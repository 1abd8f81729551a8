"""
Tests for the lbmethods (L{twisted_lb.balancer.methods}) through L{Balancer.pick}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from twisted_lb.balancer import Balancer, LBMethod, Member
from twisted_lb.balancer.methods import select_byrequests, selector_for


def balancer(weights: dict[str, float], method: LBMethod = LBMethod.BYREQUESTS) -> Balancer:
    """
    Build a balancer with one member per name, with the given load factors.
    """
    members = [Member(name, loadfactor=weight) for name, weight in weights.items()]
    return Balancer("b", members, clock=Clock(), method=method)


def picks(b: Balancer, count: int) -> str:
    """
    The names of the next C{count} non-sticky picks, space-separated.
    """
    return " ".join(b.pick().member.name for _ in range(count))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"a": 1, "b": 1, "c": 1}, "a b c a b c"),
        ({"a": 1, "b": 1, "c": 1, "d": 1}, "a b c d a b c d"),
        ({"a": 5, "b": 1, "c": 1}, "a a b a c a a a a b a c a a"),
        ({"a": 1, "b": 1, "c": 1, "d": 2}, "d a b c d d a b c d"),
        ({"a": 2, "b": 1}, "a b a a b a"),
    ],
)
def test_byrequests_published_orders(weights: dict[str, float], expected: str) -> None:
    """
    byrequests reproduces httpd's smooth weighted round robin orders exactly.
    """
    assert picks(balancer(weights), len(expected.split())) == expected


@pytest.mark.parametrize(
    ("weights", "count"),
    [
        ({"a": 1, "b": 1, "c": 1, "d": 1}, 1000),
        ({"a": 5, "b": 3, "c": 2}, 1000),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, 1000),
        ({"a": 2.5, "b": 7.5}, 1000),
        ({"a": 1.5, "b": 1}, 1000),
    ],
)
def test_byrequests_split_by_loadfactor(weights: dict[str, float], count: int) -> None:
    """
    1000 non-sticky picks are split exactly in proportion to the load factors.
    """
    b = balancer(weights)
    picks(b, count)
    total = sum(weights.values())
    for member in b.members:
        assert member.elected == count * weights[member.name] / total


def test_byrequests_lbstatus_sum_constant() -> None:
    """
    The byrequests counters always sum to zero when all members take part.
    """
    b = balancer({"a": 3, "b": 1.25, "c": 7})
    for _ in range(200):
        b.pick()
        assert sum(m.lbstatus for m in b.members) == 0


def test_select_byrequests_single_candidate_unchanged() -> None:
    """
    A lone candidate is chosen and its counter is unchanged by the round.
    """
    member = Member("a", loadfactor=3)
    member.lbstatus = 42
    assert select_byrequests([member]) is member
    assert member.lbstatus == 42


@pytest.mark.parametrize(
    ("in_flight", "expected"),
    [
        ({"a": 3, "b": 1, "c": 2}, "b"),
        ({"a": 0, "b": 0, "c": 0}, "a"),
        ({"a": 2, "b": 1, "c": 1}, "b"),
        ({"a": 5, "b": 5, "c": 0}, "c"),
    ],
)
def test_bybusyness_least_in_flight(in_flight: dict[str, int], expected: str) -> None:
    """
    bybusyness picks the member with the fewest requests in flight, the earlier on ties.
    """
    b = balancer({"a": 1, "b": 1, "c": 1}, LBMethod.BYBUSYNESS)
    for member in b.members:
        member.in_flight = in_flight[member.name]
    assert b.pick().member.name == expected


def test_bybusyness_ties_rotate_by_lbstatus() -> None:
    """
    With equal busyness (nothing in flight), bybusyness falls back to byrequests order.
    """
    b = balancer({"a": 5, "b": 1, "c": 1}, LBMethod.BYBUSYNESS)
    assert picks(b, 7) == "a a b a c a a"


def test_bybusyness_follows_request_lifecycle() -> None:
    """
    Members busy with started requests are avoided until their requests finish.
    """
    b = balancer({"a": 1, "b": 1}, LBMethod.BYBUSYNESS)
    first = b.pick().member
    b.request_started(first)
    second = b.pick().member
    assert second is not first
    b.request_started(second)
    b.request_started(second)
    assert b.pick().member is first
    b.request_finished(second)
    b.request_finished(second)
    assert b.pick().member is second


@pytest.mark.parametrize(
    ("traffic", "weights", "expected"),
    [
        ({"a": (100, 0), "b": (0, 50), "c": (30, 30)}, {"a": 1, "b": 1, "c": 1}, "b"),
        ({"a": (0, 0), "b": (0, 0), "c": (0, 0)}, {"a": 1, "b": 1, "c": 1}, "a"),
        ({"a": (100, 0), "b": (60, 0), "c": (0, 0)}, {"a": 2, "b": 1, "c": 0}, "c"),
        ({"a": (100, 0), "b": (60, 0)}, {"a": 2, "b": 1}, "a"),
        ({"a": (100, 0), "b": (50, 0)}, {"a": 2, "b": 1}, "a"),
    ],
)
def test_bytraffic_lowest_traffic_per_factor(
    traffic: dict[str, tuple[int, int]], weights: dict[str, float], expected: str
) -> None:
    """
    bytraffic picks the lowest (bytes in + bytes out) / load factor, the earlier on ties.
    """
    b = balancer({name: max(weight, 1) for name, weight in weights.items()}, LBMethod.BYTRAFFIC)
    for member in b.members:
        b.request_started(member)
        bytes_in, bytes_out = traffic[member.name]
        b.request_finished(member, bytes_in=bytes_in, bytes_out=bytes_out)
    assert b.pick().member.name == expected


def test_method_can_change_at_run_time() -> None:
    """
    Assigning a new method switches the selection function.
    """
    b = balancer({"a": 1, "b": 1})
    b.method = LBMethod.BYTRAFFIC
    b.members[0].bytes_out = 10
    assert [b.pick().member.name for _ in range(3)] == ["b", "b", "b"]
    b.method = "byrequests"  # type: ignore[assignment]
    assert b.method is LBMethod.BYREQUESTS
    assert b._select is selector_for(LBMethod.BYREQUESTS)
