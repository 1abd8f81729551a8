"""
The approximate distinct counter behind "sessions pinned per member": its
accuracy on known inputs, its fixed memory, and its window on an injected clock;
and how L{PinnedSessions} finds a request's session.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from twisted.web.test.requesthelper import DummyRequest

from twisted_lb.admin.metrics import RequestMetrics
from twisted_lb.admin.pinned import (
    RECENT_LIMIT,
    RELATIVE_ERROR,
    DistinctCounter,
    PinnedSessions,
)
from twisted_lb.admin.view import describe_balancer
from twisted_lb.balancer import MemberStatus, StickyConfig

from .helpers import FakeProxy


def ids(count: int, start: int = 0) -> list[bytes]:
    return [b"%032X.node1" % i for i in range(start, start + count)]


@pytest.mark.parametrize("count", [0, 1, 2, 17, 100])
def test_small_counts_nearly_exact(count: int) -> None:
    """A few sessions, each seen many times, are counted once each (to within one)."""
    counter = DistinctCounter()
    for _ in range(3):
        for key in ids(count):
            counter.add(key, 10.0)
    assert abs(counter.count(20.0) - count) <= 1


@pytest.mark.parametrize("count", [300, 1_000, 10_000, 100_000])
def test_large_counts_within_a_few_percent(count: int) -> None:
    """Hundreds to thousands of distinct ids are estimated within 3 standard errors (about 7 %)."""
    counter = DistinctCounter()
    for key in ids(count):
        counter.add(key, 10.0)
    for key in ids(count // 2):  # seen again: not counted twice
        counter.add(key, 11.0)
    estimate = counter.count(12.0)
    assert abs(estimate - count) <= 3 * RELATIVE_ERROR * count, estimate
    assert RELATIVE_ERROR < 0.025


def test_memory_is_fixed_whatever_the_traffic() -> None:
    """A hundred thousand distinct ids over half an hour use the same sketches as one."""
    counter = DistinctCounter()
    sketches = [id(s) for s in counter._sketches]
    sizes = [len(s) for s in counter._sketches]
    for i, key in enumerate(ids(100_000)):
        counter.add(key, i * 0.018)
    assert [id(s) for s in counter._sketches] == sketches
    assert [len(s) for s in counter._sketches] == sizes == [counter.registers] * 11


def test_window_expires_on_the_clock() -> None:
    """A session is counted for 10 minutes at least and 11 at most, then forgotten."""
    counter = DistinctCounter(window=600.0, bucket=60.0)
    for key in ids(5):
        counter.add(key, 1000.0)  # in the bucket 960..1020
    for key in ids(3, start=5):
        counter.add(key, 1300.0)
    assert counter.count(1000.0) == 5
    assert counter.count(1300.0) == 8
    assert counter.count(1000.0 + 600) == 8  # still within 10 minutes
    assert counter.count(960.0 + 660 - 0.5) == 8  # up to the end of its bucket's 11th minute
    assert counter.count(960.0 + 660) == 3  # then gone
    assert counter.count(1260.0 + 660) == 0
    # A bucket's sketch is reused when its turn comes round: old ids do not come back.
    counter.add(b"new", 1260.0 + 660 + 5)
    assert counter.count(1260.0 + 660 + 6) == 1


def test_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="precision must be between 4 and 16"):
        DistinctCounter(precision=20)


def sticky_entry(
    proxy: FakeProxy, route: str, *cookies: bytes, uri: bytes = b"/app"
) -> dict[str, Any]:
    request = DummyRequest([b""])
    request.uri = uri
    if cookies:
        request.requestHeaders.setRawHeaders(b"cookie", list(cookies))
    return {"request": request, "balancer": "app", "member": proxy.member(route).name}


def test_a_cookie_header_is_read_again_when_the_sticky_settings_change() -> None:
    """A remembered Cookie header is not trusted once the balancer's sticky cookie changed."""
    proxy = FakeProxy()
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    header = b"JSESSIONID=A.node1; OTHER=B.node1"
    for _ in range(3):
        pinned.observe(sticky_entry(proxy, "node1", header))
    assert pinned.estimate("app", proxy.member("node1").name) == 1
    built = proxy.balancers["app"]
    built.config = attrs.evolve(built.config, sticky=StickyConfig(cookie_names=("OTHER",)))
    pinned.observe(sticky_entry(proxy, "node1", header))  # now session B
    assert pinned.estimate("app", proxy.member("node1").name) == 2


def test_the_session_naming_the_member_is_counted() -> None:
    """With several session ids, the one whose route names the member counts, on each member."""
    proxy = FakeProxy()
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    for route in ("node1", "node2"):
        proxy.balancers["app"].balancer.set_status(proxy.member(route), MemberStatus.DRAINING)
    both = b"JSESSIONID=A.node2; JSESSIONID=B.node1"
    pinned.observe(sticky_entry(proxy, "node2", both))
    pinned.observe(sticky_entry(proxy, "node1", both))
    pinned.observe(sticky_entry(proxy, "node1", b"JSESSIONID=B.node1"))
    pinned.observe(sticky_entry(proxy, "node2", b"JSESSIONID=A.node2"))
    pinned.observe(sticky_entry(proxy, "node1", uri=b"/app;jsessionid=B.node1"))
    pinned.observe(sticky_entry(proxy, "node1", b"lang=en"))  # no session: not counted
    for route in ("node1", "node2"):
        assert pinned.summary("app", proxy.member(route).name)["sessions"] == 1
        assert pinned.estimate("app", proxy.member(route).name) == 1


def test_remembered_cookie_headers_are_bounded() -> None:
    """However many distinct Cookie headers come, at most RECENT_LIMIT are remembered."""
    proxy = FakeProxy()
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    long = b"JSESSIONID=L.node1; pad=" + b"x" * 2000
    pinned.observe(sticky_entry(proxy, "node1", long))
    for i in range(RECENT_LIMIT + 10):
        pinned.observe(sticky_entry(proxy, "node1", b"JSESSIONID=%d.node1" % i))
        assert len(pinned._recent["app"][1]) <= RECENT_LIMIT
    assert long not in pinned._recent["app"][1]  # too long to be remembered
    estimate = pinned.estimate("app", proxy.member("node1").name)
    assert abs(estimate - (RECENT_LIMIT + 11)) <= 3 * RELATIVE_ERROR * RECENT_LIMIT


def test_no_figure_for_a_balancer_without_stickiness() -> None:
    """A balancer without stickysession shows no sessions (nothing could be counted)."""
    proxy = FakeProxy()
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    built = proxy.balancers["app"]
    assert all(m["pinned"]["sessions"] == 0 for m in describe_balancer(built, pinned)["members"])
    built.config = attrs.evolve(built.config, sticky=None)
    pinned.observe(sticky_entry(proxy, "node1", b"JSESSIONID=A.node1"))
    assert all(m["pinned"] is None for m in describe_balancer(built, pinned)["members"])
    text = RequestMetrics(proxy.balancers, pinned).render()[0].decode()
    assert "twisted_lb_member_pinned_sessions{" not in text


def test_a_removed_member_is_forgotten() -> None:
    """What is kept for a member goes when the member is removed (memory follows the members)."""
    proxy = FakeProxy()
    pinned = PinnedSessions(proxy.balancers, proxy.reactor)
    member = proxy.member("node2")
    proxy.balancers["app"].balancer.set_status(member, MemberStatus.DRAINING)
    pinned.observe(sticky_entry(proxy, "node2", b"JSESSIONID=A.node2"))
    assert ("app", member.name) in pinned._counters and ("app", member.name) in pinned._seen
    proxy.balancers["app"].balancer.remove_member(member)
    proxy.reactor.advance(60)
    assert pinned.summary("app", member.name)["sessions"] == 0
    assert ("app", member.name) not in pinned._counters
    assert ("app", member.name) not in pinned._seen
