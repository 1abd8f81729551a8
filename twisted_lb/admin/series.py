"""
The last 15 minutes of each member's traffic, for the manager's charts:
requests per second, errors per second (5xx answers), and the median and
99th percentile of the upstream time, in buckets of L{STEP} seconds, drawn
from the proxy's own per-request hook (no external service).

Memory is fixed per member (L{BUCKETS} buckets of a count, an error count and
a latency histogram of L{len(BOUNDS) <BOUNDS>} bins); a request costs a
dictionary lookup, a binary search over the bins and three increments.
Percentiles are read from the histogram: each is the upper bound of the bin
it falls in (bins grow by a third, so a figure is within a third of the true
one).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["BOUNDS", "BUCKETS", "STEP", "MemberSeries"]

#: Seconds per bucket.
STEP = 10
#: Buckets kept: 15 minutes.
BUCKETS = 90
#: Upper bounds (seconds) of the latency bins: 0.5 ms growing by a third, to
#: beyond a minute; a last bin takes what is slower.
BOUNDS: tuple[float, ...] = tuple(0.0005 * (4 / 3) ** i for i in range(42))


class _Ring:
    """One member's buckets."""

    __slots__ = ("numbers", "counts", "errors", "bins")

    def __init__(self) -> None:
        #: The absolute bucket number (time // STEP) each slot holds, or -1.
        self.numbers = [-1] * BUCKETS
        self.counts = [0] * BUCKETS
        self.errors = [0] * BUCKETS
        self.bins = [[0] * (len(BOUNDS) + 1) for _ in range(BUCKETS)]

    def slot(self, number: int) -> int:
        index = number % BUCKETS
        if self.numbers[index] != number:
            self.numbers[index] = number
            self.counts[index] = 0
            self.errors[index] = 0
            bins = self.bins[index]
            for i in range(len(bins)):
                bins[i] = 0
        return index


def _quantile(bins: list[int], count: int, q: float) -> float | None:
    """The upper bound (ms) of the bin holding the C{q} quantile, or C{None} without requests."""
    if not count:
        return None
    rank = q * count
    seen = 0
    for i, n in enumerate(bins):
        seen += n
        if seen >= rank and n:
            bound = BOUNDS[i] if i < len(BOUNDS) else BOUNDS[-1] * 4 / 3
            return round(bound * 1000, 2)
    return None  # pragma: no cover - seen reaches count


class MemberSeries:
    """
    Per member (balancer and member name), the buckets of the last
    L{BUCKETS} × L{STEP} seconds.

    @ivar clock: gives the time (C{seconds()}), the reactor in a proxy.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._rings: dict[tuple[str, str], _Ring] = {}

    def observe(self, entry: dict[str, Any]) -> None:
        """The per-request hook: count one finished request (an access-log entry)."""
        key = (entry["balancer"], entry["member"])
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = _Ring()
        index = ring.slot(int(self.clock.seconds() // STEP))
        ring.counts[index] += 1
        if entry["status"] >= 500:
            ring.errors[index] += 1
        ring.bins[index][bisect_left(BOUNDS, entry["upstream_seconds"])] += 1

    def snapshot(self) -> dict[str, Any]:
        """
        The series as JSON-able values: C{step}, C{times} (each bucket's
        start, oldest first, the current one last) and per member its
        C{balancer}, C{member}, C{requests} (per bucket), C{rps} and
        C{errors} (per second) and C{p50}/C{p99} (milliseconds, C{None}
        without requests).
        """
        now = self.clock.seconds()
        current = int(now // STEP)
        numbers = range(current - BUCKETS + 1, current + 1)
        # The current bucket has run for part of its STEP only.
        spans = [float(STEP)] * (BUCKETS - 1) + [max(1.0, now - current * STEP)]
        members = []
        for (balancer, member), ring in self._rings.items():
            requests: list[int] = []
            rps: list[float] = []
            errors: list[float] = []
            p50: list[float | None] = []
            p99: list[float | None] = []
            for number, span in zip(numbers, spans, strict=True):
                index = number % BUCKETS
                if ring.numbers[index] != number:
                    requests.append(0)
                    rps.append(0.0)
                    errors.append(0.0)
                    p50.append(None)
                    p99.append(None)
                    continue
                count = ring.counts[index]
                requests.append(count)
                rps.append(round(count / span, 2))
                errors.append(round(ring.errors[index] / span, 2))
                p50.append(_quantile(ring.bins[index], count, 0.5))
                p99.append(_quantile(ring.bins[index], count, 0.99))
            members.append({
                "balancer": balancer, "member": member, "requests": requests,
                "rps": rps, "errors": errors, "p50": p50, "p99": p99,
            })  # fmt: skip
        return {"step": STEP, "times": [n * STEP for n in numbers], "members": members}
