"""
The frontend's limits on real sockets (L{twisted_lb.frontend}): slowloris
heads and slow bodies are cut off with 408 inside their deadline while other
clients are served, a client that reads nothing of its response is aborted,
idle connections time out, thousands of idle connections do not slow a
normal request, connections past C{max_connections} get 503, and bodies
over C{max_body_bytes} get 413 before they are read.
"""

from __future__ import annotations

import resource
import socket
import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import LimitsConfig
from twisted_lb.testing import FaultyAJPMember

from .support import LogCapture, raw_exchange, sleep, start_proxy, wait_until

#: Short deadlines so that the tests take seconds: heads 1 s (2 s at most),
#: bodies 1 s, both extended by 500 bytes per second.
SHORT = LimitsConfig(
    header_timeout=1.0,
    header_timeout_max=2.0,
    body_timeout=1.0,
    min_rate=500,
    idle_timeout=1.0,
    send_timeout=1.0,
)

_HEAD = b"GET /app HTTP/1.1\r\nHost: proxy.test\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\n"


def _d(coro):
    return defer.Deferred.fromCoroutine(coro)


class _Dripper(protocol.Protocol):
    """Sends C{data} C{step} bytes every C{interval} seconds; records the answer and the time."""

    def __init__(self, data: bytes, step: int, interval: float, first: int = 0) -> None:
        self.data = data
        self.first = first
        self.step = step
        self.interval = interval
        self.answer = b""
        self.sent = 0
        self.started = 0.0
        self.closed_after: float | None = None
        self.done: defer.Deferred[None] = defer.Deferred()
        self._call = None

    def connectionMade(self) -> None:
        self.started = time.monotonic()
        if self.first:
            self.transport.write(self.data[: self.first])
            self.sent = self.first
        self._drip()

    def _drip(self) -> None:
        self._call = None
        if self.sent < len(self.data):
            self.transport.write(self.data[self.sent : self.sent + self.step])
            self.sent += self.step
            self._call = reactor.callLater(self.interval, self._drip)

    def dataReceived(self, data: bytes) -> None:
        self.answer += data

    def connectionLost(self, reason=None) -> None:
        self.closed_after = time.monotonic() - self.started
        if self._call is not None and self._call.active():
            self._call.cancel()
        self.done.callback(None)


def _drip(
    port: int, data: bytes, step: int, interval: float, first: int = 0
) -> defer.Deferred[_Dripper]:
    client = _Dripper(data, step, interval, first)
    d = protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port)
    return d.addCallback(lambda _: client)


class _Case(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def start(self, limits: LimitsConfig = SHORT, **member_kwargs):
        self.member = FaultyAJPMember(**member_kwargs).start()
        self.addCleanup(self.member.stop)
        self.proxy, base = yield _d(start_proxy([(self.member.url, "node1")], None, limits))
        self.addCleanup(self.proxy.stopService)
        self.port = int(base.rsplit(":", 1)[1])

    @defer.inlineCallbacks
    def timed_request(self):
        """A plain request on a new connection: (status line, seconds)."""
        started = time.monotonic()
        answer = yield raw_exchange(
            self.port, b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        return answer.split(b"\r\n", 1)[0], time.monotonic() - started


class SlowClientTests(_Case):
    @defer.inlineCallbacks
    def test_slowloris_heads_get_408_while_others_are_served(self):
        """Twenty heads dripped a byte at a time: 408 within the deadline, the member saw nothing."""
        yield self.start()
        log = LogCapture().install()
        self.addCleanup(log.remove)
        drippers = []
        for _ in range(20):
            drippers.append((yield _drip(self.port, _HEAD, 1, 0.05)))
        # Meanwhile a normal client is served at once, several times.
        for _ in range(5):
            status, seconds = yield self.timed_request()
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            self.assertLess(seconds, 0.5)
            yield sleep(0.1)
        yield defer.gatherResults([d.done for d in drippers])
        for dripper in drippers:
            self.assertTrue(dripper.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
            self.assertIn(b"the request head did not arrive in time", dripper.answer)
            # 1 s plus 1/500 s per byte received, well below the 2 s hard limit.
            self.assertGreater(dripper.closed_after, 0.9)
            self.assertLess(dripper.closed_after, 1.6)
            self.assertLess(dripper.sent, len(_HEAD))
        self.assertEqual(len(self.member.requests), 5)
        self.assertIn("request head too slow", log.text())

    @defer.inlineCallbacks
    def test_head_fast_enough_per_byte_still_has_a_hard_limit(self):
        """A head sent at 1000 B/s (above min_rate) never ending is cut at header_timeout_max."""
        yield self.start()
        endless = b"GET /app HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 15_000
        dripper = yield _drip(self.port, endless, 50, 0.05)
        yield dripper.done
        self.assertTrue(dripper.answer.startswith(b"HTTP/1.1 408"), dripper.answer[:100])
        self.assertGreater(dripper.closed_after, 1.9)
        self.assertLess(dripper.closed_after, 2.6)
        self.assertEqual(self.member.requests, [])

    @defer.inlineCallbacks
    def test_slow_post_body_gets_408_and_is_never_forwarded(self):
        """A body dripped at 100 B/s is cut after about body_timeout; the member saw nothing."""
        yield self.start()
        head = b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        dripper = yield _drip(self.port, head + b"x" * 100_000, 10, 0.1, len(head))
        yield dripper.done
        self.assertTrue(dripper.answer.startswith(b"HTTP/1.1 408"), dripper.answer[:100])
        self.assertIn(b"the request body did not arrive in time", dripper.answer)
        self.assertLess(dripper.closed_after, 2.0)
        self.assertEqual(self.member.requests, [])
        self.assertEqual(self.member.connections_made, 0)

    @defer.inlineCallbacks
    def test_body_above_min_rate_may_take_longer_than_body_timeout(self):
        """Each min_rate bytes buy a second: a 3 s upload at 6000 B/s is served whole."""
        yield self.start()
        body = b"y" * 18_000
        head = b"POST /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        head %= len(body)
        dripper = yield _drip(self.port, head + body, 600, 0.1)
        yield dripper.done
        self.assertTrue(dripper.answer.startswith(b"HTTP/1.1 200"), dripper.answer[:100])
        self.assertGreater(dripper.closed_after, 2.5)
        self.assertEqual(self.member.requests[-1].body, body)

    @defer.inlineCallbacks
    def test_idle_connection_is_closed(self):
        """A connection that says nothing is closed after idle_timeout; so is one idle after a request."""
        yield self.start()
        silent = yield _drip(self.port, b"", 1, 1)
        keep = yield _drip(self.port, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n", 1000, 1)
        yield defer.gatherResults([silent.done, keep.done])
        self.assertEqual(silent.answer, b"")
        self.assertLess(silent.closed_after, 2.5)
        self.assertTrue(keep.answer.startswith(b"HTTP/1.1 200"))
        self.assertLess(keep.closed_after, 2.5)


class BodyLimitTests(_Case):
    """C{max_body_bytes}: 413 and close before the body is read; nothing reaches the member."""

    LIMITS = LimitsConfig(max_body_bytes=10_000)

    @defer.inlineCallbacks
    def test_content_length_over_the_limit_gets_413_without_the_body(self):
        """A head announcing 50 MB alone: 413 and close at once, the member saw nothing."""
        yield self.start(self.LIMITS)
        started = time.monotonic()
        answer = yield raw_exchange(
            self.port, b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n"
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), answer[:100])
        self.assertTrue(answer.endswith(b"\r\n\r\nthe request body is larger than 10000 bytes\n"))
        # Closed by the proxy, not by raw_exchange's 3 s read timeout.
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(self.member.requests, [])
        self.assertEqual(self.member.connections_made, 0)
        status, _ = yield self.timed_request()
        self.assertEqual(status, b"HTTP/1.1 200 OK")

    @defer.inlineCallbacks
    def test_expect_100_continue_gets_413_and_no_continue(self):
        """Expect: 100-continue with a body over the limit: the 413 alone, no 100 Continue."""
        yield self.start(self.LIMITS)
        answer = yield raw_exchange(
            self.port,
            b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 10001\r\n"
            b"Expect: 100-continue\r\n\r\n",
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), answer[:100])
        self.assertNotIn(b"100 Continue", answer)
        self.assertEqual(self.member.requests, [])

    @defer.inlineCallbacks
    def test_chunked_body_growing_past_the_limit_is_cut(self):
        """A chunked body sent 1000 bytes at a time: 413 and close once it passes 10 000."""
        yield self.start(self.LIMITS)
        log = LogCapture().install()
        self.addCleanup(log.remove)
        chunk = b"3e8\r\n" + b"c" * 1000 + b"\r\n"
        head = b"POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        dripper = yield _drip(self.port, head + chunk * 100 + b"0\r\n\r\n", len(chunk), 0.02)
        yield dripper.done
        self.assertTrue(
            dripper.answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), dripper.answer[:100]
        )
        self.assertLess(dripper.sent, len(chunk) * 30)
        self.assertEqual(self.member.requests, [])
        self.assertEqual(self.member.connections_made, 0)
        self.assertIn("413 for", log.text())

    @defer.inlineCallbacks
    def test_bodies_at_the_limit_reach_the_member(self):
        """Exactly max_body_bytes, with a length or chunked: forwarded whole."""
        yield self.start(self.LIMITS)
        body = b"b" * 10_000
        answer = yield raw_exchange(
            self.port,
            b"POST /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 10000\r\n\r\n" + body,
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100])
        answer = yield raw_exchange(
            self.port,
            b"POST /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1388\r\n%s\r\n1388\r\n%s\r\n0\r\n\r\n"
            % (body[:5000], body[5000:]),
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100])
        self.assertEqual([r.body for r in self.member.requests], [body, body])

    @defer.inlineCallbacks
    def test_zero_is_no_limit(self):
        """max_body_bytes = 0: a 2 MB body is forwarded."""
        yield self.start(LimitsConfig(max_body_bytes=0))
        body = b"z" * 2_000_000
        answer = yield raw_exchange(
            self.port,
            b"POST /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100])
        self.assertEqual(self.member.requests[-1].body, body)


class NeverReadingClientTests(_Case):
    @defer.inlineCallbacks
    def test_client_that_never_reads_is_aborted_after_send_timeout(self):
        """A 200 MB answer to a client that reads nothing: bounded buffering, then aborted."""
        size = 200 * 1024 * 1024
        yield self.start(body_size=size)
        member = self.member

        def connect():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
            return s

        sock = yield deferToThread(connect)
        self.addCleanup(sock.close)
        started = time.monotonic()
        self.assertTrue((yield _d(wait_until(lambda: member.open_connections == 1))))
        # The proxy gives up on the client after send_timeout (1 s) without progress.
        self.assertTrue((yield _d(wait_until(lambda: member.open_connections == 0, 10))))
        self.assertLess(time.monotonic() - started, 5)
        self.assertLess(member.bytes_sent, 32 * 1024 * 1024)
        in_flight = sum(m.in_flight for m in self.proxy.balancers["cluster"].balancer.members)
        self.assertEqual(in_flight, 0)
        sock.setblocking(False)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except (BlockingIOError, ConnectionResetError):
            pass
        self.assertLess(received, 32 * 1024 * 1024)
        status, _ = yield self.timed_request()
        self.assertEqual(status, b"HTTP/1.1 200 OK")


class ManyConnectionsTests(_Case):
    timeout = 120

    @defer.inlineCallbacks
    def test_two_thousand_idle_connections(self):
        """2000 idle connections (half with a partial head): normal requests stay fast."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 6000
        if soft < wanted:
            if hard != resource.RLIM_INFINITY and hard < wanted:
                self.skipTest(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        limits = LimitsConfig(idle_timeout=30.0, header_timeout=30.0, header_timeout_max=40.0)
        yield self.start(limits)

        site = self.proxy.listening[0].factory
        socks: list[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in socks])

        def open_batch(count: int) -> None:
            for i in range(count):
                s = socket.create_connection(("127.0.0.1", self.port))
                if i % 2:
                    s.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)

        # In batches below the listen backlog (50), so that none waits in the kernel.
        while len(socks) < 2000:
            yield deferToThread(open_batch, 40)
            yield _d(wait_until(lambda: site.open_connections >= len(socks), 10))
        self.assertEqual(site.open_connections, 2000)
        times = []
        for _ in range(20):
            status, seconds = yield self.timed_request()
            self.assertEqual(status, b"HTTP/1.1 200 OK")
            times.append(seconds)
        times.sort()
        self.assertLess(times[len(times) // 2], 0.2, times)
        self.assertLess(times[-1], 1.0, times)
        for s in socks:
            s.close()
        self.assertTrue((yield _d(wait_until(lambda: site.open_connections == 0, 20))))

    @defer.inlineCallbacks
    def test_max_connections(self):
        """Past max_connections a new connection gets 503 at once; freed places serve again."""
        yield self.start(LimitsConfig(max_connections=5))

        def open_five():
            return [socket.create_connection(("127.0.0.1", self.port)) for _ in range(5)]

        socks = yield deferToThread(open_five)
        site = self.proxy.listening[0].factory
        self.assertTrue((yield _d(wait_until(lambda: site.open_connections == 5))))
        status, _ = yield self.timed_request()
        self.assertEqual(status, b"HTTP/1.1 503 Service Unavailable")
        self.assertEqual(self.member.requests, [])
        for s in socks:
            s.close()
        self.assertTrue((yield _d(wait_until(lambda: site.open_connections == 0))))
        status, _ = yield self.timed_request()
        self.assertEqual(status, b"HTTP/1.1 200 OK")
