"""
The attempt loop: pick a member, send, report the outcome, maybe try another.

This is the only place that decides whether a request goes to another member,
and the only place that reports outcomes to the balancer. The rule (see
C{shared/README.md}): a request is sent again only when it provably did not
reach the application, or when it is idempotent, has no body and no response
byte came back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from twisted.logger import Logger

from twisted_lb.balancer import Balancer, Member, NoMemberAvailable
from twisted_lb.errors import AttemptFailed, BackendRejected, NoUsableMember
from twisted_lb.exchange import Exchange, ResponseSink

__all__ = ["Backend", "Dispatcher", "AttemptRecord"]

_log = Logger()


class Backend(Protocol):
    """What the dispatcher needs of a member's backend."""

    async def send(self, exchange: Exchange, sink: ResponseSink) -> None:
        """Send the exchange; raise L{AttemptFailed} when the attempt fails."""

    async def probe(self) -> bool:
        """Whether the member answers now (no user request involved)."""


class AttemptRecord:
    """
    What happened to one request, for the access log and the response.

    @ivar member: the member that answered (or was tried last).
    @ivar route_changed: the request's session route named another member.
    @ivar attempts: how many members were tried.
    """

    __slots__ = ("member", "route_changed", "attempts", "sticky")

    def __init__(self) -> None:
        self.member: Member | None = None
        self.route_changed = False
        self.sticky = False
        self.attempts = 0


class Dispatcher:
    """
    Sends exchanges to the members of one balancer.

    @ivar balancer: the balancer that decides.
    @ivar backends: the backend of each member.
    """

    def __init__(self, balancer: Balancer, backends: Mapping[Member, Backend]) -> None:
        self.balancer = balancer
        self.backends = dict(backends)

    async def dispatch(
        self, exchange: Exchange, sink: ResponseSink, record: AttemptRecord | None = None
    ) -> None:
        """
        Send C{exchange} to a member and stream the answer into C{sink}.

        @raise NoUsableMember: no member could take the request.
        @raise AttemptFailed: the last attempt failed and no retry was allowed.
        """
        balancer = self.balancer
        record = record if record is not None else AttemptRecord()
        tried: list[Member] = []
        last_error: AttemptFailed | None = None
        for _ in range(balancer.max_attempts):
            try:
                pick = balancer.pick(exchange.session_routes, exclude=tried)
            except NoMemberAvailable as e:
                if last_error is not None:
                    raise last_error from None
                raise NoUsableMember(str(e)) from None
            member = pick.member
            tried.append(member)
            record.member = member
            record.attempts += 1
            record.sticky = pick.sticky
            if pick.route_changed:
                record.route_changed = True
                _log.info(
                    "route {route!r} is not usable; session moved to {member} ({balancer})",
                    route=pick.session_route, member=member.name, balancer=balancer.name,
                )
            backend = self.backends[member]
            balancer.request_started(member)
            try:
                await backend.send(exchange, sink)
            except AttemptFailed as e:
                balancer.request_finished(member)
                if e.marks_member_down:
                    was_down = member.in_error
                    balancer.record_failure(member, str(e))
                    if not was_down:
                        _log.warn(
                            "member {member} of {balancer} is in error: {error}",
                            member=member.name, balancer=balancer.name, error=e,
                        )
                # A 403 + close from the member came after the FORWARD_REQUEST
                # and the first body packet: a body is never replayed after
                # body bytes went out (the 403 may be the application's).
                if (
                    sink.started
                    or getattr(sink, "gone", False)  # nobody to answer
                    or (e.reached_application and not exchange.retryable)
                    or (exchange.body_length and isinstance(e, BackendRejected))
                ):
                    raise
                last_error = e
                if exchange.body is not None:
                    exchange.body.seek(0)
                continue
            except BaseException:
                balancer.request_finished(member)
                raise
            balancer.request_finished(
                member, bytes_in=getattr(sink, "bytes_written", 0), bytes_out=exchange.body_length
            )
            if member.in_error:
                balancer.record_success(member)
            return
        assert last_error is not None
        raise last_error
