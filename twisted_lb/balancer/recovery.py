"""
Retry-timer recovery (httpd's C{retry=}, used when probing is off), one member at a time.

A member in error becomes eligible for a trial C{member.retry} seconds after its error began.
Of the eligible members only one is on trial at a time: the one in error longest (draining
members last, disabled ones never).  It may take one request; its outcome readmits it or
restarts its timer, and only then is the next member released.  So recovery never releases every
member at once onto backends that may still be overloaded (pitfall 11).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from .member import Member, MemberStatus

__all__ = ["RetryTrial"]

_DISABLED = MemberStatus.DISABLED
_DRAINING = MemberStatus.DRAINING


@attrs.define
class RetryTrial:
    """
    The one trial slot of a balancer.

    @ivar member: the member on trial, or C{None}.
    @ivar started: clock time at which the trial began.
    @ivar elected: whether the trial member already got its trial request.
    @ivar next_at: clock time before which no member can become eligible (a cache; C{-inf}
        when unknown).
    """

    member: Member | None = None
    started: float = 0.0
    elected: bool = False
    next_at: float = -math.inf

    @property
    def open(self) -> Member | None:
        """
        The member on trial if it may still take its trial request, else C{None}.
        """
        return None if self.elected else self.member

    def end(self) -> None:
        """
        Free the slot.
        """
        self.member = None
        self.elected = False
        self.next_at = -math.inf

    def invalidate(self) -> None:
        """
        Forget the cached earliest eligibility time (some member's error state changed).
        """
        self.next_at = -math.inf

    def elect(self, member: Member) -> None:
        """
        A member was picked; if it is on trial, that was its trial request.

        @param member: the picked member.
        """
        if member is self.member:
            self.elected = True

    def refresh(self, members: Iterable[Member], now: float, timeout: float) -> None:
        """
        Drop a finished, disabled or timed-out trial, and start the next one if a member is
        eligible and the slot is free.

        @param members: the balancer's members, in configuration order.
        @param now: the current clock time.
        @param timeout: seconds after which a trial without outcome is abandoned; the member
            then waits for its retry timer again.
        """
        trial = self.member
        if trial is not None:
            if not trial.in_error or trial.status is _DISABLED:
                self.end()
            elif now - self.started >= timeout:
                trial.error_since = now
                self.end()
            else:
                return
        if now < self.next_at:
            return
        best = None
        best_key: tuple[bool, float] = (True, 0.0)
        next_at = math.inf
        for member in members:
            if not member.in_error or member.status is _DISABLED:
                continue
            since = member.error_since if member.error_since is not None else -math.inf
            due = since + member.retry
            if due > now:
                next_at = min(next_at, due)
                continue
            key = (member.status is _DRAINING, since)
            if best is None or key < best_key:
                best = member
                best_key = key
        if best is None:
            self.next_at = next_at
            return
        self.member = best
        self.started = now
        self.elected = False
