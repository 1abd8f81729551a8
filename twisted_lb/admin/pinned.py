"""
Sticky sessions pinned to each member.

The proxy keeps no session table, so "how many users are on this member" can
only be learnt from traffic: every request that the balancer sent to a member
because of its session route is noted with its session id.

For every member, the distinct sessions seen in the last L{WINDOW} seconds
are estimated by a L{DistinctCounter}: a HyperLogLog sketch per minute, the
sketches of the window merged when the figure is read.  Each sticky request
costs at most one hash and one register update; each member costs a fixed
11 sketches of C{2 ** PRECISION} bytes (22 KiB), whatever the traffic.  The
estimate's relative standard error is L{RELATIVE_ERROR} (2.3 %).  The session
id found in a C{Cookie} header is remembered by that header (a bounded table
per balancer), so a session's later requests neither parse nor hash it again.

A draining member is counted exactly as well (pitfall 9: draining must not
drop logged-in users): its sessions are remembered with the time each was
last seen (up to L{LIMIT}), and the manager shows how many were seen in the
last L{WINDOW} seconds and when the last one came.  When that reaches zero,
the member can be disabled or removed without cutting anyone off (sessions
idle longer than the window are not counted: they may still come back until
Tomcat expires them).
"""

from __future__ import annotations

import math
from hashlib import blake2b as _blake2b
from typing import Any

from twisted_lb.balancer import MemberStatus, find_session_ids

__all__ = [
    "BUCKET",
    "RECENT_LIMIT",
    "PRECISION",
    "RELATIVE_ERROR",
    "WINDOW",
    "DistinctCounter",
    "PinnedSessions",
]

#: Seconds a session seen on a member is counted.
WINDOW = 600.0
#: At most this many sessions are remembered exactly per draining member.
LIMIT = 100_000
#: Seconds covered by one sketch of a L{DistinctCounter}.
BUCKET = 60.0
#: A sketch has C{2 ** PRECISION} one-byte registers.
PRECISION = 11
#: The relative standard error of an estimate (1.04 / sqrt(registers)).
RELATIVE_ERROR = 1.04 / math.sqrt(2**PRECISION)

#: At most this many Cookie headers per balancer are remembered with their session id.
RECENT_LIMIT = 4096
#: Longer Cookie headers are not remembered (so the table stays under 5 MiB per balancer).
RECENT_MAX_HEADER = 1024

_DRAINING = MemberStatus.DRAINING
_UNKNOWN: Any = object()
_from_bytes = int.from_bytes
_HASH_BITS = 64
#: 2 ** -k for every register value k.
_POWERS = [2.0**-k for k in range(_HASH_BITS + 2)]


class DistinctCounter:
    """
    An approximate count of the distinct keys seen in a sliding window.

    The window is cut into buckets of L{BUCKET} seconds aligned on the
    clock; each bucket has its own HyperLogLog sketch (Flajolet et al.,
    2007, with linear counting for small counts), and a ring of them covers
    the window.  A key seen at time C{t} is counted until the end of the
    bucket C{window} seconds after the one holding C{t}: at least C{window}
    seconds and less than C{window + bucket}.

    Noting a key is one 64-bit BLAKE2b hash and one register update (a
    sketch is cleared when its bucket comes round again, once a bucket);
    reading the count merges the sketches (the past buckets' merge is kept
    until the current bucket ends).

    @ivar registers: registers per sketch (C{2 ** precision}).
    """

    __slots__ = (
        "_bucket",
        "_current",
        "_current_from",
        "_current_until",
        "_past",
        "_past_for",
        "_rest_bits",
        "_rest_mask",
        "_sketches",
        "_starts",
        "registers",
    )

    def __init__(
        self, window: float = WINDOW, bucket: float = BUCKET, precision: int = PRECISION
    ) -> None:
        """
        @param window: seconds a key is counted (a multiple of C{bucket}).
        @param bucket: seconds per sketch.
        @param precision: C{log2} of the registers per sketch (4 to 16).
        """
        if not 4 <= precision <= 16:
            raise ValueError(f"precision must be between 4 and 16, not {precision}")
        self._bucket = bucket
        self.registers = 1 << precision
        self._rest_bits = _HASH_BITS - precision
        self._rest_mask = (1 << self._rest_bits) - 1
        count = int(math.ceil(window / bucket)) + 1
        self._sketches = [bytearray(self.registers) for _ in range(count)]
        #: The bucket number each sketch holds (-1: none yet).
        self._starts = [-1] * count
        self._past: bytes | None = None
        self._past_for = -1
        self._current = self._sketches[0]
        self._current_from = self._current_until = 0.0

    def add(self, key: bytes, now: float) -> None:
        """Note C{key} seen at C{now}."""
        self.add_hash(hash_key(key), now)

    def add_hash(self, h: int, now: float) -> None:
        """Note a key seen at C{now}, given its L{hash_key}."""
        if not self._current_from <= now < self._current_until:
            self._rotate(now)
        rank = self._rest_bits - (h & self._rest_mask).bit_length() + 1
        index = h >> self._rest_bits
        sketch = self._current
        if rank > sketch[index]:
            sketch[index] = rank

    def _rotate(self, now: float) -> None:
        """Make the sketch of C{now}'s bucket current, cleared if it held an older bucket."""
        number = int(now // self._bucket)
        slot = number % len(self._sketches)
        sketch = self._sketches[slot]
        if self._starts[slot] != number:
            sketch[:] = bytes(self.registers)
            self._starts[slot] = number
        self._current = sketch
        self._current_from = number * self._bucket
        self._current_until = self._current_from + self._bucket

    def count(self, now: float) -> int:
        """The estimated number of distinct keys seen in the window ending at C{now}."""
        number = int(now // self._bucket)
        oldest = number - len(self._sketches) + 1
        if self._past_for != number:
            past = bytes(self.registers)
            for start, sketch in zip(self._starts, self._sketches, strict=True):
                if oldest <= start < number:
                    past = bytes(map(max, past, sketch))
            self._past, self._past_for = past, number
        merged = self._past
        assert merged is not None
        slot = number % len(self._sketches)
        if self._starts[slot] == number:
            merged = bytes(map(max, merged, self._sketches[slot]))
        return _estimate(merged)


def hash_key(key: bytes) -> int:
    """The 64-bit hash a L{DistinctCounter} counts C{key} by (BLAKE2b, the same in every process)."""
    return _from_bytes(_blake2b(key, digest_size=8).digest(), "big")


def _estimate(registers: bytes) -> int:
    m = len(registers)
    zeros = registers.count(0)
    if zeros == m:
        return 0
    total = sum(registers.count(k) * _POWERS[k] for k in range(max(registers) + 1))
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / total
    if raw <= 2.5 * m and zeros:
        return round(m * math.log(m / zeros))
    return round(raw)


class PinnedSessions:
    """
    Sessions seen on each member (estimated), and on draining members
    (exactly), per balancer and member name.
    """

    def __init__(self, balancers: dict[str, Any], clock: Any, window: float = WINDOW) -> None:
        self._balancers = balancers
        self._clock = clock
        self.window = window
        self._seen: dict[tuple[str, str], dict[bytes, float]] = {}
        self._counters: dict[tuple[str, str], DistinctCounter] = {}
        #: Per balancer: the sticky settings, and the session (id, hash) of recent Cookie headers.
        self._recent: dict[str, tuple[Any, dict[bytes, tuple[bytes, int] | None]]] = {}
        self._next_forget = 0.0

    def observe(self, entry: dict[str, Any]) -> None:
        """Note a finished request (an access-log entry) that was routed by its session."""
        built = self._balancers.get(entry["balancer"])
        if built is None or built.config.sticky is None:
            return
        member = built.balancer.member_by_name(entry["member"])
        if member is None:
            return
        found = self._session(entry["balancer"], built.config.sticky, member, entry["request"])
        if found is None:
            return
        session, h = found
        key = (entry["balancer"], member.name)
        now = self._clock.seconds()
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = DistinctCounter(self.window)
        counter.add_hash(h, now)
        if member.status is not _DRAINING:
            return
        seen = self._seen.setdefault(key, {})
        if len(seen) >= LIMIT and session not in seen:
            self._prune(seen, now)
            if len(seen) >= LIMIT:
                return
        seen[session] = now

    def _session(
        self, balancer: str, sticky: Any, member: Any, request: Any
    ) -> tuple[bytes, int] | None:
        """
        The session id a request was routed by, and its L{hash_key}.

        A browser sends the same C{Cookie} header with every request of a
        session, so the answer for a request with one short C{Cookie} header
        and no path parameter is remembered by that header (up to
        L{RECENT_LIMIT} headers per balancer, forgotten all at once past
        that, and when the balancer's sticky settings change).
        """
        cookies = request.requestHeaders.getRawHeaders(b"cookie", [])
        uri = request.uri
        table: dict[bytes, tuple[bytes, int] | None] | None = None
        if len(cookies) == 1 and len(cookies[0]) <= RECENT_MAX_HEADER and b";" not in uri:
            recent = self._recent.get(balancer)
            if recent is None or recent[0] is not sticky:
                recent = self._recent[balancer] = (sticky, {})
            table = recent[1]
            known = table.get(cookies[0], _UNKNOWN)
            if known is not _UNKNOWN:
                return known
        ids = find_session_ids(cookies, uri, sticky)
        if not ids:
            found = None
        elif len(ids) == 1:
            found = (ids[0], hash_key(ids[0]))
        else:  # the one naming this member, which depends on the member: not remembered
            suffix = (sticky.separator + member.route).encode("latin-1", "replace")
            session = next((i for i in ids if i.endswith(suffix)), ids[0])
            return session, hash_key(session)
        if table is not None:
            if len(table) >= RECENT_LIMIT:
                table.clear()
            table[cookies[0]] = found
        return found

    def _prune(self, seen: dict[bytes, float], now: float) -> None:
        old = [key for key, at in seen.items() if now - at > self.window]
        for key in old:
            del seen[key]

    def _forget_removed(self) -> None:
        """Drop what is kept for members (or balancers) that are gone, so memory follows the members."""
        for key in [*self._counters, *self._seen]:
            built = self._balancers.get(key[0])
            if built is None or built.balancer.member_by_name(key[1]) is None:
                self._counters.pop(key, None)
                self._seen.pop(key, None)
        for balancer in [b for b in self._recent if b not in self._balancers]:
            del self._recent[balancer]

    def estimate(self, balancer: str, member: str) -> int:
        """The estimated distinct sessions seen on a member in the window."""
        counter = self._counters.get((balancer, member))
        return 0 if counter is None else counter.count(self._clock.seconds())

    def summary(self, balancer: str, member: str) -> dict[str, Any]:
        """
        What the manager shows of a member's sessions.

        @return: C{{"sessions": N, "exact": bool, "last_seen_seconds_ago": S
            or None, "window_seconds": W, "relative_error": E}}: N is exact
            (and the last one's age known) for a draining member, else
            estimated with a relative standard error E.
        """
        built = self._balancers.get(balancer)
        found = built.balancer.member_by_name(member) if built is not None else None
        draining = found is not None and found.status is _DRAINING
        now = self._clock.seconds()
        if now >= self._next_forget:
            self._forget_removed()
            self._next_forget = now + BUCKET
        out: dict[str, Any] = {
            "exact": draining,
            "last_seen_seconds_ago": None,
            "window_seconds": self.window,
            "relative_error": 0.0 if draining else round(RELATIVE_ERROR, 4),
        }
        if not draining:
            out["sessions"] = self.estimate(balancer, member)
            return out
        seen = self._seen.get((balancer, member))
        if seen:
            self._prune(seen, now)
        last = max(seen.values()) if seen else None
        out["sessions"] = len(seen) if seen else 0
        out["last_seen_seconds_ago"] = None if last is None else round(now - last, 1)
        return out
