"""A repeatable micro-benchmark of the manager's per-request hook for sticky requests.

    python -m tests.bench.pinned [--requests N] [--repeat R]

Times L{RequestMetrics.observe <twisted_lb.admin.metrics.RequestMetrics.observe>} (the hook every
finished request goes through when an ``[admin]`` table is configured) for N sticky requests to an
active member, each with its own session cookie, three ways in one run: without the pinned-sessions
counter; with it, the sessions having been seen before (a session's later requests, the common
case); and with it, every request the first of its session. Prints the best of R runs in µs per
request, and the ratios to the first (on a busy machine the minimum and the ratios are the figures
least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from twisted.web.test.requesthelper import DummyRequest

from tests.admin.helpers import FakeProxy
from twisted_lb.admin.metrics import RequestMetrics
from twisted_lb.admin.pinned import PinnedSessions


def _entries(proxy: FakeProxy, count: int) -> list[dict[str, Any]]:
    member = proxy.member("node1").name
    out = []
    for i in range(count):
        request = DummyRequest([b""])
        request.uri = b"/app/page"
        cookie = b"lang=en; JSESSIONID=%032X.node1" % i
        request.requestHeaders.setRawHeaders(b"cookie", [cookie])
        out.append({
            "request": request, "status": 200, "bytes": 10, "member": member,
            "route_changed": False, "attempts": 1, "upstream_seconds": 0.02,
            "first_byte_seconds": 0.01, "balancer": "app", "sticky": True,
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    proxy = FakeProxy()
    entries = _entries(proxy, args.requests)

    def counting() -> RequestMetrics:
        return RequestMetrics(proxy.balancers, PinnedSessions(proxy.balancers, proxy.reactor))

    without = RequestMetrics(proxy.balancers)
    seen_before = counting()
    for e in entries:
        seen_before.observe(e)
    cases: dict[str, Callable[[], RequestMetrics]] = {
        "without the counter": lambda: without,
        "with the counter, sessions seen before": lambda: seen_before,
        "with the counter, first request of each session": counting,
    }
    best: dict[str, float] = {}
    for _ in range(args.repeat):  # interleaved, so that every case sees the same machine
        for name, make in cases.items():
            observe = make().observe
            started = time.perf_counter()
            for e in entries:
                observe(e)
            seconds = time.perf_counter() - started
            best[name] = min(best.get(name, seconds), seconds)
    base = best["without the counter"]
    for name, seconds in best.items():
        per_request = seconds / len(entries) * 1e6
        print(f"{name}: {per_request:.2f} µs per sticky request ({seconds / base:.2f} x)")


if __name__ == "__main__":
    main()
