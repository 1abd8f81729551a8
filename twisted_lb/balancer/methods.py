"""
The load-balancing methods: pure selection functions over the usable members of one lbset.

Each function receives the candidates (usable members of one lbset, in configuration order,
never empty) and returns the chosen one, updating the counters the method keeps.  They are the
httpd 2.4 algorithms (C{mod_lbmethod_byrequests}, C{mod_lbmethod_bybusyness},
C{mod_lbmethod_bytraffic}), with each member's C{weight} in place of its C{lbfactor}: the two
differ only while a member is in slow start, whose ramp then applies to every method (see the
functions).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from .member import Member

__all__ = [
    "LBMethod",
    "Selector",
    "select_bybusyness",
    "select_byrequests",
    "select_bytraffic",
    "selector_for",
]

#: A selection function: usable candidates (non-empty, configuration order) to the chosen one.
Selector = Callable[[Sequence[Member]], Member]


class LBMethod(enum.Enum):
    """
    How new sessions are spread over the members (httpd's C{lbmethod=}).

    @cvar BYREQUESTS: smooth weighted round robin on request counts.
    @cvar BYBUSYNESS: fewest requests in flight, ties broken by the byrequests counters.
    @cvar BYTRAFFIC: lowest bytes transferred relative to the load factor.
    """

    BYREQUESTS = "byrequests"
    BYBUSYNESS = "bybusyness"
    BYTRAFFIC = "bytraffic"


def select_byrequests(candidates: Sequence[Member]) -> Member:
    """
    httpd's C{byrequests}: every candidate's C{lbstatus} grows by its C{weight}, the one with
    the highest C{lbstatus} wins (the earlier one on ties) and gives back the total.

    @param candidates: usable members of one lbset, in configuration order; not empty.
    @return: the chosen member.
    """
    total = 0
    best = candidates[0]
    best_status = 0
    first = True
    for member in candidates:
        factor = member.weight
        status = member.lbstatus + factor
        member.lbstatus = status
        total += factor
        if first or status > best_status:
            best = member
            best_status = status
            first = False
    best.lbstatus = best_status - total
    return best


def select_bybusyness(candidates: Sequence[Member]) -> Member:
    """
    httpd's C{bybusyness}: the fewest requests in flight wins; ties go to the highest
    byrequests C{lbstatus} (then the earlier member), and the byrequests counters move as in
    L{select_byrequests}.  A member in slow start counts its requests in flight divided by its
    ramp fraction (C{weight / lbfactor}), so that it takes that fraction of the load.

    @param candidates: usable members of one lbset, in configuration order; not empty.
    @return: the chosen member.
    """
    total = 0
    best = candidates[0]
    best_busy = 0.0
    best_status = 0
    first = True
    for member in candidates:
        factor = member.weight
        status = member.lbstatus + factor
        member.lbstatus = status
        total += factor
        busy: float = member.in_flight
        if factor != member.lbfactor:
            busy = busy * member.lbfactor / factor
        if first or busy < best_busy or (busy == best_busy and status > best_status):
            best = member
            best_busy = busy
            best_status = status
            first = False
    best.lbstatus = best_status - total
    return best


def select_bytraffic(candidates: Sequence[Member]) -> Member:
    """
    httpd's C{bytraffic}: the lowest C{(bytes_in + bytes_out + traffic_base) / weight} wins,
    the earlier member on ties.  Compared exactly, by cross-multiplication.  C{traffic_base}
    starts a member that comes back level with the least loaded one (httpd leaves it at its old
    total, so that it takes every request until it catches up).  During slow start the member's
    score is that level plus its bytes since it came back divided by its ramped weight.

    @param candidates: usable members of one lbset, in configuration order; not empty.
    @return: the chosen member.
    """
    best = candidates[0]
    best_traffic: float = _traffic(best)
    best_factor = best.weight
    for member in candidates:
        traffic = _traffic(member)
        factor = member.weight
        if traffic * best_factor < best_traffic * factor:
            best = member
            best_traffic = traffic
            best_factor = factor
    return best


def _traffic(member: Member) -> float:
    """The bytes C{bytraffic} counts for a member (see L{select_bytraffic})."""
    traffic: float = member.bytes_in + member.bytes_out + member.traffic_base
    if member.weight != member.lbfactor:
        traffic -= member.traffic_level * (member.lbfactor - member.weight)
    return traffic


_SELECTORS: dict[LBMethod, Selector] = {
    LBMethod.BYREQUESTS: select_byrequests,
    LBMethod.BYBUSYNESS: select_bybusyness,
    LBMethod.BYTRAFFIC: select_bytraffic,
}


def selector_for(method: LBMethod) -> Selector:
    """
    The selection function of a method.

    @param method: the method.
    @return: its selection function.
    """
    return _SELECTORS[method]
