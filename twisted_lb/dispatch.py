"""
The attempt loop: pick a member, attempt, report the outcome, maybe try another.

An attempt is one of two kinds: send a request (to an AJP or HTTP member's
L{RequestBackend}) or open a tunnel (a WebSocket's member side, opened by the
tunnel itself: L{OpeningTunnel}). Both go through the same loop, and this is
the only place that reports an attempt's outcome to the balancer and the
only place that decides whether another member is tried:

  - a request is sent again only when it provably did not reach the
    application, or when it is idempotent, has no body and no response byte
    came back (see C{shared/README.md});
  - a tunnel is opened at another member only when the member did not
    accept the upgrade (no connection, no TLS, no answer or the connection
    closed before one); an invalid answer or a refusal is final, and once a
    member accepted (frames may flow) the tunnel is never moved.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.balancer import Balancer, Member, NoMemberAvailable
from twisted_lb.errors import (
    AttemptFailed,
    BackendProtocolError,
    BackendRejected,
    NoUsableMember,
)
from twisted_lb.exchange import Exchange, ResponseSink

__all__ = [
    "AttemptRecord",
    "Backend",
    "Dispatcher",
    "OpeningTunnel",
    "RequestBackend",
]

_log = Logger()


class RequestBackend(Protocol):
    """What the dispatcher, the prober and the service need of a member's backend."""

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


#: The backend of a member, as the service builds it: every backend sends
#: requests (a WebSocket member's plain requests go to its node over HTTP);
#: a WebSocket member also opens tunnels
#: (L{twisted_lb.websocket.member.TunnelBackend}).
Backend = RequestBackend


class OpeningTunnel(Protocol):
    """
    What the dispatcher needs of a tunnel it opens (a WebSocket's
    L{twisted_lb.websocket.bridge.Tunnel}).

    @ivar finished: fires when the tunnel is over (both sides closed).
    """

    finished: defer.Deferred[None]

    @property
    def client_gone(self) -> bool:
        """Whether the client left (then no other member is tried)."""

    def open_at(self, member: Member) -> Coroutine[Any, Any, None] | defer.Deferred[None]:
        """
        Open the member side at C{member}: fires once the member accepted
        the upgrade; fails with L{AttemptFailed} when it did not, or with
        another error when it refused (its answer goes to the client).
        """

    def traffic(self) -> tuple[int, int]:
        """The bytes read from the member and from the client so far."""


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


class _Attempt(Protocol):
    """One kind of attempt, with its own rule for trying another member."""

    def start(self, member: Member) -> defer.Deferred[None]:
        """Attempt at C{member}; fails with L{AttemptFailed} when the attempt failed."""

    def may_retry(self, error: AttemptFailed) -> bool:
        """Whether another member may be tried after C{error}."""

    def succeeded(self, balancer: Balancer, member: Member) -> None:
        """Report a successful attempt's use of C{member} (now or when it is over)."""


class _SendRequest:
    """Send a request to a member's L{RequestBackend}."""

    __slots__ = ("_backends", "_exchange", "_sink")

    def __init__(
        self, backends: Mapping[Member, RequestBackend], exchange: Exchange, sink: ResponseSink
    ) -> None:
        self._backends = backends
        self._exchange = exchange
        self._sink = sink

    def start(self, member: Member) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._backends[member].send(self._exchange, self._sink))

    def may_retry(self, error: AttemptFailed) -> bool:
        exchange, sink = self._exchange, self._sink
        # A 403 + close from the member came after the FORWARD_REQUEST and
        # the first body packet: a body is never replayed after body bytes
        # went out (the 403 may be the application's).
        if (
            sink.started
            or sink.gone  # nobody to answer
            or (error.reached_application and not exchange.retryable)
            or (exchange.body_length and isinstance(error, BackendRejected))
            # A streamed body is read once: bytes that went out cannot be replayed.
            or exchange.body_sent
        ):
            return False
        if exchange.body is not None:
            exchange.body.seek(0)
        return True

    def succeeded(self, balancer: Balancer, member: Member) -> None:
        balancer.request_finished(
            member, bytes_in=self._sink.bytes_written, bytes_out=self._exchange.body_bytes
        )


class _OpenTunnel:
    """Open a tunnel's member side; the member stays busy until the tunnel is over."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: OpeningTunnel) -> None:
        self._tunnel = tunnel

    def start(self, member: Member) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._tunnel.open_at(member))

    def may_retry(self, error: AttemptFailed) -> bool:
        # Every other failure means the member did not accept the upgrade
        # (no 101 came): nothing went through it. An invalid answer is the
        # member's own and final.
        return not self._tunnel.client_gone and not isinstance(error, BackendProtocolError)

    def succeeded(self, balancer: Balancer, member: Member) -> None:
        tunnel = self._tunnel

        def over(result: object) -> object:
            bytes_in, bytes_out = tunnel.traffic()
            balancer.request_finished(member, bytes_in=bytes_in, bytes_out=bytes_out)
            return result

        tunnel.finished.addBoth(over)


class Dispatcher:
    """
    Sends exchanges to the members of one balancer, and opens tunnels there.

    @ivar balancer: the balancer that decides.
    @ivar backends: the backend of each member.
    """

    def __init__(self, balancer: Balancer, backends: Mapping[Member, RequestBackend]) -> None:
        self.balancer = balancer
        self.backends = dict(backends)

    def dispatch(
        self, exchange: Exchange, sink: ResponseSink, record: AttemptRecord | None = None
    ) -> defer.Deferred[None]:
        """
        Send C{exchange} to a member and stream the answer into C{sink}.

        @return: a Deferred firing when the answer is complete, or failing
            with L{NoUsableMember} (no member could take the request) or the
            L{AttemptFailed} of the last attempt when no retry was allowed.
        """
        return self._run(_SendRequest(self.backends, exchange, sink), exchange, record)

    def open_tunnel(
        self, exchange: Exchange, tunnel: OpeningTunnel, record: AttemptRecord | None = None
    ) -> defer.Deferred[None]:
        """
        Open C{tunnel} (the upgrade C{exchange} asks for) at a member; the
        member counts as busy until C{tunnel.finished} fires.

        @return: a Deferred firing once a member accepted the upgrade, or
            failing with L{NoUsableMember}, the L{AttemptFailed} of the last
            attempt, or the member's refusal.
        """
        return self._run(_OpenTunnel(tunnel), exchange, record)

    def _run(
        self, attempt: _Attempt, exchange: Exchange, record: AttemptRecord | None
    ) -> defer.Deferred[None]:
        """
        The attempt loop. The first attempt is chained with callbacks; only
        an exchange that goes to another member runs the loop's coroutine
        (L{_attempts}).
        """
        record = record if record is not None else AttemptRecord()
        tried: list[Member] = []
        try:
            member = self._choose(exchange, record, tried, None)
        except Exception:
            return defer.fail()
        d = self._start(attempt, member)
        d.addCallbacks(
            self._succeeded,
            self._first_failed,
            callbackArgs=(attempt, member),
            errbackArgs=(attempt, member, exchange, record, tried),
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

    def _start(self, attempt: _Attempt, member: Member) -> defer.Deferred[None]:
        """One attempt: count it in flight and start it."""
        self.balancer.request_started(member)
        try:
            return attempt.start(member)
        except BaseException:
            return defer.fail()

    def _succeeded(self, result: object, attempt: _Attempt, member: Member) -> None:
        attempt.succeeded(self.balancer, member)
        if member.in_error:
            self.balancer.record_success(member)

    def _first_failed(
        self,
        failure: Failure,
        attempt: _Attempt,
        member: Member,
        exchange: Exchange,
        record: AttemptRecord,
        tried: list[Member],
    ) -> Failure | defer.Deferred[None]:
        error = failure.value
        if not isinstance(error, AttemptFailed):
            self.balancer.request_finished(member)
            return failure
        if not self._may_retry(attempt, member, error):
            return failure
        return defer.Deferred.fromCoroutine(self._attempts(attempt, exchange, record, tried, error))

    def _may_retry(self, attempt: _Attempt, member: Member, error: AttemptFailed) -> bool:
        """
        Account for a failed attempt (the member may go into error, logged
        once, when it goes) and say whether another member may be tried.
        """
        balancer = self.balancer
        balancer.request_finished(member)
        if error.marks_member_down:
            was_down = member.in_error
            balancer.record_failure(member, str(error))
            if not was_down:
                _log.warn(
                    "member {member} of {balancer} is in error: {error}",
                    member=member.name, balancer=balancer.name, error=error,
                )
        return attempt.may_retry(error)

    async def _attempts(
        self,
        attempt: _Attempt,
        exchange: Exchange,
        record: AttemptRecord,
        tried: list[Member],
        last_error: AttemptFailed,
    ) -> None:
        """The attempts after a first one that failed with C{last_error} and may be retried."""
        for _ in range(self.balancer.max_attempts - len(tried)):
            member = self._choose(exchange, record, tried, last_error)
            try:
                await self._start(attempt, member)
            except AttemptFailed as e:
                if not self._may_retry(attempt, member, e):
                    raise
                last_error = e
                continue
            except BaseException:
                self.balancer.request_finished(member)
                raise
            self._succeeded(None, attempt, member)
            return
        raise last_error
