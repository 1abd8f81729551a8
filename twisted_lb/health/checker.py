"""
The service that runs active health checks for one balancer.

The balancer decides (L{Balancer.checks_due}, L{Balancer.record_check}): which members are due,
staggered and one check per member at a time, and what the results mean.  This service only
keeps one timer for the next due check, runs each check under its timeout, reports the result
and logs the changes of state.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.balancer import Balancer, HealthChange, Member
from twisted_lb.config.model import HealthCheckConfig, MemberConfig

from .checks import CheckResult, MemberCheck, build_check, describe_failure

__all__ = ["HealthChecker"]

_log = Logger()


class HealthChecker(Service):
    """
    Runs the active checks of the members of one balancer that have a check policy.

    @ivar balancer: the balancer that decides.
    @ivar checks: the check of each watched member.
    """

    def __init__(self, balancer: Balancer, reactor: Any) -> None:
        self.balancer = balancer
        self.checks: dict[Member, MemberCheck] = {}
        self._timeouts: dict[Member, float] = {}
        self._reactor = reactor
        self._timer: Any = None  # an IDelayedCall
        self._running: dict[Member, defer.Deferred[CheckResult]] = {}

    def watch(
        self, member: Member, config: MemberConfig, health: HealthCheckConfig, backend: object
    ) -> None:
        """
        Check C{member} from now on (it must have a check policy in the balancer).

        @param member: the balancer's member.
        @param config: its configuration.
        @param health: its health-check configuration.
        @param backend: its backend, whose TLS policy the checks use.
        """
        self.checks[member] = build_check(self._reactor, config, health, backend)
        self._timeouts[member] = health.timeout
        if self.running:
            self._arm()

    def forget(self, member: Member) -> None:
        """Stop checking C{member} (removed); a check under way is cancelled."""
        self.checks.pop(member, None)
        self._timeouts.pop(member, None)
        running = self._running.pop(member, None)
        if running is not None:
            running.cancel()

    # -- the timer -----------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._tick()

    def stopService(self) -> None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for d in list(self._running.values()):
            d.cancel()
        self._running.clear()

    def _arm(self) -> None:
        """Set the timer for the next due check."""
        due = self.balancer.next_check_at()
        timer = self._timer
        if timer is not None and timer.active():
            if due is not None and timer.getTime() <= due:
                return
            timer.cancel()
        self._timer = None
        if due is not None:
            self._timer = self._reactor.callLater(
                max(0.0, due - self._reactor.seconds()), self._tick
            )

    def _tick(self) -> None:
        self._timer = None
        if not self.running:
            return
        for member in self.balancer.checks_due():
            check = self.checks.get(member)
            if check is None:
                continue
            self.balancer.check_started(member)
            timeout = self._timeouts[member]
            d = defer.Deferred.fromCoroutine(check.run())
            d.addTimeout(timeout, self._reactor)
            self._running[member] = d
            d.addBoth(self._checked, member, timeout)
        self._arm()

    # -- results -------------------------------------------------------------------------

    def _checked(self, result: CheckResult | Failure, member: Member, timeout: float) -> None:
        if self._running.get(member) is None or not self.running:
            return  # forgotten, or stopping
        del self._running[member]
        if isinstance(result, Failure):
            if result.check(defer.TimeoutError, defer.CancelledError):
                result = CheckResult(False, f"no answer within {timeout:g} s")
            else:
                result = CheckResult(False, describe_failure(result.value))
        balancer = self.balancer
        change = balancer.record_check(member, result.ok, result.detail)
        policy = member.check_policy
        if change is HealthChange.DOWN:
            _log.warn(
                "member {member} of {balancer} failed {count} health checks in a row "
                "({check}: {detail}); taken out",
                member=member.name, balancer=balancer.name, count=member.check.fails,
                check=self.checks[member].description, detail=result.detail,
            )
        elif change is HealthChange.UP:
            _log.info(
                "member {member} of {balancer} passed {count} health checks in a row "
                "({check}: {detail}); back in{ramp}",
                member=member.name, balancer=balancer.name, count=member.check.passes,
                check=self.checks[member].description, detail=result.detail,
                ramp=f", slow start over {member.slow_start:g} s" if member.ramp_since else "",
            )
        elif policy is not None and not result.ok and member.check.fails == 1 and not member.in_error:
            _log.info(
                "member {member} of {balancer} failed a health check ({detail}); "
                "out after {fails} in a row",
                member=member.name, balancer=balancer.name, detail=result.detail,
                fails=policy.fails,
            )
        self._arm()
