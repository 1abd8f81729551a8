"""
L{MemberSeries}: the manager's 15-minute series per member (requests/s,
errors/s, p50/p99), on a memory clock; and the admin listener serving them
with the vendored chart files.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from twisted_lb.admin.csrf import CrossSiteGuard
from twisted_lb.admin.manager import Manager
from twisted_lb.admin.metrics import RequestMetrics
from twisted_lb.admin.series import BUCKETS, STEP, MemberSeries
from twisted_lb.admin.site import AdminRoot
from twisted_lb.admin.state import StateFile

from .helpers import FakeProxy, exchange


def _entry(seconds: float, status: int = 200, member: str = "m1") -> dict:
    return {"balancer": "app", "member": member, "status": status, "upstream_seconds": seconds}


def test_rates_errors_and_percentiles_per_bucket() -> None:
    clock = MemoryReactorClock()
    clock.advance(1000 * STEP)  # the start of a bucket
    series = MemberSeries(clock)
    for i in range(100):
        series.observe(_entry(0.002 if i < 98 else 0.5, status=502 if i >= 98 else 200))
    clock.advance(STEP)
    series.observe(_entry(0.010))
    clock.advance(STEP / 2)
    snap = series.snapshot()
    assert snap["step"] == STEP and len(snap["times"]) == BUCKETS
    assert snap["times"][-1] == 1001 * STEP
    [m] = snap["members"]
    assert (m["balancer"], m["member"]) == ("app", "m1")
    assert m["requests"][-3:] == [0, 100, 1]
    assert m["rps"][-2] == 10.0  # 100 requests in 10 s
    assert m["rps"][-1] == 0.2  # 1 request in the 5 s the current bucket has run
    assert m["errors"][-2] == 0.2 and m["errors"][-1] == 0.0
    # Percentiles within a third of the truth (the bins grow by a third).
    assert 2.0 <= m["p50"][-2] < 2.0 * 4 / 3
    assert 500 <= m["p99"][-2] < 500 * 4 / 3
    assert 10 <= m["p50"][-1] < 10 * 4 / 3
    assert m["p50"][0] is None and m["rps"][0] == 0.0


def test_old_buckets_are_forgotten() -> None:
    """After 15 minutes a bucket's slot holds the new one, counted from zero."""
    clock = MemoryReactorClock()
    series = MemberSeries(clock)
    series.observe(_entry(0.001))
    clock.advance(BUCKETS * STEP)
    series.observe(_entry(0.001))
    [m] = series.snapshot()["members"]
    assert sum(m["requests"]) == 1


def test_admin_serves_series_and_chart_files() -> None:
    proxy = FakeProxy()
    metrics = RequestMetrics(proxy.balancers)
    root = AdminRoot(
        Manager(proxy.balancers, StateFile(None), metrics), CrossSiteGuard("t"), metrics
    )
    root.series = MemberSeries(proxy.reactor)
    root.series.observe(_entry(0.003, member=proxy.member("node1").name))
    body = exchange(root, "GET", "/api/series").json()
    assert body["members"][0]["member"] == proxy.member("node1").name
    page = exchange(root, "GET", "/")
    assert 'src="static/uPlot.iife.min.js"' in page.text and 'src="static/charts.js"' in page.text
    assert f'data-member="{proxy.member("node1").name}"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "connect-src 'self'" in policy
    for name, kind in (
        ("uPlot.iife.min.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
        ("uPlot.LICENSE", "text/plain"),
    ):
        r = exchange(root, "GET", f"/static/{name}")
        assert r.status == 200 and r.headers["content-type"].startswith(kind) and r.body
    assert exchange(root, "GET", "/static/../site.py").status == 404
    assert "MIT License" in exchange(root, "GET", "/static/uPlot.LICENSE").text
