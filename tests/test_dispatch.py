"""The attempt loop (twisted_lb.dispatch) with in-memory backends: which failures go to
another member, what the balancer is told, and that the counters always balance."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lb.balancer import Balancer, Member
from twisted_lb.dispatch import AttemptRecord, Dispatcher
from twisted_lb.errors import (
    BackendProtocolError,
    BackendTimeout,
    ConnectFailed,
    NoUsableMember,
    RequestNotSent,
    RequestRefused,
    ResponseAborted,
    ResponseNeverReceived,
)
from twisted_lb.exchange import Exchange


class Sink:
    def __init__(self) -> None:
        self.started = False
        self.gone = False
        self.bytes_written = 0


class DeferredBackend:
    """send() returns a Deferred the test fires (as AJPBackend does with a ready connection)."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred[None]] = []

    def send(self, exchange, sink):
        d: defer.Deferred[None] = defer.Deferred()
        self.pending.append(d)
        return d


class CoroutineBackend:
    """send() is a coroutine (as the HTTP backend's), failing or writing at once."""

    def __init__(self, error: Exception | None = None, written: int = 0) -> None:
        self.error = error
        self.written = written
        self.calls = 0

    async def send(self, exchange, sink):
        self.calls += 1
        if self.error is not None:
            raise self.error
        sink.started = True
        sink.bytes_written = self.written


class RaisingBackend:
    """send() raises before returning anything."""

    def send(self, exchange, sink):
        raise RuntimeError("bug in a backend")


def exchange(method=b"GET", body_length=0, routes=()):
    return Exchange(
        method=method, path=b"/x", query=None, headers=[], host=b"h", client_address="127.0.0.1",
        client_port=1, local_address="127.0.0.1", local_port=2, is_ssl=False,
        body_length=body_length, session_routes=routes,
    )


class DispatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.a, self.b = Member("a"), Member("b")
        self.balancer = Balancer("lb", [self.a, self.b], clock=Clock())

    def dispatcher(self, a, b) -> Dispatcher:
        return Dispatcher(self.balancer, {self.a: a, self.b: b})

    def assert_idle(self) -> None:
        self.assertEqual((self.a.in_flight, self.b.in_flight), (0, 0))

    def test_first_attempt_succeeds(self):
        a, b = DeferredBackend(), DeferredBackend()
        sink, record = Sink(), AttemptRecord()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["b"]), sink, record)
        self.assertEqual((len(a.pending), len(b.pending)), (0, 1))
        self.assertEqual(self.b.in_flight, 1)
        self.assertNoResult(d)
        sink.bytes_written = 10
        b.pending[0].callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.assert_idle()
        self.assertEqual((record.member, record.attempts, record.sticky), (self.b, 1, True))
        self.assertEqual(self.b.bytes_in, 10)

    def test_connect_failure_goes_to_the_other_member(self):
        a, b = DeferredBackend(), DeferredBackend()
        record = AttemptRecord()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), Sink(), record)
        a.pending[0].errback(ConnectFailed("refused"))
        self.assertTrue(self.a.in_error)
        self.assertEqual(len(b.pending), 1)
        b.pending[0].callback(None)
        self.successResultOf(d)
        self.assert_idle()
        self.assertEqual((record.member, record.attempts), (self.b, 2))

    def test_coroutine_backends_and_retry(self):
        a = CoroutineBackend(error=ConnectFailed("refused"))
        b = CoroutineBackend(written=5)
        sink = Sink()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), sink)
        self.successResultOf(d)
        self.assertEqual((a.calls, b.calls, self.b.bytes_in), (1, 1, 5))
        self.assert_idle()

    def test_all_members_fail_with_the_last_error(self):
        a, b = DeferredBackend(), DeferredBackend()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), Sink())
        a.pending[0].errback(ConnectFailed("a refused"))
        b.pending[0].errback(ConnectFailed("b refused"))
        failure = self.failureResultOf(d, ConnectFailed)
        self.assertEqual(str(failure.value), "b refused")
        self.assert_idle()
        self.assertTrue(self.a.in_error and self.b.in_error)

    def test_nothing_usable(self):
        self.balancer.record_failure(self.a, "down")
        self.balancer.record_failure(self.b, "down")
        d = self.dispatcher(DeferredBackend(), DeferredBackend()).dispatch(exchange(), Sink())
        self.failureResultOf(d, NoUsableMember)
        self.assert_idle()

    def test_no_retry_once_the_response_started(self):
        a, b = DeferredBackend(), DeferredBackend()
        sink = Sink()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), sink)
        sink.started = True
        a.pending[0].errback(ResponseAborted("cut"))
        self.failureResultOf(d, ResponseAborted)
        self.assertEqual(b.pending, [])
        self.assert_idle()

    def test_no_retry_of_a_post_that_may_have_reached_the_application(self):
        a, b = DeferredBackend(), DeferredBackend()
        d = self.dispatcher(a, b).dispatch(exchange(b"POST", body_length=3, routes=["a"]), Sink())
        a.pending[0].errback(ResponseNeverReceived("reset"))
        self.failureResultOf(d, ResponseNeverReceived)
        self.assertEqual(b.pending, [])

    def test_request_not_sent_is_retried_without_marking_down(self):
        a, b = DeferredBackend(), DeferredBackend()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), Sink())
        a.pending[0].errback(RequestNotSent("pooled connection broke"))
        self.assertFalse(self.a.in_error)
        b.pending[0].errback(BackendTimeout("slow"))
        self.failureResultOf(d, BackendTimeout)
        self.assert_idle()

    def test_client_gone_is_not_retried(self):
        a, b = DeferredBackend(), DeferredBackend()
        sink = Sink()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), sink)
        sink.gone = True
        a.pending[0].errback(ConnectFailed("refused"))
        self.failureResultOf(d, ConnectFailed)
        self.assertEqual(b.pending, [])

    def test_refusal_and_bugs_are_not_attempt_failures(self):
        for backend, error in [
            (CoroutineBackend(error=RequestRefused(431, "too big")), RequestRefused),
            (RaisingBackend(), RuntimeError),
        ]:
            d = self.dispatcher(backend, backend).dispatch(exchange(), Sink())
            self.failureResultOf(d, error)
            self.assert_idle()
            self.assertFalse(self.a.in_error or self.b.in_error)

    def test_member_back_from_error_is_recorded(self):
        """Without probing, a request after the retry time is the trial that readmits the member."""
        clock = Clock()
        self.balancer = Balancer("lb", [self.a, self.b], clock=clock, probing=False)
        self.balancer.record_failure(self.a, "down")
        clock.advance(self.a.retry + 1)
        a, b = CoroutineBackend(), CoroutineBackend()
        d = self.dispatcher(a, b).dispatch(exchange(routes=["a"]), Sink())
        self.successResultOf(d)
        self.assertEqual((a.calls, b.calls), (1, 0))
        self.assertFalse(self.a.in_error)


class FakeTunnel:
    """A tunnel whose member sides the test opens or fails (as the WebSocket bridge's Tunnel)."""

    def __init__(self) -> None:
        self.finished: defer.Deferred[None] = defer.Deferred()
        self.client_gone = False
        self.opening: list[tuple[Member, defer.Deferred[None]]] = []
        self.octets = (0, 0)

    def open_at(self, member):
        d: defer.Deferred[None] = defer.Deferred()
        self.opening.append((member, d))
        return d

    def traffic(self):
        return self.octets


class UpgradeDenied(Exception):
    """The member answered the upgrade with another status (its application's no)."""


class TunnelTests(SynchronousTestCase):
    """Opening a tunnel goes through the same loop, with the tunnel's own retry rule."""

    def setUp(self) -> None:
        self.a, self.b = Member("a"), Member("b")
        self.balancer = Balancer("lb", [self.a, self.b], clock=Clock())
        self.dispatcher = Dispatcher(self.balancer, {})
        self.tunnel = FakeTunnel()

    def open(self, routes=("a",)):
        return self.dispatcher.open_tunnel(exchange(routes=list(routes)), self.tunnel)

    def test_member_busy_until_the_tunnel_is_over(self):
        d = self.open()
        self.tunnel.opening[0][1].callback(None)
        self.successResultOf(d)
        self.assertEqual((self.a.in_flight, self.b.in_flight), (1, 0))
        self.tunnel.octets = (7, 3)
        self.tunnel.finished.callback(None)
        self.assertEqual((self.a.in_flight, self.a.bytes_in, self.a.bytes_out), (0, 7, 3))

    def test_not_accepted_goes_to_the_other_member(self):
        """No connection, or no answer to the upgrade: the next member is tried."""
        for error, down in [(ConnectFailed("refused"), True), (BackendTimeout("no 101"), False)]:
            self.setUp()
            d = self.open()
            self.tunnel.opening[0][1].errback(error)
            self.assertEqual(self.a.in_error, down)
            self.assertEqual([m for m, _ in self.tunnel.opening], [self.a, self.b])
            self.tunnel.opening[1][1].callback(None)
            self.successResultOf(d)
            self.assertEqual((self.a.in_flight, self.b.in_flight), (0, 1))
            self.tunnel.finished.callback(None)
            self.assertEqual(self.b.in_flight, 0)

    def test_an_answer_is_final(self):
        """A broken answer or a refusal: no other member, nothing left in flight."""
        for error, kind in [
            (BackendProtocolError("invalid upgrade answer"), BackendProtocolError),
            (UpgradeDenied("403 Forbidden"), UpgradeDenied),
        ]:
            self.setUp()
            d = self.open()
            self.tunnel.opening[0][1].errback(error)
            self.failureResultOf(d, kind)
            self.assertEqual(len(self.tunnel.opening), 1)
            self.assertEqual((self.a.in_flight, self.a.in_error), (0, False))

    def test_client_gone_is_not_retried(self):
        d = self.open()
        self.tunnel.client_gone = True
        self.tunnel.opening[0][1].errback(ConnectFailed("refused"))
        self.failureResultOf(d, ConnectFailed)
        self.assertEqual(len(self.tunnel.opening), 1)
        self.assertEqual(self.a.in_flight, 0)

    def test_tunnel_over_before_it_opened(self):
        """The client left while the member accepted: the member is not left busy."""
        d = self.open()
        self.tunnel.finished.callback(None)
        self.tunnel.opening[0][1].callback(None)
        self.successResultOf(d)
        self.assertEqual(self.a.in_flight, 0)

    def test_nothing_usable(self):
        self.balancer.record_failure(self.a, "down")
        self.balancer.record_failure(self.b, "down")
        self.failureResultOf(self.open(), NoUsableMember)
        self.assertEqual(self.tunnel.opening, [])
