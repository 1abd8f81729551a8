"""
Prometheus metrics of one proxy, in a registry of its own.

Two kinds:

 - per-request counters and histograms, updated by L{RequestMetrics.observe}
   (the access-log hook) through label children bound once per member (at
   start-up, and on first use by a member added later), so that a request
   costs a dictionary lookup and a few increments;
 - gauges and member counters read from the balancers' snapshots at scrape
   time by L{SnapshotCollector}, so that requests pay nothing for them.

With C{workers} > 1 the supervisor gives its workers a directory of their
own in C{PROMETHEUS_MULTIPROC_DIR}: prometheus_client's multiprocess mode.
Every worker then records its requests there, and publishes its member
counters and requests in flight there once a second (L{MemberCounters});
the worker that serves C{/metrics} sums the files of all of them. Member
health and state gauges stay that worker's view (health state is per
process; manager changes reach every worker through the state file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .pinned import PinnedSessions

__all__ = ["MULTIPROCESS_ENV", "MemberCounters", "RequestMetrics", "SnapshotCollector", "STATES"]

#: The environment variable of prometheus_client's multiprocess mode: set by
#: the supervisor for its workers (read when prometheus_client is imported).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between two publications of a worker's member counters.
PUBLISH_INTERVAL = 1.0

#: The member states, one C{twisted_lb_member_state} series each.
STATES = ("active", "draining", "disabled", "standby")
#: Latency buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Status classes, indexed by C{status // 100} (0 for anything out of range).
_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
#: The member label of requests that reached no member (no member usable).
NO_MEMBER = "-"


class _Bound:
    """The label children of one balancer and member."""

    __slots__ = ("by_class", "duration", "first_byte", "attempts", "retries", "route_changes")

    def __init__(self, metrics: RequestMetrics, balancer: str, member: str) -> None:
        self.by_class = tuple(metrics.requests.labels(balancer, member, c) for c in _CLASSES)
        self.duration = metrics.duration.labels(balancer, member)
        self.first_byte = metrics.first_byte.labels(balancer, member)
        self.attempts = metrics.attempts.labels(balancer)
        self.retries = metrics.retries.labels(balancer)
        self.route_changes = metrics.route_changes.labels(balancer)


class RequestMetrics:
    """
    The metrics of one proxy, its registry, and the per-request hook.

    @ivar registry: this proxy's own registry (never the global one).
    """

    def __init__(self, balancers: dict[str, Any], pinned: PinnedSessions | None = None) -> None:
        self.registry = CollectorRegistry()
        #: prometheus_client's multiprocess directory (workers), or C{None}.
        self.shared_dir = os.environ.get(MULTIPROCESS_ENV) or None
        self._balancers = balancers
        self._pinned = pinned
        r = self.registry
        self.requests = Counter(
            "twisted_lb_requests", "Proxied requests by balancer, member and status class.",
            ["balancer", "member", "code_class"], registry=r,
        )
        self.duration = Histogram(
            "twisted_lb_request_duration_seconds",
            "Time from dispatch to the end of the response (retries included).",
            ["balancer", "member"], buckets=BUCKETS, registry=r,
        )
        self.first_byte = Histogram(
            "twisted_lb_upstream_response_seconds",
            "Time from dispatch until the member's response began (retries included).",
            ["balancer", "member"], buckets=BUCKETS, registry=r,
        )
        self.attempts = Counter(
            "twisted_lb_attempts", "Members tried, over all requests.", ["balancer"], registry=r
        )
        self.retries = Counter(
            "twisted_lb_retries", "Attempts after the first (failovers to another member).",
            ["balancer"], registry=r,
        )
        self.route_changes = Counter(
            "twisted_lb_route_changes",
            "Requests whose session route named an unusable member and went to another.",
            ["balancer"], registry=r,
        )
        #: What C{/metrics} shows: this registry, or with workers the sum of
        #: every worker's files and this worker's member gauges.
        self.exposed = r
        #: With workers: this worker's member counters, published to the files.
        self.members: MemberCounters | None = None
        if self.shared_dir is None:
            r.register(SnapshotCollector(balancers, pinned))
        else:
            self.members = MemberCounters(balancers, r)
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path=self.shared_dir)
            self.exposed.register(SnapshotCollector(balancers, pinned, summed=False))
        self._bound: dict[tuple[str, str], _Bound] = {}
        for name, built in balancers.items():
            self.bind(name, NO_MEMBER)
            for member in built.balancer.members:
                self.bind(name, member.name)

    def bind(self, balancer: str, member: str) -> None:
        """Bind the label children of a member (done for each new member)."""
        self._bound[(balancer, member)] = _Bound(self, balancer, member)

    def observe(self, entry: dict[str, Any]) -> None:
        """The per-request hook: count one finished request (an access-log entry)."""
        key = (entry["balancer"], entry["member"])
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _Bound(self, *key)
        code_class = entry["status"] // 100
        bound.by_class[code_class if 0 < code_class < 6 else 0].inc()
        bound.duration.observe(entry["upstream_seconds"])
        first_byte = entry["first_byte_seconds"]
        if first_byte is not None:
            bound.first_byte.observe(first_byte)
        attempts = entry["attempts"]
        if attempts:
            bound.attempts.inc(attempts)
            if attempts > 1:
                bound.retries.inc(attempts - 1)
        if entry["route_changed"]:
            bound.route_changes.inc()
        if entry["sticky"] and self._pinned is not None:
            self._pinned.observe(entry)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """
        The metrics in the format the scraper asks for (Prometheus text, or
        OpenMetrics when its C{Accept} header says so).

        @return: the body and its content type.
        """
        encoder, content_type = choose_encoder(accept or "")
        self.publish()
        return encoder(self.exposed), content_type

    def publish(self) -> None:
        """With workers: bring this worker's member counters in the files up to date."""
        if self.members is not None:
            self.members.publish()


def _check_ok(check: Any) -> bool | None:
    if isinstance(check, dict):
        for key in ("ok", "healthy", "up"):
            if isinstance(check.get(key), bool):
                return bool(check[key])
    return None


#: The member counters of a balancer snapshot: (snapshot key, metric name, help).
_MEMBER_COUNTERS = (
    ("elected", "twisted_lb_member_elected", "Times the balancer chose the member."),
    ("errors", "twisted_lb_member_errors", "Failures recorded against the member."),
    ("bytes_in", "twisted_lb_member_received_bytes", "Bytes received from the member."),
    ("bytes_out", "twisted_lb_member_sent_bytes", "Bytes sent to the member."),
)
_IN_FLIGHT = ("twisted_lb_member_in_flight", "Requests being served by the member.")
_MEMBER_LABELS = ("balancer", "member", "route")


class MemberCounters:
    """
    A worker's member counters and requests in flight, copied from the
    balancers' snapshots into prometheus_client's multiprocess files (counters
    by their increase since the last copy, requests in flight as a gauge
    summed over the live workers), so that C{/metrics} sums every worker.
    """

    def __init__(self, balancers: dict[str, Any], registry: CollectorRegistry) -> None:
        self._balancers = balancers
        self._counters = [
            (key, Counter(name, text, _MEMBER_LABELS, registry=registry))
            for key, name, text in _MEMBER_COUNTERS
        ]
        self._in_flight = Gauge(
            *_IN_FLIGHT, _MEMBER_LABELS, registry=registry, multiprocess_mode="livesum"
        )
        self._last: dict[tuple[str, str, str], dict[str, float]] = {}

    def publish(self) -> None:
        """Copy what changed since the last call."""
        seen = set()
        for name, built in list(self._balancers.items()):
            for m in built.balancer.snapshot()["members"]:
                labels = (name, m["name"], m["route"])
                seen.add(labels)
                last = self._last.setdefault(labels, {})
                for key, counter in self._counters:
                    value = m[key]
                    # A member rebuilt by a reload starts again from 0.
                    increase = value - last.get(key, 0) if value >= last.get(key, 0) else value
                    if increase:
                        counter.labels(*labels).inc(increase)
                    last[key] = value
                self._in_flight.labels(*labels).set(m["in_flight"])
        for labels in [k for k in self._last if k not in seen]:
            # A member that left the configuration serves nothing any more.
            self._in_flight.labels(*labels).set(0)
            del self._last[labels]


class SnapshotCollector(Collector):
    """Member gauges and counters, read from the balancers' snapshots at scrape time."""

    def __init__(
        self, balancers: dict[str, Any], pinned: PinnedSessions | None = None, summed: bool = True
    ) -> None:
        """
        @param summed: whether to show the member counters and requests in
            flight too; with workers (C{False}) they come summed from the
            multiprocess files (L{MemberCounters}).
        """
        self._balancers = balancers
        self._pinned = pinned
        self._summed = summed

    def collect(self) -> Iterator[Metric]:
        labels = ["balancer", "member", "route"]

        def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=labels + list(extra))

        def counter(name: str, text: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, text, labels=labels)

        up = gauge("twisted_lb_member_up", "1 when the member may take requests (usable).")
        in_error = gauge("twisted_lb_member_in_error", "1 when the member is out after an error.")
        state = gauge("twisted_lb_member_state", "1 for the member's administrative state.",
                      ("state",))
        in_flight = gauge(*_IN_FLIGHT)
        loadfactor = gauge("twisted_lb_member_loadfactor", "The member's load factor.")
        lbset = gauge("twisted_lb_member_lbset", "The member's lbset.")
        check = gauge("twisted_lb_member_check_up", "1 when the member's last health check passed.")
        pinned = gauge("twisted_lb_member_pinned_sessions",
                       "Distinct sticky sessions seen on the member within the manager's window "
                       "(exact while it drains, else estimated).")
        counters = [(key, counter(name, text)) for key, name, text in _MEMBER_COUNTERS]
        for name, built in list(self._balancers.items()):
            for m in built.balancer.snapshot()["members"]:
                key = [name, m["name"], m["route"]]
                up.add_metric(key, 1.0 if m["usable"] and not m["in_error"] else 0.0)
                in_error.add_metric(key, 1.0 if m["in_error"] else 0.0)
                for s in STATES:
                    state.add_metric(key + [s], 1.0 if m["status"] == s else 0.0)
                in_flight.add_metric(key, m["in_flight"])
                loadfactor.add_metric(key, m["loadfactor"])
                lbset.add_metric(key, m["lbset"])
                ok = _check_ok(m.get("check"))
                if ok is not None:
                    check.add_metric(key, 1.0 if ok else 0.0)
                if self._pinned is not None and built.config.sticky is not None:
                    pinned.add_metric(key, self._pinned.summary(name, m["name"])["sessions"])
                for field, family in counters:
                    family.add_metric(key, m[field])
        yield from (up, in_error, state, loadfactor, lbset, check, pinned)
        if self._summed:
            yield in_flight
            yield from (family for _, family in counters)
