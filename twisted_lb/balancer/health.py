"""
Active health checks and slow start, as the balancer decides them.

The I/O side runs the checks (CPING, an HTTP request, a TCP connect) and reports each result;
here are the rules it does not decide: when each member is due (staggered over the interval, one
check of a member at a time), how many consecutive results change a member's state (HAProxy's
C{rise}/C{fall}, Apache's C{hcpasses}/C{hcfails}), and how a member's weight ramps up after it
comes back (HAProxy's C{slowstart}).  Everything is computed from the injected clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["CheckPolicy", "CheckState", "HealthChange", "ramp_weight", "stagger"]


def _positive_number(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{attribute.name} must be a number of seconds > 0, not {value!r}")


def _count(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, not {value!r}")


@attrs.frozen
class CheckPolicy:
    """
    How often a member is checked and how many results change its state.

    @ivar interval: seconds between two checks of a member that is up.
    @ivar passes: consecutive passed checks that bring a member in error back.
    @ivar fails: consecutive failed checks that put a member that is up in error.
    @ivar down_interval: seconds between two checks of a member in error (HAProxy's
        C{downinter}); by default C{interval}.
    """

    interval: float = attrs.field(default=5.0, validator=_positive_number)
    passes: int = attrs.field(default=2, validator=_count)
    fails: int = attrs.field(default=3, validator=_count)
    down_interval: float = attrs.field(
        default=attrs.Factory(lambda self: self.interval, takes_self=True),
        validator=_positive_number,
    )


class HealthChange(enum.Enum):
    """
    What a check result did to a member.

    @cvar DOWN: the member failed C{fails} checks in a row and is now in error.
    @cvar UP: the member was in error and passed C{passes} checks in a row; it is back.
    """

    DOWN = "down"
    UP = "up"


@attrs.define
class CheckState:
    """
    The active-check record of one member (mutable; kept by the balancer).

    @ivar ok: whether the last check (or probe) passed; C{None} before the first.
    @ivar at: clock time the last check ended.
    @ivar detail: what the last check saw (C{"HTTP 200"}, C{"CPONG in 2 ms"},
        C{"connection refused"}).
    @ivar duration: seconds the last check took.
    @ivar passes: consecutive passed checks up to now.
    @ivar fails: consecutive failed checks up to now.
    @ivar running: whether a check of the member is under way.
    @ivar started: clock time the running (or last) check began.
    @ivar next_at: clock time the next check is due; C{None} until first scheduled.
    """

    ok: bool | None = None
    at: float | None = None
    detail: str = ""
    duration: float | None = None
    passes: int = 0
    fails: int = 0
    running: bool = False
    started: float | None = None
    next_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """
        The record as plain JSON-able values.

        @return: a new dictionary with the keys C{ok}, C{at}, C{detail}, C{duration},
            C{passes}, C{fails}, C{running} and C{next_at}.
        """
        return {
            "ok": self.ok,
            "at": self.at,
            "detail": self.detail,
            "duration": self.duration,
            "passes": self.passes,
            "fails": self.fails,
            "running": self.running,
            "next_at": self.next_at,
        }

    def record(self, ok: bool, detail: str, now: float) -> None:
        """
        Count one result.

        @param ok: whether it passed.
        @param detail: what it saw.
        @param now: the clock time it ended.
        """
        self.ok = ok
        self.at = now
        self.detail = detail
        self.duration = None if self.started is None or not self.running else now - self.started
        self.running = False
        if ok:
            self.passes += 1
            self.fails = 0
        else:
            self.fails += 1
            self.passes = 0


def stagger(count: int, interval: float) -> list[float]:
    """
    Offsets that spread C{count} first checks evenly over one interval, so that members are not
    all checked at the same instant (the first one at once).

    @param count: how many members are scheduled together.
    @param interval: their check interval.
    @return: C{count} offsets in seconds, from C{0} up to below C{interval}.
    """
    return [interval * k / count for k in range(count)]


def ramp_weight(lbfactor: int, since: float, slow_start: float, now: float) -> int | None:
    """
    The effective weight of a member in slow start: its C{lbfactor} scaled by the fraction of
    C{slow_start} seconds elapsed since it came back, at least 1.

    @param lbfactor: the member's full weight.
    @param since: clock time the member came back.
    @param slow_start: the ramp's length in seconds.
    @param now: the clock time.
    @return: the weight, or C{None} once the ramp is over.
    """
    elapsed = now - since
    if elapsed >= slow_start:
        return None
    return max(1, int(lbfactor * max(0.0, elapsed) / slow_start))


def traffic_level(members: Sequence[Any]) -> float | None:
    """
    The lowest C{bytraffic} score (bytes per weight) among C{members}.

    @param members: members with C{bytes_in}, C{bytes_out}, C{traffic_base} and C{lbfactor}.
    @return: the score, or C{None} if there are none.
    """
    scores = [(m.bytes_in + m.bytes_out + m.traffic_base) / m.lbfactor for m in members]
    return min(scores) if scores else None
