"""
The attempt loop: pick a member, send, report the outcome, maybe try another.

This is the only place that decides whether a request goes to another member,
and the only place that reports outcomes to the balancer. The rule (see
C{shared/README.md}): a request is sent again only when it provably did not
reach the application, or when it is idempotent, has no body and no response
byte came back.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.balancer import Balancer, Member, NoMemberAvailable
from twisted_lb.errors import AttemptFailed, BackendRejected, NoUsableMember
from twisted_lb.exchange import Exchange, ResponseSink

__all__ = ["Backend", "Dispatcher", "AttemptRecord", "attempt_failed"]

_log = Logger()


class Backend(Protocol):
    """What the dispatcher needs of a member's backend."""

    def send(
        self, exchange: Exchange, sink: ResponseSink
    ) -> Coroutine[Any, Any, None] | defer.Deferred[None]:
        """
        Send the exchange (a coroutine, or a Deferred when the backend can
        start at once); fail with L{AttemptFailed} when the attempt fails.
        """

    async def probe(self) -> bool:
        """Whether the member answers now (no user request involved)."""

    def close(self) -> defer.Deferred[None]:
        """Close the member's pooled connections."""


def attempt_failed(balancer: Balancer, member: Member, error: Exception) -> None:
    """
    Tell C{balancer} that an attempt at C{member} ended with C{error}; an
    error that marks the member down puts it in error (logged once, when it
    goes down). Shared by the request dispatcher and the WebSocket bridge.
    """
    balancer.request_finished(member)
    if getattr(error, "marks_member_down", False):
        was_down = member.in_error
        balancer.record_failure(member, str(error))
        if not was_down:
            _log.warn(
                "member {member} of {balancer} is in error: {error}",
                member=member.name, balancer=balancer.name, error=error,
            )


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

    def dispatch(
        self, exchange: Exchange, sink: ResponseSink, record: AttemptRecord | None = None
    ) -> defer.Deferred[None]:
        """
        Send C{exchange} to a member and stream the answer into C{sink}.

        The first attempt is chained with callbacks; only a request that
        goes to another member runs the attempt loop (L{_attempts}).

        @return: a Deferred firing when the answer is complete, or failing
            with L{NoUsableMember} (no member could take the request) or the
            L{AttemptFailed} of the last attempt when no retry was allowed.
        """
        record = record if record is not None else AttemptRecord()
        tried: list[Member] = []
        try:
            member = self._choose(exchange, record, tried, None)
        except Exception:
            return defer.fail()
        d = self._send(member, exchange, sink)
        d.addCallbacks(
            self._succeeded,
            self._first_failed,
            callbackArgs=(member, exchange, sink),
            errbackArgs=(member, exchange, sink, record, tried),
        )
        return d

    def _choose(
        self,
        exchange: Exchange,
        record: AttemptRecord,
        tried: list[Member],
        last_error: AttemptFailed | None,
    ) -> Member:
        """
        Pick the member of the next attempt and note it.

        @raise AttemptFailed: C{last_error}, when no other member is left.
        @raise NoUsableMember: no member could take the request at all.
        """
        balancer = self.balancer
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
        return member

    def _send(self, member: Member, exchange: Exchange, sink: ResponseSink) -> defer.Deferred[None]:
        """One attempt: count it in flight and start the member's backend."""
        self.balancer.request_started(member)
        try:
            return defer.ensureDeferred(self.backends[member].send(exchange, sink))
        except BaseException:
            return defer.fail()

    def _succeeded(
        self, result: object, member: Member, exchange: Exchange, sink: ResponseSink
    ) -> None:
        balancer = self.balancer
        balancer.request_finished(
            member, bytes_in=getattr(sink, "bytes_written", 0), bytes_out=exchange.body_bytes
        )
        if member.in_error:
            balancer.record_success(member)

    def _first_failed(
        self,
        failure: Failure,
        member: Member,
        exchange: Exchange,
        sink: ResponseSink,
        record: AttemptRecord,
        tried: list[Member],
    ) -> Failure | defer.Deferred[None]:
        error = failure.value
        if not isinstance(error, AttemptFailed):
            self.balancer.request_finished(member)
            return failure
        if not self._may_retry(member, error, exchange, sink):
            return failure
        return defer.Deferred.fromCoroutine(self._attempts(exchange, sink, record, tried, error))

    def _may_retry(
        self, member: Member, error: AttemptFailed, exchange: Exchange, sink: ResponseSink
    ) -> bool:
        """
        Account for a failed attempt (the member may go into error) and say
        whether the request may go to another member.
        """
        attempt_failed(self.balancer, member, error)
        # A 403 + close from the member came after the FORWARD_REQUEST and
        # the first body packet: a body is never replayed after body bytes
        # went out (the 403 may be the application's).
        if (
            sink.started
            or getattr(sink, "gone", False)  # nobody to answer
            or (error.reached_application and not exchange.retryable)
            or (exchange.body_length and isinstance(error, BackendRejected))
            # A streamed body is read once: bytes that went out cannot be replayed.
            or exchange.body_sent
        ):
            return False
        if exchange.body is not None:
            exchange.body.seek(0)
        return True

    async def _attempts(
        self,
        exchange: Exchange,
        sink: ResponseSink,
        record: AttemptRecord,
        tried: list[Member],
        last_error: AttemptFailed,
    ) -> None:
        """The attempts after a first one that failed with C{last_error} and may be retried."""
        for _ in range(self.balancer.max_attempts - len(tried)):
            member = self._choose(exchange, record, tried, last_error)
            try:
                await self._send(member, exchange, sink)
            except AttemptFailed as e:
                if not self._may_retry(member, e, exchange, sink):
                    raise
                last_error = e
                continue
            except BaseException:
                self.balancer.request_finished(member)
                raise
            self._succeeded(None, member, exchange, sink)
            return
        raise last_error
