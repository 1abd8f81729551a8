"""
Background probing of members in error.

The balancer says which members are due (L{Balancer.probes_due}); this service
probes them (CPING for AJP members, a TCP connect for others) and reports each
result back, so that a member comes back as soon as it answers and no user
request is spent as a probe.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_lb.balancer import Balancer, Member
from twisted_lb.dispatch import Backend

__all__ = ["Prober"]

_log = Logger()


class Prober(Service):
    """
    Probes the members in error of one balancer every C{interval} seconds.
    """

    def __init__(
        self,
        balancer: Balancer,
        backends: Mapping[Member, Backend],
        clock: IReactorTime,
        interval: float = 1.0,
    ) -> None:
        self.balancer = balancer
        self.backends = backends
        self.clock = clock
        self.interval = interval
        self._busy: set[Member] = set()
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.interval > 0:
            self._loop = LoopingCall(self.tick)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def tick(self) -> None:
        """Start a probe of every member that is due and not being probed."""
        for member in self.balancer.probes_due():
            if member in self._busy:
                continue
            self._busy.add(member)
            d = defer.Deferred.fromCoroutine(self.backends[member].probe())
            d.addBoth(self._probed, member)

    def _probed(self, ok: object, member: Member) -> None:
        self._busy.discard(member)
        if not isinstance(ok, bool):
            ok = False
        was_down = member.in_error
        self.balancer.record_probe(member, ok=ok)
        if was_down and not member.in_error:
            _log.info(
                "member {member} of {balancer} answers again; readmitted",
                member=member.name, balancer=self.balancer.name,
            )
