"""
The balancer: decides which member serves each attempt of a request.  It does no I/O and never
touches the reactor; time comes from an injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import attrs

from twisted_lb.sticky import StickyConfig

from .clock import SupportsSeconds
from .health import HealthChange, ramp_weight, stagger, traffic_level
from .member import Member, MemberStatus
from .methods import LBMethod, Selector, selector_for
from .pick import NoMemberAvailable, Pick
from .recovery import RetryTrial
from .rendezvous import choose_replacement
from .tables import Tables

__all__ = ["Balancer"]

_ACTIVE = MemberStatus.ACTIVE
_STANDBY = MemberStatus.STANDBY
_DISABLED = MemberStatus.DISABLED


def _check_max_attempts(instance: Balancer, attribute: Any, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_attempts must be None or an integer >= 1, not {value!r}")


def _check_sticky(instance: Balancer, attribute: Any, value: StickyConfig | None) -> None:
    if value is not None and not isinstance(value, StickyConfig):
        raise TypeError(f"sticky must be a StickyConfig or None, not {value!r}")


def _sync_selector(instance: Balancer, attribute: Any, value: LBMethod) -> LBMethod:
    instance._select = selector_for(LBMethod(value))
    return LBMethod(value)


def _as_tuple(members: Iterable[Member]) -> tuple[Member, ...]:
    return tuple(members)


@attrs.define(eq=False)
class Balancer:
    """
    A balancer (httpd's C{balancer://name}): its members, how new sessions are spread, sticky
    sessions, failover and recovery.

    Members in error stay out.  With C{probing} on, only L{record_probe} (driven by the I/O
    side's background probes, see L{probes_due}) or L{record_success} brings them back.  With
    C{probing} off, httpd's retry timer applies, one member at a time (see L{RetryTrial}).

    Members with a L{check_policy <Member.check_policy>} are also checked actively while up:
    L{checks_due} says which are due (first checks staggered over the interval), the I/O side
    reports each result to L{record_check}, and C{fails} failures in a row put a member in
    error, C{passes} passes in a row bring it back.  Their checks replace the probes.

    Unlike httpd, sticky requests do not move the C{byrequests} counters, and a readmitted
    member (or one added, activated or reweighted) restarts the counters of its lbset, so that
    it gets its share of new sessions at once -- ramped up over its C{slow_start} seconds, if
    it has one.

    @ivar name: the balancer's name.
    @ivar clock: the clock.
    @ivar method: how new sessions are spread.
    @ivar sticky: where session routes are found; C{None} disables stickiness.
    @ivar nofailover: refuse (rather than fail over) requests whose route names an unusable
        member.
    @ivar probing: whether background probes, rather than the retry timer, readmit members.
    @ivar trial_timeout: seconds after which a retry-timer trial without outcome is abandoned.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    _members: tuple[Member, ...] = attrs.field(converter=_as_tuple)
    clock: SupportsSeconds = attrs.field(kw_only=True)
    method: LBMethod = attrs.field(
        default=LBMethod.BYREQUESTS,
        kw_only=True,
        converter=LBMethod,
        on_setattr=_sync_selector,
    )
    sticky: StickyConfig | None = attrs.field(
        default=attrs.Factory(StickyConfig),
        kw_only=True,
        validator=_check_sticky,
    )
    nofailover: bool = attrs.field(default=False, kw_only=True)
    _max_attempts: int | None = attrs.field(
        default=None, kw_only=True, validator=_check_max_attempts
    )
    probing: bool = attrs.field(default=True, kw_only=True)
    trial_timeout: float = attrs.field(default=30.0, kw_only=True)

    _select: Selector = attrs.field(init=False, repr=False)
    _t: Tables = attrs.field(init=False, repr=False)
    _errored: set[Member] = attrs.field(init=False, repr=False, factory=set)
    _trial: RetryTrial = attrs.field(init=False, repr=False, factory=RetryTrial)
    _ramping: set[Member] = attrs.field(init=False, repr=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self._select = selector_for(self.method)
        self._t = Tables.build(self._members, self.name)
        self._errored.update(member for member in self._members if member.in_error)

    # -- tables -----------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """
        Recompute the lookup tables (after a change to the member list, or to a member's route,
        lbset or status).
        """
        self._t = Tables.build(self._members, self.name)

    def _restart_counters(self, lbset: int) -> None:
        """
        Zero the C{byrequests} counters of an lbset, so that its members share new sessions by
        load factor from the next pick on.
        """
        for member in self._members:
            if member.lbset == lbset:
                member.lbstatus = 0

    def _check_member(self, member: Member) -> None:
        """
        @raise ValueError: if C{member} is not one of ours.
        """
        if self._t.by_name.get(member.name) is not member:
            raise ValueError(f"{member.name!r} is not a member of balancer {self.name!r}")

    # -- queries ----------------------------------------------------------------------------

    @property
    def members(self) -> tuple[Member, ...]:
        """
        The members, in configuration order.
        """
        return self._members

    @property
    def max_attempts(self) -> int:
        """
        How many members one request may be tried on: the configured value, or by default the
        number of members (each member at most once).
        """
        if self._max_attempts is not None:
            return self._max_attempts
        return max(1, len(self._members))

    def member_by_name(self, name: str) -> Member | None:
        """
        @param name: a member name.
        @return: the member of that name, or C{None}.
        """
        return self._t.by_name.get(name)

    def member_by_route(self, route: str) -> Member | None:
        """
        @param route: a route id.
        @return: the (first non-standby) member with that route, or C{None}.
        """
        holders = self._t.by_route.get(route)
        return holders[0] if holders else None

    def usable(self, member: Member) -> bool:
        """
        Whether a member may take requests at all right now: not disabled and not in error (or
        on its retry-timer trial).  A draining member is usable for its sticky requests only;
        a standby one only when its lbset has no usable active member.

        @param member: the member.
        @return: whether it is usable.
        """
        if self._errored and not self.probing:
            self._trial.refresh(self._members, self.clock.seconds(), self.trial_timeout)
        return member.status is not _DISABLED and (
            not member.in_error or member is self._trial.open
        )

    # -- picking ----------------------------------------------------------------------------

    def pick(self, session_routes: Sequence[str] = (), exclude: Collection[Member] = ()) -> Pick:
        """
        Choose the member for one attempt of a request.

        The first route in C{session_routes} that names a member decides: if that member is
        usable and not excluded, it is chosen (C{sticky=True}); otherwise the request fails
        with C{nofailover}, or goes to a deterministic replacement (C{route_changed=True}).
        Without such a route, the lbmethod chooses among the lowest lbset that has a usable
        member.

        @param session_routes: candidate routes of the request, best first (see
            L{find_session_routes <twisted_lb.balancer.find_session_routes>}).
        @param exclude: members already tried for this request.
        @return: the choice.
        @raise NoMemberAvailable: if no member may take the request.
        """
        if self._errored and not self.probing:
            self._trial.refresh(self._members, self.clock.seconds(), self.trial_timeout)
        if self._ramping:
            self._update_ramps()
        if session_routes and self.sticky is not None:
            by_route = self._t.by_route
            for route in session_routes:
                holders = by_route.get(route)
                if holders is not None:
                    return self._pick_sticky(route, holders, exclude)
        select = self._select
        if not self._errored and not exclude:
            # Fast path: nobody in error, nothing excluded: the tables are the candidates.
            for actives, standbys in self._t.tiers:
                tier = actives or standbys
                if tier:
                    chosen = select(tier) if len(tier) > 1 else tier[0]
                    chosen.elected += 1
                    return self._t.plain[chosen]
            raise NoMemberAvailable(self._why_none(exclude), self.name)
        trial = self._trial.open
        for groups in self._t.tiers:
            for group in groups:
                candidates = [
                    member
                    for member in group
                    if (not member.in_error or member is trial) and member not in exclude
                ]
                if candidates:
                    chosen = select(candidates) if len(candidates) > 1 else candidates[0]
                    self._elect(chosen)
                    return self._t.plain[chosen]
        raise NoMemberAvailable(self._why_none(exclude), self.name)

    def _pick_sticky(
        self, route: str, holders: tuple[Member, ...], exclude: Collection[Member]
    ) -> Pick:
        trial = self._trial.open
        for member in holders:
            if (
                member.status is not _DISABLED
                and (not member.in_error or member is trial)
                and member not in exclude
            ):
                self._elect(member)
                return self._t.sticky[member]
        if self.nofailover:
            raise NoMemberAvailable(
                f"route {route!r} is not usable and nofailover is set", self.name
            )
        # Deterministic replacement (pitfall 8): weighted rendezvous hashing of the route, so that
        # every request of the session, in every process, lands on the same member.
        replacement = choose_replacement(self._t.ranking(route), self._trial.open, exclude)
        if replacement is None:
            raise NoMemberAvailable(
                f"route {route!r} is not usable and no other member is usable", self.name
            )
        self._elect(replacement)
        return Pick(replacement, sticky=False, route_changed=True, session_route=route)

    def _elect(self, member: Member) -> None:
        member.elected += 1
        self._trial.elect(member)

    def _why_none(self, exclude: Collection[Member]) -> str:
        """
        Explain why no member could take a new session.
        """
        if not self._members:
            return "no members"
        accepting = [m for m in self._members if m.status is _ACTIVE or m.status is _STANDBY]
        if not accepting:
            return "no member takes new sessions (all disabled or draining)"
        trial = self._trial.open
        healthy = [m for m in accepting if not m.in_error or m is trial]
        if not healthy:
            if self._trial.member is not None:
                return f"all members in error ({self._trial.member.name!r} is on trial)"
            return "all members in error"
        return "every usable member was already tried for this request"

    # -- recovery ---------------------------------------------------------------------------

    def _mark_error(self, member: Member, reason: str) -> None:
        now = self.clock.seconds()
        if member is self._trial.member:
            member.error_since = now
            self._trial.end()
        elif not member.in_error:
            member.error_since = now
        member.in_error = True
        member.error_reason = reason
        if member in self._t.plain:
            self._errored.add(member)
        self._trial.invalidate()
        self._end_ramp(member)
        check, policy = member.check, member.check_policy
        check.passes = 0
        if policy is not None and not check.running and check.next_at is not None:
            check.next_at = min(check.next_at, now + policy.down_interval)

    def _readmit(self, member: Member) -> None:
        member.in_error = False
        member.error_since = None
        member.error_reason = ""
        self._errored.discard(member)
        if member is self._trial.member:
            self._trial.end()
        self._trial.invalidate()
        if member in self._t.plain:
            self._restart_counters(member.lbset)
            self._come_back(member)

    def record_failure(self, member: Member, reason: str) -> None:
        """
        An attempt on a member failed in a way that shows the member is unfit: put it in error.

        @param member: the member.
        @param reason: why, for the manager page and logs.
        """
        member.errors += 1
        self._mark_error(member, reason)

    def record_success(self, member: Member) -> None:
        """
        An attempt on a member succeeded: readmit it if it was in error.

        @param member: the member.
        """
        if member.in_error:
            self._readmit(member)

    def record_probe(self, member: Member, ok: bool) -> None:
        """
        The outcome of a background probe (CPING for AJP, TCP connect otherwise).  A good probe
        readmits a member in error; a failed one puts a healthy member in error (without
        counting it in C{errors}, which counts failed requests).

        @param member: the member.
        @param ok: whether the probe succeeded.
        """
        member.last_probe_ok = ok
        member.check.record(ok, "probe passed" if ok else "probe failed", self.clock.seconds())
        if ok:
            if member.in_error:
                self._readmit(member)
        elif not member.in_error:
            self._mark_error(member, "probe failed")

    def probes_due(self) -> list[Member]:
        """
        The members the I/O side should probe now: with probing on, every member in error
        without a check policy (in configuration order; the others are checked, see
        L{checks_due}); with probing off, none.

        @return: a new list.
        """
        if not self.probing or not self._errored:
            return []
        return [
            member
            for member in self._members
            if member.in_error and member.check_policy is None
        ]

    # -- active health checks ---------------------------------------------------------------

    def _schedule_checks(self, now: float) -> None:
        """
        Give a first due time to checked members that have none, spread over their interval.
        """
        fresh = [
            m for m in self._members if m.check_policy is not None and m.check.next_at is None
        ]
        by_interval: dict[float, list[Member]] = {}
        for member in fresh:
            by_interval.setdefault(member.check_policy.interval, []).append(  # type: ignore[union-attr]
                member
            )
        for interval, group in by_interval.items():
            for member, offset in zip(group, stagger(len(group), interval), strict=True):
                member.check.next_at = now + offset

    def checks_due(self) -> list[Member]:
        """
        The members whose active check is due now and not already under way, in configuration
        order.  Call L{check_started} for each check begun.

        @return: a new list.
        """
        now = self.clock.seconds()
        self._schedule_checks(now)
        return [
            m
            for m in self._members
            if m.check_policy is not None
            and not m.check.running
            and m.check.next_at is not None
            and m.check.next_at <= now
        ]

    def next_check_at(self) -> float | None:
        """
        When the next check not already under way is due.

        @return: a clock time (maybe past), or C{None} if no member is checked.
        """
        self._schedule_checks(self.clock.seconds())
        times = [
            m.check.next_at
            for m in self._members
            if m.check_policy is not None and not m.check.running and m.check.next_at is not None
        ]
        return min(times) if times else None

    def check_started(self, member: Member) -> None:
        """
        A check of C{member} began; no other is due until L{record_check} reports it.

        @param member: the member.
        """
        member.check.running = True
        member.check.started = self.clock.seconds()

    def record_check(self, member: Member, ok: bool, detail: str = "") -> HealthChange | None:
        """
        The result of an active check.  C{fails} failures in a row put a member that is up in
        error (without counting them in C{errors}, which counts failed requests); C{passes}
        passes in a row bring a member in error back.  The next check is due one interval
        (C{down_interval} for a member in error) after this one began.

        @param member: the member.
        @param ok: whether the check passed.
        @param detail: what it saw, for the manager page and logs.
        @return: the change of state, if any.
        """
        now = self.clock.seconds()
        check = member.check
        started = check.started if check.running and check.started is not None else now
        check.record(ok, detail, now)
        member.last_probe_ok = ok
        policy = member.check_policy
        change = None
        if policy is not None:
            if ok and member.in_error and check.passes >= policy.passes:
                self._readmit(member)
                change = HealthChange.UP
            elif not ok and not member.in_error and check.fails >= policy.fails:
                self._mark_error(member, f"health check failed: {detail}" if detail else
                                 "health check failed")
                change = HealthChange.DOWN
            interval = policy.down_interval if member.in_error else policy.interval
            check.next_at = max(started + interval, now)
        elif ok and member.in_error:
            self._readmit(member)
            change = HealthChange.UP
        return change

    # -- slow start -------------------------------------------------------------------------

    def _come_back(self, member: Member) -> None:
        """
        A member takes new sessions again (readmitted, added, enabled): start it level with the
        least loaded member for C{bytraffic}, and ramp its weight up if it has a slow start.
        """
        others = [
            m
            for m in self._members
            if m is not member
            and m.lbset == member.lbset
            and not m.in_error
            and m.status is not _DISABLED
        ]
        level = traffic_level(others)
        if level is not None:
            traffic = member.bytes_in + member.bytes_out
            member.traffic_base = max(0, math.ceil(level * member.lbfactor) - traffic)
            member.traffic_level = (traffic + member.traffic_base) / member.lbfactor
        if member.slow_start > 0 and others:
            now = self.clock.seconds()
            member.ramp_since = now
            member.weight = ramp_weight(member.lbfactor, now, member.slow_start, now) or 1
            self._ramping.add(member)

    def _end_ramp(self, member: Member) -> None:
        self._ramping.discard(member)
        member.ramp_since = None
        member.weight = member.lbfactor

    def _update_ramps(self) -> None:
        """
        Set the weight of every member in slow start from the clock; end finished ramps.
        """
        now = self.clock.seconds()
        for member in list(self._ramping):
            since = member.ramp_since
            weight = None if since is None else ramp_weight(
                member.lbfactor, since, member.slow_start, now
            )
            if weight is None:
                self._end_ramp(member)
            else:
                member.weight = weight

    # -- counters ---------------------------------------------------------------------------

    def request_started(self, member: Member) -> None:
        """
        A request was sent to a member.

        @param member: the member.
        """
        member.in_flight += 1

    def request_finished(self, member: Member, *, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """
        A request to a member ended, in any way.  Call it exactly once per L{request_started};
        C{in_flight} never goes below zero.

        @param member: the member.
        @param bytes_in: bytes received from the member.
        @param bytes_out: bytes sent to the member.
        """
        if member.in_flight > 0:
            member.in_flight -= 1
        if bytes_in > 0:
            member.bytes_in += bytes_in
        if bytes_out > 0:
            member.bytes_out += bytes_out

    # -- administration ---------------------------------------------------------------------

    def set_status(self, member: Member, status: MemberStatus) -> None:
        """
        Change a member's administrative status.

        @param member: the member.
        @param status: the new status.
        """
        self._check_member(member)
        status = MemberStatus(status)
        old = member.status
        member.update(status=status)
        if status is _DISABLED and member is self._trial.member:
            self._trial.end()
        self._trial.invalidate()
        takes_new = (_ACTIVE, _STANDBY)
        if old not in takes_new and status in takes_new:
            self._restart_counters(member.lbset)
            if not member.in_error:
                self._come_back(member)
        self._rebuild()

    def set_loadfactor(self, member: Member, loadfactor: float) -> None:
        """
        Change a member's load factor (1 to 100).

        @param member: the member.
        @param loadfactor: the new load factor.
        @raise ValueError: if the load factor is out of range.
        """
        self._check_member(member)
        member.update(loadfactor=loadfactor)
        self._restart_counters(member.lbset)
        self._t.ranks.clear()

    def set_lbset(self, member: Member, lbset: int) -> None:
        """
        Move a member to another lbset.

        @param member: the member.
        @param lbset: the new lbset (>= 0).
        @raise ValueError: if the lbset is invalid.
        """
        self._check_member(member)
        old = member.lbset
        member.update(lbset=lbset)
        self._restart_counters(old)
        self._restart_counters(lbset)
        self._rebuild()

    def add_member(self, member: Member) -> None:
        """
        Add a member at the end of the configuration order.

        @param member: the new member.
        @raise ValueError: if a member of that name exists.
        """
        self._t = Tables.build((*self._members, member), self.name)
        self._members = self._t.members
        if member.in_error:
            self._errored.add(member)
        self._trial.invalidate()
        self._restart_counters(member.lbset)
        if not member.in_error:
            self._come_back(member)

    def remove_member(self, member: Member) -> None:
        """
        Remove a member.  Requests in flight to it are unaffected.

        @param member: the member.
        @raise ValueError: if it is not a member of this balancer.
        """
        self._check_member(member)
        self._members = tuple(m for m in self._members if m is not member)
        self._errored.discard(member)
        self._ramping.discard(member)
        if member is self._trial.member:
            self._trial.end()
        self._rebuild()

    def snapshot(self) -> dict[str, Any]:
        """
        The balancer's configuration and state, as plain JSON-able values.

        @return: a new dictionary.
        """
        if self._ramping:
            self._update_ramps()
        members = []
        for member in self._members:
            state = member.to_dict()
            state["usable"] = self.usable(member)
            members.append(state)
        return {
            "name": self.name,
            "method": self.method.value,
            "sticky": None if self.sticky is None else self.sticky.to_dict(),
            "nofailover": self.nofailover,
            "max_attempts": self.max_attempts,
            "probing": self.probing,
            "trial": None if self._trial.member is None else self._trial.member.name,
            "time": self.clock.seconds(),
            "members": members,
        }
