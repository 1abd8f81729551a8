"""
The fast lane's request bodies (twisted_lb.frontend, in memory): a request
with a Content-Length or a chunked body is admitted on its head, its body
decoded as it arrives into a StreamedBody, the request dispatched once the
body is prefetched, the client paused while the member reads slower than it
sends, and the connection kept, reused for pipelined requests or closed as
the body's end requires. The same through the proxy on real sockets is in
tests/integration/test_streamed_bodies.py.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from twisted_lb.config.model import LimitsConfig
from twisted_lb.fastpath import FastRequest, RawResponse, RequestHead
from twisted_lb.frontend import LINGER_SECONDS, FrontendSite
from twisted_lb.request_body import HIGH_WATER, PREFETCH, StreamedBody


class _Streams(Resource):
    """Takes every fast-lane request; records the streamed ones and when they are dispatched."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.take = True
        self.streams: list[tuple[RequestHead, StreamedBody, RawResponse]] = []
        self.dispatched: list[StreamedBody] = []
        self.fast: list[RawResponse] = []
        self.slow: list[bytes] = []

    def serve_fast(self, channel: Any, head: RequestHead) -> bool:
        sink = RawResponse(channel, FastRequest(head, None), head.keep_alive)
        channel.fast_request_started(sink)
        self.fast.append(sink)
        return True

    def serve_stream(self, channel: Any, head: RequestHead, body: StreamedBody) -> bool:
        if not self.take:
            return False
        sink = RawResponse(channel, FastRequest(head, None), head.keep_alive)
        channel.fast_request_started(sink)
        self.streams.append((head, body, sink))
        body.when_prefetched(lambda: self.dispatched.append(body))
        return True

    def render(self, request: Any) -> bytes:
        self.slow.append(request.method + b" " + request.uri)
        return b"slow"


def _answer(sink: RawResponse, body: bytes = b"ok") -> None:
    sink.start(200, [(b"Content-Length", b"%d" % len(body))])
    sink.write(body)
    sink.finish()


def _post(length: int, *fields: bytes) -> bytes:
    head = b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % length
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


_CHUNKED = b"PUT /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
GET = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"


class StreamLaneTests(SynchronousTestCase):
    def setUp(self):
        self.connect()

    def connect(self, limits: LimitsConfig | None = None) -> None:
        self.resource = _Streams()
        self.clock = MemoryReactorClock()
        site = FrontendSite(self.resource, limits or LimitsConfig(), self.clock)
        self.proto = site.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def test_small_body_dispatched_whole_then_keep_alive(self):
        """A body that ends before the prefetch is dispatched whole; the connection goes on."""
        self.proto.dataReceived(_post(10) + b"01234")
        head, body, sink = self.resource.streams[0]
        self.assertEqual((head.method, head.length, head.chunked), (b"POST", 10, False))
        self.assertEqual(self.resource.dispatched, [])
        self.proto.dataReceived(b"56789")
        self.assertEqual(self.resource.dispatched, [body])
        self.assertEqual(body.read(100), b"0123456789")
        self.assertEqual(body.read(100), b"")
        _answer(sink)
        self.assertTrue(self.sent().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertFalse(self.transport.disconnecting)
        self.proto.dataReceived(GET)
        self.assertEqual(len(self.resource.fast), 1)
        self.assertEqual(self.resource.slow, [])

    def test_large_body_dispatched_before_it_ends_with_the_client_paused(self):
        """Past the prefetch the member gets the request; past high water the client is paused."""
        size = 4 * HIGH_WATER
        self.proto.dataReceived(_post(size))
        _, body, sink = self.resource.streams[0]
        self.proto.dataReceived(b"a" * (PREFETCH - 1))
        self.assertEqual(self.resource.dispatched, [])
        self.proto.dataReceived(b"a")
        self.assertEqual(self.resource.dispatched, [body])
        self.proto.dataReceived(b"b" * HIGH_WATER)
        self.assertEqual(self.transport.producerState, "paused")
        received = b""
        while len(received) < PREFETCH + HIGH_WATER:
            received += body.read(8186) or b""
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(received, b"a" * PREFETCH + b"b" * HIGH_WATER)
        # Never more than the high water plus one read is held.
        self.assertFalse(body.ended)

    def test_chunked_body(self):
        self.proto.dataReceived(_CHUNKED + b"5\r\nhello\r\n")
        head, body, sink = self.resource.streams[0]
        self.assertTrue(head.chunked)
        self.assertIsNone(body.length)
        self.proto.dataReceived(b"6\r\n world\r\n0\r\n\r\n")
        self.assertEqual(self.resource.dispatched, [body])
        self.assertEqual(body.read(100), b"hello world")
        self.assertEqual(body.received, 11)

    def test_100_continue_once_admitted(self):
        """Expect: 100-continue is answered when the resource took the request, before the body."""
        self.proto.dataReceived(_post(3, b"Expect: 100-continue"))
        self.assertEqual(self.sent(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.proto.dataReceived(b"abc")
        self.assertEqual(len(self.resource.dispatched), 1)

    def test_other_methods_without_a_body_are_served_as_a_get(self):
        """A DELETE alone in its read takes the fast lane; with a request behind it, twisted.web's path."""
        delete = b"DELETE /app/x HTTP/1.1\r\nHost: x\r\n\r\n"
        self.proto.dataReceived(delete)
        self.assertEqual(len(self.resource.fast), 1)
        self.assertEqual(self.resource.fast[0].request.method, b"DELETE")
        _answer(self.resource.fast[0])
        self.sent()
        self.proto.dataReceived(delete + GET)
        self.assertEqual(len(self.resource.fast), 1)
        self.assertEqual(self.resource.slow, [b"DELETE /app/x", b"GET /app"])

    def test_refused_by_the_resource_goes_to_twisted_web(self):
        self.resource.take = False
        self.proto.dataReceived(_post(3) + b"abc")
        self.assertEqual(self.resource.streams, [])
        self.assertEqual(self.resource.slow, [b"POST /app"])

    def test_chunked_body_over_the_limit_is_413_and_never_dispatched(self):
        self.connect(LimitsConfig(max_body_bytes=1000))
        self.proto.dataReceived(_CHUNKED + b"258\r\n" + b"a" * 600 + b"\r\n")
        self.proto.dataReceived(b"258\r\n" + b"a" * 600 + b"\r\n")
        out = self.sent()
        self.assertTrue(out.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), out)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.dispatched, [])
        self.assertEqual(
            self.resource.streams[0][1].error, "the request body is larger than 1000 bytes"
        )

    def test_malformed_chunks_are_400(self):
        self.proto.dataReceived(_CHUNKED + b"zz\r\n")
        out = self.sent()
        self.assertTrue(out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out)
        self.assertIn(b"the chunked body is malformed", out)
        self.assertTrue(self.transport.disconnecting)

    def test_answer_before_the_body_ends_closes_the_connection(self):
        """
        A member that answers without reading the whole body: Connection: close;
        the rest of the body is read and dropped, then the connection closes.
        """
        size = 10 * PREFETCH
        self.proto.dataReceived(_post(size) + b"x" * PREFETCH)
        _, body, sink = self.resource.streams[0]
        _answer(sink, b"early")
        out = self.sent()
        self.assertIn(b"Connection: close\r\n", out)
        # Not closed while the client is still sending: it would get a reset.
        self.assertFalse(self.transport.disconnecting)
        self.proto.dataReceived(b"y" * PREFETCH)
        self.assertIsNone(body.read(100))
        self.assertFalse(self.transport.disconnecting)
        self.proto.dataReceived(b"y" * (size - 2 * PREFETCH))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.sent(), b"")
        self.assertEqual(self.resource.slow, [])

    def test_answer_before_the_body_ends_closes_after_a_while(self):
        """A client that goes on sending (or stops) after the answer: closed after LINGER_SECONDS."""
        self.proto.dataReceived(_CHUNKED + b"5\r\nhello\r\n")
        self.proto.dataReceived(b"f" * 10)
        _, body, sink = self.resource.streams[0]
        _answer(sink, b"early")
        self.sent()
        self.clock.advance(LINGER_SECONDS - 0.1)
        self.proto.dataReceived(b"zz\r\n")  # broken framing in the dropped rest: no second answer
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.sent(), b"")
        self.connect()
        self.proto.dataReceived(_CHUNKED + b"5\r\nhello\r\n")
        _, body, sink = self.resource.streams[0]
        _answer(sink, b"early")
        self.sent()
        self.clock.advance(LINGER_SECONDS - 0.1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.sent(), b"")

    def test_pipelined_request_after_a_body_waits_for_its_answer(self):
        self.proto.dataReceived(_post(3) + b"abc" + GET)
        _, body, sink = self.resource.streams[0]
        self.assertEqual(self.resource.fast, [])
        _answer(sink, b"one")
        self.assertEqual(len(self.resource.fast), 1)
        _answer(self.resource.fast[0], b"two")
        out = self.sent()
        self.assertLess(out.index(b"one"), out.index(b"two"))

    def test_slow_body_gets_408_but_not_while_the_member_is_the_slow_side(self):
        # Each min_rate bytes received buy a second: make that little here.
        limits = LimitsConfig(min_rate=1_000_000, idle_timeout=10_000)
        self.connect(limits)
        self.proto.dataReceived(_post(10 * HIGH_WATER) + b"a" * (HIGH_WATER + 1))
        _, body, sink = self.resource.streams[0]
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(limits.body_timeout * 5)
        self.assertEqual(self.sent(), b"")
        while body.read(65536):
            pass
        self.assertEqual(self.transport.producerState, "producing")
        self.clock.advance(limits.body_timeout * 5)
        out = self.sent()
        self.assertTrue(out.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), out)
        self.assertIsNotNone(body.error)

    def test_client_gone_fails_the_body(self):
        self.proto.dataReceived(_post(100) + b"abc")
        _, body, _ = self.resource.streams[0]
        self.proto.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(body.error, "the client went away during the upload")
