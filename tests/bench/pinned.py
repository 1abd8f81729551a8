"""A repeatable micro-benchmark of the manager's per-request hook for sticky requests.

    python -m tests.bench.pinned [--requests N] [--repeat R]

Times L{RequestMetrics.observe <twisted_lb.admin.metrics.RequestMetrics.observe>} (the hook every
finished request goes through when an ``[admin]`` table is configured) for N sticky requests to an
active member, each with its own session cookie, twice in one run: without the pinned-sessions
counter, and with it. Prints the best of R runs in µs per request, and their ratio (on a busy
machine the minimum and the ratio are the figures least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import timeit
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
    hooks = {
        "without the counter": RequestMetrics(proxy.balancers),
        "with the counter": RequestMetrics(
            proxy.balancers, PinnedSessions(proxy.balancers, proxy.reactor)
        ),
    }
    best = {}
    for _ in range(args.repeat):  # interleaved, so that both see the same machine
        for name, metrics in hooks.items():
            observe = metrics.observe
            seconds = timeit.timeit(lambda o=observe: [o(e) for e in entries], number=10)
            best[name] = min(best.get(name, seconds), seconds)
    for name, seconds in best.items():
        print(f"{name}: {seconds / 10 / len(entries) * 1e6:.2f} µs per sticky request")
    ratio = best["with the counter"] / best["without the counter"]
    print(f"with / without: {ratio:.2f}")


if __name__ == "__main__":
    main()
