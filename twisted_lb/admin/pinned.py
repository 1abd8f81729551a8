"""
Sticky sessions still pinned to draining members.

A draining member keeps serving the requests whose session route names it
(pitfall 9: draining must not drop logged-in users).  The proxy keeps no
session table, so "how many users are still on it" can only be learnt from
traffic: every request that the balancer sent to a draining member because of
its session route is noted with its session id, and the manager shows how
many distinct sessions were seen in the last L{WINDOW} seconds and when the
last one came.  When that reaches zero, the member can be disabled or
removed without cutting anyone off (sessions idle longer than the window are
not counted: they may still come back until Tomcat expires them).

Only requests to draining members do any of this work.
"""

from __future__ import annotations

from typing import Any

from twisted_lb.balancer import MemberStatus, find_session_ids

__all__ = ["WINDOW", "PinnedSessions"]

#: Seconds a session seen on a draining member is counted.
WINDOW = 600.0
#: At most this many sessions are remembered per member.
LIMIT = 100_000

_DRAINING = MemberStatus.DRAINING


class PinnedSessions:
    """
    Sessions seen on draining members, per balancer and member name.
    """

    def __init__(self, balancers: dict[str, Any], clock: Any, window: float = WINDOW) -> None:
        self._balancers = balancers
        self._clock = clock
        self.window = window
        self._seen: dict[tuple[str, str], dict[bytes, float]] = {}

    def observe(self, entry: dict[str, Any]) -> None:
        """Note a finished request (an access-log entry) that was routed by its session."""
        built = self._balancers.get(entry["balancer"])
        if built is None or built.config.sticky is None:
            return
        member = built.balancer.member_by_name(entry["member"])
        if member is None or member.status is not _DRAINING:
            return
        request = entry["request"]
        cookies = request.requestHeaders.getRawHeaders(b"cookie", [])
        ids = find_session_ids(cookies, request.uri, built.config.sticky)
        suffix = (built.config.sticky.separator + member.route).encode("latin-1", "replace")
        session = next((i for i in ids if i.endswith(suffix)), ids[0] if ids else None)
        if session is None:
            return
        seen = self._seen.setdefault((entry["balancer"], member.name), {})
        now = self._clock.seconds()
        if len(seen) >= LIMIT and session not in seen:
            self._prune(seen, now)
            if len(seen) >= LIMIT:
                return
        seen[session] = now

    def _prune(self, seen: dict[bytes, float], now: float) -> None:
        old = [key for key, at in seen.items() if now - at > self.window]
        for key in old:
            del seen[key]

    def summary(self, balancer: str, member: str) -> dict[str, Any]:
        """
        @return: C{{"sessions": N, "last_seen_seconds_ago": S or None,
            "window_seconds": W}} for one member.
        """
        seen = self._seen.get((balancer, member))
        now = self._clock.seconds()
        if seen:
            self._prune(seen, now)
        last = max(seen.values()) if seen else None
        return {
            "sessions": len(seen) if seen else 0,
            "last_seen_seconds_ago": None if last is None else round(now - last, 1),
            "window_seconds": self.window,
        }
